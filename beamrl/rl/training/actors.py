"""Where a run's workers live: the worker subtree as data, and extra actor nodes on loopback.

``beamrl train --nodes K`` starts K-1 ``beamrl node start`` processes, each running the
packaged actor tree (``beamrl/trees/actor_node.toml``: an empty ``workers``
DynamicSupervisor), then starts one worker subtree on each. ``--attach ADDR`` uses nodes
already running elsewhere (started from ``nodes/actor.toml``).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from beamrl.errors import BeamError
from beamrl.node import Node
from beamrl.rl.training.spec import RunSpec
from beamrl.rl.training.tabular import TableShape
from beamrl.trees import tree_path


def worker_spec(spec: RunSpec, index: int, learner: str, table: TableShape | None = None) -> dict[str, Any]:
    """A worker's subtree (EnvServer + Worker, rest_for_one) as data a remote node can start."""
    worker_args: list[Any] = [spec.to_data(), index, f"env-{index}", ("qserver", learner), ("recorder", learner)]
    if table is not None:
        worker_args.append(table.to_data())
    return {
        "name": f"worker-{index}-sup",
        "strategy": "rest_for_one",
        "max_restarts": 10,
        "max_seconds": 10,
        "children": [
            {
                "start": "beamrl.rl.env_server:EnvServer",
                "args": [spec.env_id],
                "kwargs": dict(spec.env_kwargs),
                "name": f"env-{index}",
            },
            {
                "start": "beamrl.rl.training.worker:Worker",
                "args": worker_args,
                "name": f"worker-{index}",
            },
        ],
    }


class ActorNodes:
    """Extra nodes as OS processes on loopback, each running the actor tree; logs in ``out/NAME.log``."""

    def __init__(self, count: int, learner_address: str, run_name: str, out_dir: Path) -> None:
        self.procs: list[subprocess.Popen[str]] = []
        self.names = [f"{run_name}-actor{i}" for i in range(1, count + 1)]
        self.logs = [out_dir / f"{name}.log" for name in self.names]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        tree = str(tree_path("actor_node.toml"))
        for name, log_path in zip(self.names, self.logs, strict=True):
            cmd = [sys.executable, "-m", "beamrl.cli", "node", "start", "--name", name, "--join", learner_address]
            cmd += ["--tree", tree]
            with log_path.open("w") as log_file:
                self.procs.append(subprocess.Popen(cmd, env=env, stdout=log_file, stderr=subprocess.STDOUT, text=True))

    def failed(self) -> str | None:
        """A message naming the first actor node that exited early, with its log file."""
        for name, proc, log_path in zip(self.names, self.procs, self.logs, strict=True):
            if proc.poll() is not None:
                return f"actor node {name!r} exited with code {proc.returncode}: see {log_path}"
        return None

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


async def wait_for_actor_trees(node: Node, names: list[str], actors: ActorNodes | None, timeout: float = 60.0) -> None:
    """Return once every node in ``names`` is connected and its ``workers`` supervisor answers."""
    deadline = time.monotonic() + timeout
    pending = set(names)
    while pending:
        failure = actors.failed() if actors is not None else None
        if failure is not None:
            raise RuntimeError(failure)
        for name in list(pending):
            if name in node.nodes():
                try:
                    await node.call(("workers", name), ["count_children"], timeout=2.0)
                except BeamError:  # not up yet: its tree is still starting
                    continue
                pending.discard(name)
        if pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"actor nodes {sorted(pending)} did not come up within {timeout} s")
            await asyncio.sleep(0.05)
