"""Where a run's workers live: the worker subtree as data, and extra actor nodes on loopback.

``beamrl train --nodes K`` starts K-1 ``beamrl node start`` processes through the one
launcher, ``NodeProcess``, each running the packaged tree ``actor_node``
(``beamrl/trees/actor_node.toml``: an empty ``workers`` DynamicSupervisor), then starts
one worker subtree on each. ``--attach ADDR`` uses nodes already running elsewhere
(started from ``nodes/actor.toml``); one without ``workers`` is refused within seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from beamrl.errors import BeamError, NoProc
from beamrl.launch import NodeProcess
from beamrl.node import Node
from beamrl.rl.training.spec import RunSpec
from beamrl.rl.training.tabular import TableShape


def worker_spec(spec: RunSpec, index: int, learner: str, table: TableShape | None = None) -> dict[str, Any]:
    """A worker's subtree (its supervisor and the Worker, which owns its env) as data a remote node can start."""
    worker_args: list[Any] = [spec.to_data(), index, None, ("qserver", learner), ("recorder", learner)]
    if table is not None:
        worker_args.append(table.to_data())
    return {
        "name": f"worker-{index}-sup",
        "strategy": "one_for_one",
        "max_restarts": 10,
        "max_seconds": 10,
        "children": [{"start": "beamrl.rl.training.worker:Worker", "args": worker_args, "name": f"worker-{index}"}],
    }


class ActorNodes:
    """Extra nodes as OS processes on loopback, each running the actor tree; logs in ``out/NAME.log``.

    They start side by side (``NodeProcess`` with ``wait=False``) and the learner waits for
    them to join; each runs in its own session, so a Ctrl-C stops the learner, which then
    stops them (no false "crashed" lines from nodes that got the signal first); should the
    learner die without stopping them, each stops by itself (``--stop-with-parent``).
    """

    def __init__(self, count: int, learner_address: str, run_name: str, out_dir: Path, role: str = "actor") -> None:
        """``role`` names the nodes (``RUN-actor1``...; Ape-X's learner replicas: ``RUN-learner1``...)."""
        self.names = [f"{run_name}-{role}{i}" for i in range(1, count + 1)]
        self.logs = [out_dir / f"{name}.log" for name in self.names]
        self.nodes: list[NodeProcess] = []
        tree = "actor_node"  # the packaged tree, by name: the same from a clone and from a wheel
        try:
            for name, log_path in zip(self.names, self.logs, strict=True):
                args = ("--join", learner_address, "--stop-with-parent")  # no orphan if the learner dies
                node = NodeProcess(name, *args, tree=tree, log=log_path, wait=False, own_session=True)
                self.nodes.append(node)
        except BaseException:
            self.close()
            raise

    def failed(self) -> str | None:
        """A message naming the first actor node that exited early, with its log file."""
        for node, log_path in zip(self.nodes, self.logs, strict=True):
            code = node.exit_code()
            if code is not None:
                return f"actor node {node.name!r} exited with code {code}: see {log_path}"
        return None

    def close(self) -> None:
        """Stop every actor node (SIGTERM to all, then wait for each)."""
        for node in self.nodes:
            node.request_stop()
        for node in self.nodes:
            node.terminate()


async def wait_for_actor_trees(
    node: Node,
    names: list[str],
    actors: ActorNodes | None,
    timeout: float = 60.0,
    *,
    attached: Mapping[str, str] | None = None,
    grace: float = 3.0,
) -> None:
    """Return once every node in ``names`` is connected and its ``workers`` supervisor answers.

    A node in ``attached`` (name -> address) was already running: if it still has no
    ``workers`` after ``grace`` seconds it never will, and a ``ValueError`` says so.
    """
    started = time.monotonic()
    deadline = started + timeout
    pending = set(names)
    attached = attached or {}
    while pending:
        failure = actors.failed() if actors is not None else None
        if failure is not None:
            raise RuntimeError(failure)
        for name in list(pending):
            if name in node.nodes():
                try:
                    await node.call(("workers", name), ["count_children"], timeout=2.0)
                except NoProc:
                    if name in attached and time.monotonic() - started > grace:
                        raise ValueError(
                            f"node {name!r} at {attached[name]} runs no 'workers' supervisor, so it cannot host"
                            " workers: start it with the actor tree (beamrl node start nodes/actor.toml,"
                            " or --tree actor_node)"
                        ) from None
                    continue
                except BeamError:  # not up yet: its tree is still starting
                    continue
                pending.discard(name)
        if pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"actor nodes {sorted(pending)} did not come up within {timeout} s")
            await asyncio.sleep(0.05)


def parse_step_kills(items: list[str] | None, targets: tuple[str, ...]) -> list[tuple[int, str]]:
    """``--kill-at`` of a deep run over nodes: ``["20000:actor-node"]`` -> ``[(20000, "actor-node")]``.

    Anything but ``STEP:TARGET`` with TARGET in ``targets`` is a ValueError naming them.
    """
    kills = []
    for item in items or []:
        at, sep, target = item.partition(":")
        if not sep or not at.isdigit() or target not in targets:
            raise ValueError(f"--kill-at expects STEP:TARGET with TARGET one of {', '.join(targets)}, got {item!r}")
        kills.append((int(at), target))
    return sorted(kills)


async def quiet_call(node: Node, target: Any, request: list[Any]) -> Any:
    """``node.call`` with a 5 s timeout, or None when the target is away (a run's poll goes on without it)."""
    try:
        return await node.call(target, request, timeout=5.0)
    except BeamError:
        return None


def restart_actor_node(nodes: ActorNodes, name: str, address: str, out_dir: Path) -> None:
    """Start the killed actor node ``name`` again (same name, a fresh OS process, a new log)."""
    i = nodes.names.index(name)
    log_path = out_dir / f"{name}.restarted.log"
    args = ("--join", address, "--stop-with-parent")
    nodes.nodes[i] = NodeProcess(name, *args, tree="actor_node", log=log_path, wait=False, own_session=True)
    nodes.logs[i] = log_path
