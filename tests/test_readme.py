"""The README walks as written: every ``bash`` and ``python`` block runs, in order, in a fresh virtualenv.

The tree is copied as a fresh clone would have it (``git ls-files``: tracked files and
untracked ones git does not ignore), and ``README.md`` then ``examples/README.md`` are run
from that copy's root:

- ``bash`` blocks run one command at a time (``\\`` continuations joined, comments dropped)
  with ``bash``, on a ``PATH`` without any virtualenv, so a bare ``beamrl`` or ``python``
  fails as it would for a reader. ``beamrl node start`` runs forever, so it runs in the
  background, as in a second terminal, until the node prints where it listens (and that
  its tree started); so does ``beamrl serve``. ``beamrl shell`` reads an empty stdin and
  exits. Every background process is stopped at the end. Fixed ports (``127.0.0.1:7001``)
  become free ones, in ``python`` blocks too (the same port maps to the same free one).
- ``python`` blocks of one file run in one interpreter (the fresh virtualenv's python), in
  order and in one namespace, as a reader pasting them would; top-level ``await`` works.
- The README's set-up, ``python3 -m venv .venv && .venv/bin/pip install -q -e '.[EXTRAS]'``
  (or the ``pip install`` alone, for another extra), runs as a fresh virtualenv plus an
  offline ``pip install --no-deps -e .``: the
  fresh virtualenv borrows the dependencies already installed for the tests (a ``.pth``
  line) instead of downloading them, which keeps this test near a minute. ``beamrl`` itself
  is the copy's own editable install.

An HTML comment right before a block tunes it: ``<!-- readme-test: skip (why) -->`` (keep
these few and honest: several machines, the test suite itself), or
``<!-- readme-test: background -->`` (every command of the block is a server that runs
until the end). Blocks in other languages, or none (transcripts, output), are not run.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from tests import ROOT

DOCS = ("README.md", "examples/README.md")
COMMAND_TIMEOUT = 180.0
SETUP = re.compile(r"(python3 -m venv \.venv && )?\.venv/bin/pip install (-q )?-e '\.\[[a-z,]*\]'")
_FENCE = re.compile(r"^```([A-Za-z]*)\s*$")
#: commands that serve until stopped: run in the background, ready once they print where they listen
SERVERS = r"\bbeamrl (node start|serve)\b"
_DIRECTIVE = re.compile(r"^<!--\s*readme-test:\s*(\w+)(.*?)-->\s*$")


@dataclass
class Block:
    """One fenced block of a Markdown file."""

    where: str
    """``FILE:LINE`` of the opening fence."""
    language: str
    code: str
    directive: str = ""
    """``skip``, ``background`` or empty."""


def blocks_of(path: Path) -> list[Block]:
    """The fenced blocks of ``path``, each with the readme-test directive right before it."""
    found: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    directive = ""
    while i < len(lines):
        line = lines[i]
        match = _DIRECTIVE.match(line.strip())
        if match:
            directive = match.group(1)
            if directive not in ("skip", "background"):
                raise ValueError(f"{path.name}:{i + 1}: unknown readme-test directive {directive!r}")
            i += 1
            continue
        fence = _FENCE.match(line)
        if fence is None:
            if line.strip():
                directive = ""  # a directive belongs to the block right after it
            i += 1
            continue
        start = i
        i += 1
        body = []
        while i < len(lines) and not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        found.append(Block(f"{path.name}:{start + 1}", fence.group(1).lower(), "\n".join(body) + "\n", directive))
        directive = ""
        i += 1
    return found


def commands_of(code: str) -> list[str]:
    """The commands of a shell block: continuations joined, comments and blank lines dropped."""
    commands, current = [], ""
    for raw in code.splitlines():
        line = raw.rstrip()
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        line = _strip_comment(current + line).strip()
        current = ""
        if line:
            commands.append(line)
    return commands


def _strip_comment(line: str) -> str:
    """``line`` up to a ``#`` that starts a shell comment (after a blank, outside quotes)."""
    quote = ""
    for i, char in enumerate(line):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Background:
    """A command that runs until the walk ends, its output drained into ``lines``."""

    def __init__(self, command: str, cwd: Path, env: dict[str, str]) -> None:
        self.command = command
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        self.proc = subprocess.Popen(
            ["bash", "-c", f"exec {command}"],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self._drain = threading.Thread(target=self._read, daemon=True)
        self._drain.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
            self.lines.put(line)

    def wait_for(self, pattern: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                if self.proc.poll() is not None and self.lines.empty():
                    break
                continue
            if re.search(pattern, line):
                return
        pytest.fail(f"{self.command!r} never printed {pattern!r}; its output:\n{''.join(self.output)}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._drain.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class PythonSession:
    """One interpreter of the fresh virtualenv that runs a file's python blocks in one namespace."""

    RUNNER = r"""
import ast, asyncio, json, sys, traceback
namespace = {"__name__": "__main__"}
for line in sys.stdin:
    block = json.loads(line)
    status = "ok"
    try:
        code = compile(block["code"], block["where"], "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        result = eval(code, namespace)
        if asyncio.iscoroutine(result):
            asyncio.run(result)
    except BaseException:
        traceback.print_exc(file=sys.stdout)
        status = "error"
    print("\0" + status, flush=True)
"""

    def __init__(self, python: Path, cwd: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [str(python), "-u", "-c", self.RUNNER],
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self._drain = threading.Thread(target=self._read, daemon=True)
        self._drain.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def run(self, block: Block) -> tuple[str, str]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"code": block.code, "where": block.where}) + "\n")
        self.proc.stdin.flush()
        output: list[str] = []
        deadline = time.monotonic() + COMMAND_TIMEOUT
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                continue
            if line is None:
                return "exited", "".join(output)
            if line.startswith("\0"):
                return line[1:].strip(), "".join(output)
            output.append(line)
        return "timed out", "".join(output)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self._drain.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def fresh_clone(dest: Path) -> None:
    """Copy the files a clone of this tree has (tracked, plus untracked ones git does not ignore)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())


def clean_env() -> dict[str, str]:
    """This environment without any virtualenv on PATH, as a new terminal has it."""
    drop = {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP"}
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("PYTEST")}
    path = [p for p in env.get("PATH", "").split(os.pathsep) if p and not (Path(p).parent / "pyvenv.cfg").exists()]
    env["PATH"] = os.pathsep.join(path)
    env["PYTHONUNBUFFERED"] = "1"
    env["MPLBACKEND"] = "Agg"
    return env


def new_user(env: dict[str, str], home: Path) -> dict[str, str]:
    """``env`` for a user with no beamrl configuration yet (a fresh cookie is made on first use)."""
    home.mkdir(parents=True, exist_ok=True)
    return {**env, "XDG_CONFIG_HOME": str(home / ".config"), "XDG_STATE_HOME": str(home / ".local" / "state")}


class Walk:
    """Runs the blocks of the docs in one clone, remembering what it started."""

    def __init__(self, clone: Path) -> None:
        self.clone = clone
        self.env = new_user(clean_env(), clone.parent / "home")
        self.background: list[Background] = []
        self.ports: dict[str, str] = {}
        self.log: list[str] = []

    def setup(self) -> str:
        """The README's set-up, offline: a fresh venv borrowing the installed dependencies."""
        venv = self.clone / ".venv"
        if (venv / "bin" / "beamrl").exists():
            return "true"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
        python = venv / "bin" / "python"
        site = subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        (Path(site) / "borrowed-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
        install = [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps"]
        install += ["--no-index", "--no-build-isolation", "-e", str(self.clone)]
        done = subprocess.run(install, capture_output=True, text=True, env=self.env, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        where = subprocess.run(
            [str(python), "-P", "-c", "import beamrl; print(beamrl.__file__)"],  # -P: not from the cwd
            cwd=self.clone.parent,
            capture_output=True,
            text=True,
            env=self.env,
            check=True,
        )
        assert Path(where.stdout.strip()).is_relative_to(self.clone), f"not the clone's beamrl: {where.stdout}"
        return "true"

    def localise_ports(self, text: str) -> str:
        """Fixed ports become free ones (the same port maps to the same free one throughout)."""

        def swap(match: re.Match[str]) -> str:
            port = match.group(1)
            if port not in self.ports:
                self.ports[port] = str(free_port())
            return f"127.0.0.1:{self.ports[port]}"

        return re.sub(r"127\.0\.0\.1:(7\d\d\d)\b", swap, text)

    def localise(self, command: str) -> str:
        """Free ports for fixed ones, and the README's set-up run offline."""
        return SETUP.sub(lambda m: self.setup(), self.localise_ports(command))

    def shell(self, block: Block) -> None:
        for original in commands_of(block.code):
            command = self.localise(original)
            if block.directive == "background" or re.search(SERVERS, command):
                self.start(command, original, block)
                continue
            try:
                done = subprocess.run(
                    ["bash", "-c", command],
                    cwd=self.clone,
                    env=self.env,
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    text=True,
                    timeout=COMMAND_TIMEOUT,
                )
            except subprocess.TimeoutExpired as exc:
                pytest.fail(f"{block.where}: {original!r} did not finish within {COMMAND_TIMEOUT} s:\n{exc.output}")
            self.log.append(f"$ {original}\n{done.stdout}{done.stderr}")
            if done.returncode != 0:
                pytest.fail(
                    f"{block.where}: {original!r} exited with {done.returncode}:\n{done.stdout}{done.stderr}"
                    + self.background_output()
                )

    def start(self, command: str, original: str, block: Block) -> None:
        server = Background(command, self.clone, self.env)
        self.background.append(server)
        if re.search(SERVERS, command):
            server.wait_for(r"listening on tcp://")
            if "--tree" in command or re.search(r"node start \S+\.toml", command):
                server.wait_for(r"tree .* started")
        self.log.append(f"$ {original} &")

    def background_output(self) -> str:
        return "".join(f"\n--- {b.command} ---\n{''.join(b.output)}" for b in self.background)

    def close(self) -> None:
        for server in reversed(self.background):
            server.stop()


@pytest.fixture
def walk(tmp_path: Path) -> Iterator[Walk]:
    clone = tmp_path / "beamrl"
    fresh_clone(clone)
    walker = Walk(clone)
    try:
        yield walker
    finally:
        walker.close()


def test_the_docs_have_blocks_to_run() -> None:
    runnable = [b for doc in DOCS for b in blocks_of(ROOT / doc) if b.language in ("bash", "python")]
    assert sum(b.directive != "skip" for b in runnable) >= 7
    assert any(SETUP.search(b.code) for b in runnable), "the README's set-up command changed: update SETUP"
    skipped = [b.where for b in runnable if b.directive == "skip"]
    assert len(skipped) <= 4, f"keep skips few: {skipped}"


def test_every_bash_and_python_block_of_the_readmes_runs_in_order(walk: Walk) -> None:
    for doc in DOCS:
        python = None
        try:
            for block in blocks_of(walk.clone / doc):
                if block.directive == "skip" or block.language not in ("bash", "sh", "python"):
                    continue
                if block.language == "python":
                    if python is None:
                        python = PythonSession(walk.clone / ".venv" / "bin" / "python", walk.clone, walk.env)
                    status, output = python.run(replace(block, code=walk.localise_ports(block.code)))
                    walk.log.append(f">>> {block.where}\n{output}")
                    assert status == "ok", f"{block.where} ({status}):\n{block.code}\n{output}"
                else:
                    walk.shell(block)
        finally:
            if python is not None:
                python.close()
    # what the readers were promised
    out = "\n".join(walk.log)
    assert "injecting a fault into worker 1" in out and "greedy success" in out, out
    assert (walk.clone / "runs" / "demo" / "summary.json").is_file()
