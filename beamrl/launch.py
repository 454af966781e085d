"""``NodeProcess``: run ``beamrl node start`` as a child OS process and wait until it serves.

    with NodeProcess("peer", tree="supervisors/demo.toml") as peer:
        await node.connect(peer.address)
        ...

It starts ``python -m beamrl.cli node start --name NAME --listen ADDR [--tree T] ...``,
reads the child's output until it prints where it listens (and, with a tree, that the
tree started), then keeps draining that output into ``output`` so a chatty child never
blocks on a full pipe. ``terminate()`` is a clean stop (SIGTERM), ``kill()`` a crash
(SIGKILL: no goodbye). Tests, benchmarks and multi-node training use this one launcher.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


class NodeProcess:
    """A ``beamrl node start`` child process; ``address`` is where it listens.

    ``tree`` is a tree file; ``tree_text`` the text of one (written to a temporary
    file). ``args`` are more ``node start`` options (``--join``, ``--keys``...).
    ``pythonpath`` entries go in front of ``PYTHONPATH`` so the child can import the
    classes its tree or its callers name (``tests.test_gen_server:Echo``).
    """

    def __init__(
        self,
        name: str,
        *args: str,
        listen: str = "tcp://127.0.0.1:0",
        tree: str | os.PathLike[str] | None = None,
        tree_text: str | None = None,
        heartbeat_timeout: float | None = None,
        pythonpath: Sequence[str | os.PathLike[str]] = (),
        cwd: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        self.name = name
        self.output: list[str] = []
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._drain: threading.Thread | None = None
        if tree_text is not None:
            if tree is not None:
                raise ValueError("give tree or tree_text, not both")
            self._tmp = tempfile.TemporaryDirectory(prefix="beamrl-node-")
            tree = Path(self._tmp.name) / "tree.toml"
            tree.write_text(tree_text, encoding="utf-8")
        cmd = [sys.executable, "-m", "beamrl.cli", "node", "start", "--name", name, "--listen", listen]
        if heartbeat_timeout is not None:
            cmd += ["--heartbeat-timeout", str(heartbeat_timeout)]
        if tree is not None:
            cmd += ["--tree", os.fspath(tree)]
        cmd += list(args)
        child_env = dict(os.environ if env is None else env, PYTHONUNBUFFERED="1")
        if pythonpath:
            parts = [os.fspath(p) for p in pythonpath]
            if child_env.get("PYTHONPATH"):
                parts.append(child_env["PYTHONPATH"])
            child_env["PYTHONPATH"] = os.pathsep.join(parts)
        self.proc = subprocess.Popen(
            cmd, cwd=cwd, env=child_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        try:
            self.address = self._wait_for(r"listening on (tcp://\S+)", startup_timeout)
            if tree is not None:
                self._wait_for(r"tree .* started", startup_timeout)
        except BaseException:
            self.kill()
            raise
        self._drain = threading.Thread(target=self._read_rest, name=f"drain-{name}", daemon=True)
        self._drain.start()

    def _read_rest(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)

    def _wait_for(self, pattern: str, timeout: float) -> str:
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
        raise RuntimeError(f"node {self.name!r} never printed {pattern!r}; its output:\n{''.join(self.output)}")

    def _close(self) -> None:
        if self._drain is not None:
            self._drain.join(5)
        if self.proc.stdout is not None and not self.proc.stdout.closed:
            self.proc.stdout.close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def kill(self) -> None:
        """SIGKILL: no goodbye, the other nodes must notice by themselves."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self._close()

    def terminate(self) -> int:
        """SIGTERM: a clean stop; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(5)
        self._close()
        return code

    def __enter__(self) -> NodeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.terminate()
