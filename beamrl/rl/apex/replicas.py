"""Ape-X with G data-parallel learner replicas: ``beamrl train apex-dqn ENV --set learners=G``.

The learner node's ``learner`` becomes replica 0 of G (``DataParallelLearner``:
``beamrl.rl.deep.distributed``); G - 1 more nodes (OS processes on loopback, named
``RUN-learner1``...) each run replica ``i`` and its own ``learner-loop``, which samples
the learner node's ``replay`` (or its shards) and sends priorities back, as replica 0's loop does::

    learner node                          RUN-learner1 ... RUN-learner{G-1}
      replay                  <------------ learner-loop (own batches)
      learner (replica 0)  <- all-reduce -> learner (replica i)
      learner-loop                          (gloo over 127.0.0.1:PORT)

Replica 0 alone publishes parameters to the actors and writes checkpoints. Every update
consumes G batches, so the replay's rate limiter sees G times the samples per update.
At the end ``hold`` stops every replica at one version (see ``DataParallelLearner``)
while the actors still feed the replay, so no replica is left inside an all-reduce.
"""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path
from typing import Any

from beamrl.node import Node
from beamrl.rl.apex.config import ApexConfig, replay_address
from beamrl.rl.training.actors import ActorNodes, wait_for_actor_trees
from beamrl.supervisor import ChildSpec, child

__all__ = ["LearnerReplicas"]

_LEARNER = "beamrl.rl.deep.distributed:DataParallelLearner"  # by name: Ape-X's modules stay torch-free


def _free_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LearnerReplicas:
    """Replicas 1..G-1 of an Ape-X run's learner, on nodes of their own (see the module docstring)."""

    def __init__(self, node: Node, cfg: ApexConfig, env_id: str, seed: int, out_dir: Path) -> None:
        self.node, self.cfg, self.env_id, self.seed = node, cfg, env_id, seed
        self.group = f"tcp://127.0.0.1:{_free_loopback_port()}"
        self.nodes = ActorNodes(cfg.learners - 1, node.address or "", node.name, out_dir, role="learner")
        self.names = list(self.nodes.names)

    def learner_child(self, checkpoint_dir: str) -> ChildSpec:
        """Replica 0's child spec, for the learner node's ``apex`` supervisor."""
        return child(_LEARNER, *self._learner_args(), checkpoint_dir, name="learner", **self._group(0))

    def _learner_args(self) -> list[Any]:
        return ["dqn", self.env_id, self.cfg.learner_overrides(), self.seed]

    def _group(self, rank: int) -> dict[str, Any]:
        return {"rank": rank, "world_size": self.cfg.learners, "address": self.group}

    async def start(self, start_replica_zero: Any) -> None:
        """Start replica 0 (awaiting ``start_replica_zero``) and the others together, then their loops."""
        try:
            await wait_for_actor_trees(self.node, self.names, self.nodes)
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

    def close(self) -> None:
        self.nodes.close()
