"""Start real peer nodes as OS processes (``beamrl node start``) for multi-node tests."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class PeerNode:
    """A ``beamrl node start`` child process; ``address`` is where it listens."""

    def __init__(self, name: str, *args: str, listen: str = "tcp://127.0.0.1:0", tree: str | None = None) -> None:
        self.name = name
        cmd = [sys.executable, "-m", "beamrl.cli", "node", "start", "--name", name, "--listen", listen]
        cmd += ["--heartbeat-timeout", "1.5"]
        if tree is not None:
            cmd += ["--tree", tree]
        cmd += list(args)
        env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.output: list[str] = []
        self._drain: threading.Thread | None = None
        self.address = self._wait_for(r"listening on (tcp://\S+)")
        if tree is not None:
            self._wait_for(r"tree .* started")
        # Keep draining its output so a chatty peer never blocks on a full pipe.
        self._drain = threading.Thread(target=self._read_rest, daemon=True)
        self._drain.start()

    def _read_rest(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)

    def _wait_for(self, pattern: str, timeout: float = 20.0) -> str:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.output.append(line)
            match = re.search(pattern, line)
            if match:
                return match.group(1) if match.groups() else line
        self.kill()
        raise AssertionError(f"peer {self.name} never printed {pattern!r}:\n{''.join(self.output)}")

    def _close_pipe(self) -> None:
        if self._drain is not None:
            self._drain.join(5)
        if self.proc.stdout is not None and not self.proc.stdout.closed:
            self.proc.stdout.close()

    def kill(self) -> None:
        """SIGKILL: no goodbye, the others must notice by themselves."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self._close_pipe()

    def terminate(self) -> int:
        """SIGTERM: a clean stop; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(5)
        self._close_pipe()
        return code
