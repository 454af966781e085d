"""Ape-X with G data-parallel learner replicas: ``beamrl train apex-dqn ENV --set learners=G``.

The learner node's ``learner`` becomes replica 0 of G (``DataParallelLearner``:
``beamrl.rl.deep.distributed``); G - 1 more nodes each run replica ``i`` and its own
``learner-loop``, which samples the learner node's ``replay`` (or its shards) and sends
priorities back, as replica 0's loop does::

    learner node                          replica nodes 1 ... G-1
      replay                  <------------ learner-loop (own batches)
      learner (replica 0)  <- all-reduce -> learner (replica i)
      learner-loop                          (gloo: torch's own TCP, not beamrl's wire)

Replica nodes attached with ``--attach-learner ADDR[#NAME]`` (started elsewhere from
``nodes/learner-replica.toml``: the packaged tree ``learner_replica``) come first; the
rest start as OS processes on loopback (``RUN-learner1``...). Before any replica joins
the group, each attached node must answer as a replica node with torch installed and no
replica of an earlier run (``ReplicaHost``): a replica that never joins would stall the
others in the rendezvous. At the end the run stops the replica and loop it started on
each attached node, so the node can host the next run.

The group meets at ``group_address``: the learner node's --listen host (for a wildcard
listen, the address this machine reaches the first remote replica node from) and
``group_port`` (0: a free one). Rank 0's rendezvous (torch's TCPStore) listens there on
every interface; gloo then opens connections of its own between the replicas.

Replica 0 alone publishes parameters to the actors and writes checkpoints. Every update
consumes G batches, so the replay's rate limiter sees G times the samples per update.
At the end ``hold`` stops every replica at one version (see ``DataParallelLearner``)
while the actors still feed the replay, so no replica is left inside an all-reduce.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from beamrl.errors import BeamError, NoProc
from beamrl.node import Node
from beamrl.rl.apex.config import ApexConfig, replay_address
from beamrl.rl.apex.replica_host import KIND
from beamrl.rl.training.actors import ActorNodes, wait_for_actor_trees
from beamrl.supervisor import ChildSpec, child

__all__ = ["LearnerReplicas", "group_address"]

log = logging.getLogger("beamrl.rl.apex")
_LEARNER = "beamrl.rl.deep.distributed:DataParallelLearner"  # by name: Ape-X's modules stay torch-free
_WILDCARDS = ("0.0.0.0", "*", "::", "[::]")
_RECIPE = "beamrl node start nodes/learner-replica.toml (or --tree learner_replica)"


def _host(address: str) -> str:
    """``tcp://HOST:PORT[#NAME]`` -> ``HOST``."""
    return address.partition("#")[0].removeprefix("tcp://").rpartition(":")[0]


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: taken as reachable from elsewhere
        return False


def _route_to(host: str) -> str:
    """The address of this machine's interface that reaches ``host`` (no packet is sent)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((host, 9))
            return str(s.getsockname()[0])
    except OSError as exc:
        raise ValueError(f"--attach-learner: cannot find a route to {host!r} ({exc})") from None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return int(s.getsockname()[1])


def group_address(listen: str, attach: Sequence[str], port: int = 0) -> str:
    """Where G replicas meet (``tcp://HOST:PORT``): reachable from every replica node in ``attach``.

    HOST is the learner node's ``listen`` host; for a wildcard (``0.0.0.0``) the address
    this machine reaches the first remote replica node from (127.0.0.1 when all are on
    loopback). A loopback listen with a replica node on another machine is refused: it
    could not reach the group. PORT is ``port``, or a free one when 0.
    """
    host = _host(listen)
    remote = [h for h in map(_host, attach) if not _is_loopback(h)]
    if host in _WILDCARDS:
        host = _route_to(remote[0]) if remote else "127.0.0.1"
    elif _is_loopback(host) and remote:
        raise ValueError(
            f"the learner node listens on {listen}, so the replica node at {remote[0]} could not reach its"
            " data-parallel group: give --listen tcp://HOST:PORT with an address of this machine that the"
            " replica machines reach (with --keys DIR: it is no longer loopback)"
        )
    if ":" in host.strip("[]"):
        raise ValueError(f"the learner replicas' group needs an IPv4 address or host name, got {host!r}")
    return f"tcp://{host}:{port or _free_port()}"


class LearnerReplicas:
    """Replicas 1..G-1 of an Ape-X run's learner, on nodes of their own (see the module docstring)."""

    def __init__(
        self,
        node: Node,
        cfg: ApexConfig,
        env_id: str,
        seed: int,
        out_dir: Path,
        group: str,
        attach: Sequence[str] = (),
    ) -> None:
        """``group``: ``group_address``'s answer; ``attach``: replica nodes' ``ADDR[#NAME]`` (at most G - 1)."""
        self.node, self.cfg, self.env_id, self.seed, self.out_dir = node, cfg, env_id, seed, out_dir
        self.group = group
        self.attach = list(attach)
        self.attached: dict[str, str] = {}  #: name -> address of the attached replica nodes
        self.nodes: ActorNodes | None = None  #: the replica nodes started on loopback
        self.names: list[str] = []  #: replica i's node is names[i - 1]

    def learner_child(self, checkpoint_dir: str) -> ChildSpec:
        """Replica 0's child spec, for the learner node's ``apex`` supervisor."""
        return child(_LEARNER, *self._learner_args(), checkpoint_dir, name="learner", **self._group(0))

    def _learner_args(self) -> list[Any]:
        return ["dqn", self.env_id, self.cfg.learner_overrides(), self.seed]

    def _group(self, rank: int) -> dict[str, Any]:
        cfg = self.cfg
        return {"rank": rank, "world_size": cfg.learners, "address": self.group, "backend": cfg.learner_backend}

    async def start(self, start_replica_zero: Any) -> None:
        """Attach the replica nodes given, start the rest on loopback, then replica 0 (awaiting
        ``start_replica_zero``) and the others together, then their loops."""
        try:
            for address in self.attach:
                name = await self._attach(address)
                self.attached[name] = address
            count = self.cfg.learners - 1 - len(self.attached)
            if count:
                address = self.node.address or ""
                self.nodes = ActorNodes(count, address, self.node.name, self.out_dir, "learner", "learner_replica")
            self.names = [*self.attached, *(self.nodes.names if self.nodes is not None else [])]
            await wait_for_actor_trees(self.node, self.names, self.nodes, attached=self.attached)
        except BaseException:
            start_replica_zero.close()  # never started: no "never awaited" warning
            raise
        starts = [
            self.node.start_child(
                ("workers", name),
                {"start": _LEARNER, "args": self._learner_args(), "kwargs": self._group(rank), "name": "learner"},
                timeout=120.0,
            )
            for rank, name in enumerate(self.names, start=1)
        ]
        await asyncio.gather(start_replica_zero, *starts)
        cfg = self.cfg
        replay = replay_address(cfg, self.node.name)
        for name in self.names:
            loop = {
                "start": "beamrl.rl.apex.loop:LearnerLoop",
                "args": [replay, "learner", cfg.batch_size, cfg.prioritized, cfg.lr_decay_updates],
                "name": "learner-loop",
            }
            await self.node.start_child(("workers", name), loop, timeout=30.0)

    def _targets(self) -> list[Any]:
        return ["learner", *(("learner", name) for name in self.names)]

    async def hold(self, timeout: float = 120.0) -> dict[str, Any]:
        """Stop every replica at one version (the actors must still be running); their versions and digests."""
        version = (await self.node.call("learner", ["stats"], timeout=30.0))["version"]
        target = version + 2  # replicas are within one update of each other
        await asyncio.gather(*(self.node.call(t, ["hold", target], timeout=30.0) for t in self._targets()))
        deadline = time.monotonic() + timeout
        while True:
            stats = [await self.node.call(t, ["stats"], timeout=30.0) for t in self._targets()]
            if all(s["version"] == target for s in stats) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        return {"versions": [s["version"] for s in stats], "digests": [s["digest"] for s in stats]}

    async def loop_updates(self) -> list[int]:
        """Updates each replica's loop (1..G-1) asked for."""
        return [
            int((await self.node.call(("learner-loop", name), ["stats"], timeout=10.0))["updates"])
            for name in self.names
        ]

    async def _attach(self, address: str, grace: float = 3.0) -> str:
        """Connect to a replica node started elsewhere; its name, once it proved it can host a replica."""
        try:
            name = await self.node.connect(address)
        except BeamError as exc:
            raise type(exc)(f"--attach-learner {address}: {exc} (is {_RECIPE} running there?)") from None
        if name in self.attached:
            raise ValueError(f"--attach-learner {address}: node {name!r} is attached twice")
        deadline = time.monotonic() + grace
        while True:
            try:
                info = await self.node.call(("replica-host", name), ["info"], timeout=5.0)
                break
            except NoProc:  # its tree may still be starting
                if time.monotonic() > deadline:
                    raise ValueError(
                        f"--attach-learner {address}: node {name!r} is not a learner-replica node (no"
                        f" 'replica-host' process; an actor node?): start it with {_RECIPE}"
                    ) from None
                await asyncio.sleep(0.1)
        if not isinstance(info, dict) or info.get("kind") != KIND:
            raise ValueError(f"--attach-learner {address}: node {name!r} answered {info!r}, not a replica node's info")
        if info.get("torch") is None:
            raise ValueError(
                f"--attach-learner {address}: node {name!r} (host {info.get('host')!r}) has no torch, which a"
                " learner replica needs: pip install torch there"
            )
        try:
            await self.node.call(("learner", name), ["stats"], timeout=5.0)
        except NoProc:
            return name
        raise ValueError(
            f"--attach-learner {address}: node {name!r} already hosts a 'learner' (an earlier run's?): restart that"
            " node, then this run"
        )

    async def release(self, timeout: float = 30.0) -> None:
        """Stop the loop and replica this run started on each attached node (the node stays up); once."""
        attached, self.attached = self.attached, {}
        for name in attached:
            for started in ("learner-loop", "learner"):
                try:
                    await self.node.terminate_child(("workers", name), started, timeout=timeout)
                except BeamError as exc:
                    log.info("leaving %s on %r: %s", started, name, exc)

    def close(self) -> None:
        """Stop the replica nodes started on loopback."""
        if self.nodes is not None:
            self.nodes.close()
