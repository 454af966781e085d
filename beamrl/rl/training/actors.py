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
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

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

    def __init__(
        self,
        count: int,
        learner_address: str,
        run_name: str,
        out_dir: Path,
        role: str = "actor",
        tree: str = "actor_node",
    ) -> None:
        """``role`` names the nodes (``RUN-actor1``...; Ape-X's learner replicas: ``RUN-learner1``...);
        ``tree`` is the packaged tree they run, by name: the same from a clone and from a wheel
        (Ape-X's learner replicas: ``learner_replica``)."""
        self.names = [f"{run_name}-{role}{i}" for i in range(1, count + 1)]
        self.logs = [out_dir / f"{name}.log" for name in self.names]
        self.nodes: list[NodeProcess] = []
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


class StepKill(NamedTuple):
    """A fault a run over nodes injects: at ``step`` env steps, kill ``target``.

    For ``actor-node``, ``node`` is which of the actor nodes the run started (0-based,
    in ``ActorNodes.names`` order); the other targets ignore it.
    """

    step: int
    target: str
    node: int = 0


def parse_step_kills(items: list[str] | None, targets: tuple[str, ...]) -> list[StepKill]:
    """``--kill-at`` of a deep run over nodes: ``["20000:actor-node:1"]`` -> ``[StepKill(20000, "actor-node", 1)]``.

    ``STEP:TARGET`` with TARGET in ``targets``; ``STEP:actor-node:I`` names actor node I
    (``STEP:actor-node`` is node 0). Anything else is a ValueError naming what was wrong;
    whether I is one of the run's nodes is ``check_step_kills``'s to say.
    """
    kills = []
    for item in items or []:
        at, sep, rest = item.partition(":")
        target, _, index = rest.partition(":")
        if not sep or not at.isdigit() or target not in targets:
            raise ValueError(
                f"--kill-at expects STEP:TARGET with TARGET one of {', '.join(targets)}"
                f" (actor-node:I for actor node I), got {item!r}"
            )
        node = 0
        if index or rest.endswith(":"):
            if target != "actor-node":
                raise ValueError(f"--kill-at {item!r}: only actor-node takes a node number (STEP:actor-node:I)")
            if not index.isdigit():
                raise ValueError(
                    f"--kill-at {item!r}: the actor node must be a number from 0 (STEP:actor-node:I), got {index!r}"
                )
            node = int(index)
        kills.append(StepKill(int(at), target, node))
    return sorted(kills)


def check_step_kills(kill_at: Sequence[Sequence[Any]] | None, targets: tuple[str, ...], nodes: int) -> list[StepKill]:
    """The faults of a run that starts ``nodes`` actor nodes, checked before anything starts, in step order.

    Takes ``StepKill``s or plain ``(step, target)`` / ``(step, target, node)`` tuples; a
    ValueError names an unknown target or an actor node the run does not start.
    """
    kills = []
    for item in kill_at or []:
        kill = StepKill(*item)
        if kill.target not in targets:
            raise ValueError(f"--kill-at: unknown target {kill.target!r}: choose one of {', '.join(targets)}")
        if kill.target == "actor-node" and not 0 <= kill.node < nodes:
            started = f"actor nodes 0..{nodes - 1}" if nodes else "no actor nodes"
            raise ValueError(
                f"--kill-at {kill.step}:actor-node:{kill.node} kills a node this run started, and it starts"
                f" {started}: give --nodes K > {kill.node} or another node number"
            )
        kills.append(kill)
    return sorted(kills)


#: what a restarted learner or replay tells of its restore (their ``["stats"]``), copied into its event
RESTORED_KEYS = ("restored_from", "restored", "restored_total", "lost")


class Faults:
    """A run's ``--kill-at`` faults: each injected once the run reached its step, and each recovery reported.

    ``actor-node`` SIGKILLs node ``kill.node`` of ``nodes`` (the OS process) and starts it
    again once ``node`` saw it go (the driver then restarts its actors there); any other
    target is a process of the learner node, killed in place (``Node.kill``: nothing of
    it runs, as with ``kill -9``), which its supervisor restarts. Events, through ``event``:
    ``killed`` (``target``, ``at_step``; ``node`` and ``node_index`` for an actor node; the
    ``total_added`` a killed replay reported just before), ``restarted`` once it is back:
    the node's name, or what the new process's ``stats`` say of its restore
    (``RESTORED_KEYS``: the learner's ``restored_from`` version; the replay's ``restored``
    transitions held, ``restored_total`` ids handed out by its checkpoint and ``lost``,
    those added after it). A second kill of a process killed in place waits until it is back
    from the first, so that each kill has its ``restarted``.

        faults = Faults(kills, started_nodes, out_dir, run.event)
        while running:
            ...
            await faults.step(node, run.env_steps())   # once per poll
        await faults.wait_back(node)                   # the last kill's restart, before the summary
    """

    def __init__(self, kills: list[StepKill], nodes: ActorNodes | None, out_dir: Path, event: Callable[..., Any]):
        self.pending = sorted(kills)
        self.nodes, self.out_dir, self.event = nodes, out_dir, event
        self.restarting: set[str] = set()  #: actor nodes killed, not yet started again
        self.nodes_killed: set[str] = set()  #: every actor node a fault killed
        self.killed: dict[str, Any] = {}  #: in-place targets killed, not yet back -> the pid killed

    def settled(self, workers: Iterable[tuple[str, bool]]) -> bool:
        """No fault left to inject or to recover from: every one was injected, every process killed
        in place is back, and every worker on a node killed rejoined (``workers``: each one's
        node name and whether it runs). A run stops at ``stop_at`` only then, so that a run
        which learns early still goes through the faults it was asked for."""
        if self.pending or self.restarting or self.killed:
            return False
        return all(up for name, up in workers if name in self.nodes_killed)

    async def step(self, node: Node, env_steps: int) -> None:
        """Inject the faults due at ``env_steps``; report and restart what came back or can."""
        await self._back(node)  # first, so that a second kill of a process that is back goes in now
        while self.pending and env_steps >= self.pending[0].step:
            if self.pending[0].target in self.killed:
                break  # its target is not back from the kill before: this one waits for it (a later poll)
            kill = self.pending.pop(0)
            if kill.target == "actor-node":
                assert self.nodes is not None  # check_step_kills refused actor-node kills without nodes
                victim = self.nodes.nodes[kill.node]
                await asyncio.to_thread(victim.kill)
                self.restarting.add(victim.name)
                self.nodes_killed.add(victim.name)
                self.event("killed", target=kill.target, node=victim.name, node_index=kill.node, at_step=kill.step)
                continue
            seen = await quiet_call(node, kill.target, ["stats"])
            self.killed[kill.target] = node.whereis(kill.target)
            node.kill(kill.target)
            before = {"total_added": seen["total_added"]} if seen and "total_added" in seen else {}
            self.event("killed", target=kill.target, at_step=kill.step, **before)
        for name in sorted(self.restarting):
            if name not in node.nodes() and self.nodes is not None:  # the learner node saw it go
                await asyncio.to_thread(restart_actor_node, self.nodes, name, node.address or "", self.out_dir)
                self.event("restarted", target="actor-node", node=name)
                self.restarting.discard(name)

    async def _back(self, node: Node) -> None:
        """Report the processes killed in place that their supervisor started again."""
        for target, old in list(self.killed.items()):
            pid = node.whereis(target)
            if pid is None or pid == old:
                continue  # its supervisor has not started it again yet
            stats = await quiet_call(node, pid, ["stats"])
            if stats is not None:
                del self.killed[target]
                self.event("restarted", target=target, **{k: stats[k] for k in RESTORED_KEYS if k in stats})

    async def wait_back(self, node: Node, timeout: float = 10.0) -> None:
        """At the end of a run: wait (up to ``timeout`` s) for the processes killed in place to be back,
        so that a kill late in the run still has its ``restarted`` (and a replay's loss) in the summary."""
        deadline = time.monotonic() + timeout
        await self._back(node)
        while self.killed and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            await self._back(node)


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
