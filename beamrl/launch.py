"""``NodeProcess``: run ``beamrl node start`` as a child OS process and wait until it serves.

    with NodeProcess("peer", tree="supervisors/demo.toml") as peer:
        await node.connect(peer.address)
        ...

It starts ``python -m beamrl.cli node start --name NAME --listen ADDR [--tree T] ...``;
a thread drains the child's output into ``output`` (and a log file, if given) so a
chatty child never blocks on a full pipe, and notes when it prints where it listens
(and, with a tree, that the tree started): ``wait_ready`` waits for that.
``terminate()`` is a clean stop (SIGTERM), ``kill()`` a crash (SIGKILL: no goodbye).
Tests, benchmarks and multi-node training (``ActorNodes``) use this one launcher.
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

    ``tree`` is a tree file (or a packaged tree's name); ``tree_text`` the text of one
    (written to a temporary file). ``args`` are more ``node start`` options (``--join``,
    ``--keys``...). ``pythonpath`` entries go in front of ``PYTHONPATH`` so the child can
    import the classes its tree or its callers name (``tests.test_gen_server:Echo``).
    ``log`` tees the child's output into that file. ``wait=False`` returns at once (start
    several side by side, then ``wait_ready`` each); ``own_session`` keeps the child out of
    the terminal's process group, so a Ctrl-C meant for the parent does not reach it.
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
        log: str | os.PathLike[str] | None = None,
        wait: bool = True,
        own_session: bool = False,
    ) -> None:
        self.name = name
        self.output: list[str] = []
        self.address = ""
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._listening = threading.Event()
        self._tree_started = threading.Event()
        self._ended = threading.Event()
        self._expect_tree = tree is not None or tree_text is not None
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
        self._log = open(log, "w", encoding="utf-8") if log is not None else None  # noqa: SIM115 (closed in _close)
        self.proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=child_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=own_session,
        )
        self._drain = threading.Thread(target=self._read, name=f"drain-{name}", daemon=True)
        self._drain.start()
        if wait:
            self.wait_ready(startup_timeout)

    def _read(self) -> None:
        """Drain the child's output (so a chatty child never blocks), noting its milestones."""
        assert self.proc.stdout is not None
        try:
            for line in self.proc.stdout:
                self.output.append(line)
                if self._log is not None:
                    self._log.write(line)
                    self._log.flush()
                if not self._listening.is_set():
                    match = re.search(r"listening on (tcp://\S+)", line)
                    if match:
                        self.address = match.group(1)
                        self._listening.set()
                if re.search(r"tree .* started", line):
                    self._tree_started.set()
        finally:
            self._ended.set()

    def wait_ready(self, timeout: float = 30.0) -> str:
        """Block until the node listens (and its tree started); returns its address.

        On failure the child is killed and ``RuntimeError`` shows its output.
        """
        deadline = time.monotonic() + timeout
        milestones = [(self._listening, "listening on tcp://...")]
        if self._expect_tree:
            milestones.append((self._tree_started, "tree ... started"))
        for event, what in milestones:
            while not event.wait(0.02):
                if self._ended.is_set() or time.monotonic() > deadline:
                    self.kill()
                    raise RuntimeError(
                        f"node {self.name!r} never printed {what!r}; its output:\n{''.join(self.output)}"
                    )
        return self.address

    def exit_code(self) -> int | None:
        """The child's exit code, or None while it runs."""
        return self.proc.poll()

    def _close(self) -> None:
        self._drain.join(5)
        if self.proc.stdout is not None and not self.proc.stdout.closed:
            self.proc.stdout.close()
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def kill(self) -> None:
        """SIGKILL: no goodbye, the other nodes must notice by themselves."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self._close()

    def request_stop(self) -> None:
        """Send SIGTERM and return at once (``terminate`` then waits); stops several side by side."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def terminate(self) -> int:
        """SIGTERM: a clean stop; returns the exit code."""
        self.request_stop()
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
