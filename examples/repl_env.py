"""Drive an environment living on another node, the way you would from a REPL.

    python examples/repl_env.py

does by itself what these two terminals do by hand::

    $ beamrl node start --tree supervisors/env.toml --listen tcp://127.0.0.1:7001
    $ beamrl shell tcp://127.0.0.1:7001
    >>> env.reset(0)
    >>> env.step(1)
    >>> print(env.render())

It starts ``beamrl node start`` as a separate OS process serving ``supervisors/env.toml``
(a FrozenLake ``env`` and eight FrozenLakes stepped together as ``venv``), opens a
blocking session with ``beamrl.session.connect``, and prints each line it evaluates
with its result, an invalid action being refused included. Finishes in a few seconds.

    Smoke expect: >>> env.reset(0)
    Smoke expect: Exp(state=None, action=None, reward=0.0, next_state=0,
    Smoke expect: InvalidAction: action 7 is not in the action space Discrete(4) of FrozenLake-v1
    Smoke expect: HFFG
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import beamrl.session
from beamrl import Rejected

ROOT = Path(__file__).resolve().parent.parent
TREE = "supervisors/env.toml"


def start_node() -> tuple[subprocess.Popen[str], str]:
    """``beamrl node start`` in the background; returns it and the address it listens on."""
    cmd = [sys.executable, "-m", "beamrl.cli", "node", "start", "--name", "lab", "--tree", TREE]
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    node = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert node.stdout is not None
    address = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = node.stdout.readline()
        if not line:
            break
        print(f"[node] {line.rstrip()}")
        if match := re.search(r"listening on (tcp://\S+)", line):
            address = match.group(1)
        if address and "started" in line:
            return node, address
    node.kill()
    node.wait()
    raise SystemExit(f"the node did not start (ran {' '.join(cmd)})")


def show(source: str, namespace: dict[str, Any]) -> None:
    """Print ``>>> source`` and what a REPL would print for it."""
    print(f">>> {source}")
    try:
        if source.startswith("print("):
            exec(source, namespace)  # a fixed demo line, shown as typed
        else:
            result = eval(source, namespace)  # a fixed demo line, shown as typed
            if result is not None:
                print(repr(result))
    except Rejected as exc:
        print(f"{type(exc).__module__}.{type(exc).__name__}: {exc}")


def main() -> int:
    node, address = start_node()
    try:
        with beamrl.session.connect(address) as session:
            print(f"connected to node {session.peer!r} at {address}; it serves {session.registered()}\n")
            namespace = {"env": session.proxy("env"), "venv": session.proxy("venv")}
            for source in [
                "env.spaces()",
                "env.reset(0)",
                "env.step(1)",
                "print(env.render())",
                "env.step(7)",
                "env.step(1.0)",
                "env.observe()",
                "env.reset(seed=0).next_state",
                "venv.reset(0)['obs']",
                "venv.step_many([1] * 8)['obs']",
            ]:
                show(source, namespace)
    finally:
        node.terminate()
        node.wait(15)
        assert node.stdout is not None
        for line in node.stdout:
            print(f"[node] {line.rstrip()}")
        node.stdout.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
