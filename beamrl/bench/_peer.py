"""A benchmark's second OS process: ``beamrl node start`` with a small tree written for it."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import IO


class NodeProcess:
    """Runs ``beamrl node start --tree`` on loopback; ``address`` is where it listens."""

    def __init__(self, name: str, tree: str) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="beamrl-bench-")
        tree_path = Path(self._dir.name) / "tree.toml"
        tree_path.write_text(tree)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "beamrl.cli", "node", "start", "--name", name, "--tree", str(tree_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        stdout: IO[str] = self.proc.stdout  # type: ignore[assignment]
        self.address = ""
        for line in stdout:
            if "listening on " in line:
                self.address = line.rsplit("listening on ", 1)[1].strip()
            if "started" in line:
                break
        if not self.address:
            self.close()
            raise RuntimeError(f"the benchmark node {name!r} did not start")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._dir.cleanup()

    def __enter__(self) -> NodeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
