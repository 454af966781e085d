"""``Learner``: the process that owns the networks, the optimizer and the checkpoints.

    pid = await node.start(Learner, "dqn", "CartPole-v1", config, seed=0, checkpoint_dir="run/learner")
    reply = await node.call(pid, ["learn", batch])     # {"version": v, "stats": {...}, "td": array}
    await node.call(pid, ["get_params", 3])             # (version, {name: ndarray}) or None if not newer than 3
    await node.call(pid, ["spec"])                      # the numpy policy's description
    await node.call(pid, ["stats"])                     # counters and last losses (REPL: learner.stats())

Requests (a batch in, versioned parameters out: the boundary issue 13's remote,
torch-free actors use):

``["learn", batch]``          one update; the version goes up by one
``["get_params", since]``     ``(version, params)``, or ``None`` when ``since`` is not None and
                               the learner's version is not newer than ``since``
``["spec"]`` ``["stats"]`` ``["checkpoint"]``

It checkpoints every ``checkpoint_every`` updates and in ``terminate`` (the files are
written in a worker thread, under the directory's writer fence: see
``beamrl.rl.deep.checkpoint``); a learner started on a directory that holds a
checkpoint resumes from it (weights, targets, optimizer moments, torch RNG, version),
which is how a supervisor's restart after a crash or a kill continues the run. The
version is the update count, so after a restart it is that of the checkpoint: an actor
that sees it go down refetches.
Updates run in a worker thread, so the node keeps serving while torch computes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from beamrl.errors import Rejected
from beamrl.fencing import WriterFence
from beamrl.gen_server import GenServer
from beamrl.process import From
from beamrl.reprs import short_repr
from beamrl.rl.deep.algo import Algorithm
from beamrl.rl.deep.checkpoint import (
    open_checkpoint,
    read_tensors,
    tensor_bytes,
    write_checkpoint,
)
from beamrl.rl.deep.config import DDPGConfig, DQNConfig, PGConfig, config_for
from beamrl.rl.deep.ddpg import DDPG
from beamrl.rl.deep.dqn import DQN
from beamrl.rl.deep.params import VersionedParams, params_to_bytes
from beamrl.rl.deep.pg import PG
from beamrl.rl.envs import make

__all__ = ["Learner", "load_algorithm_state", "make_algorithm", "save_algorithm_state"]

log = logging.getLogger("beamrl.rl.deep")


def make_algorithm(algo: str, env_id: str, cfg: Any, seed: int, device: str | torch.device | None = None) -> Algorithm:
    """The torch learner for ``algo`` on ``env_id``'s spaces, on ``device`` (default: ``cfg.device``)."""
    env = make(env_id)
    try:
        obs_space, act_space = env.observation_space, env.action_space
    finally:
        env.close()
    if algo == "dqn" and isinstance(cfg, DQNConfig):
        return DQN(cfg, obs_space, act_space, seed, device)
    if algo in ("reinforce", "a2c", "ppo") and isinstance(cfg, PGConfig):
        return PG(algo, cfg, obs_space, act_space, seed, device)
    if algo in ("ddpg", "td3") and isinstance(cfg, DDPGConfig):
        return DDPG(cfg, obs_space, act_space, seed, device)
    raise ValueError(f"no deep algorithm {algo!r} for a config of type {type(cfg).__name__}")


def save_algorithm_state(algorithm: Algorithm, extra_meta: dict[str, Any]) -> tuple[dict[str, bytes], dict[str, Any]]:
    """Files (``model.safetensors`` of the policy, ``train_state.safetensors``) and meta of a learner."""
    tensors, meta = algorithm.state()
    files = {
        "model.safetensors": params_to_bytes(algorithm.policy_params(), {"spec": algorithm.spec()}),
        "train_state.safetensors": tensor_bytes(tensors),
    }
    return files, {**extra_meta, "algorithm": meta}


def load_algorithm_state(algorithm: Algorithm, folder: Path, meta: dict[str, Any]) -> None:
    algorithm.load_state(read_tensors(folder / "train_state.safetensors"), meta["algorithm"])


class Learner(GenServer):
    """See the module docstring."""

    async def init(
        self, algo: str, env_id: str, config: dict[str, Any], seed: int = 0, checkpoint_dir: str | None = None
    ) -> None:
        torch.set_num_threads(1)
        self.cfg = config_for(algo, env_id, config)
        self.algo_name, self.env_id = algo, env_id
        self.algorithm = make_algorithm(algo, env_id, self.cfg, seed)
        self.dir = Path(checkpoint_dir) if checkpoint_dir else None
        self.last: dict[str, float] = {}
        self.checkpoints = 0
        self.restored_from: int | None = None
        self.started = time.monotonic()
        self.published = VersionedParams()
        self._fence: WriterFence | None = None
        if self.dir is not None:
            self._fence = open_checkpoint(self.dir, lambda: self._alive, self._restore)

    def _restore(self, folder: Path, meta: dict[str, Any]) -> None:
        load_algorithm_state(self.algorithm, folder, meta)
        self.restored_from = self.algorithm.updates
        log.info("learner resumed from %s at update %d", folder, self.algorithm.updates)

    @property
    def version(self) -> int:
        return self.algorithm.updates

    async def handle_call(self, request: Any, from_: From) -> Any:
        match request:
            case ["learn", dict() as batch]:
                stats = await asyncio.to_thread(self.algorithm.learn, batch)
                if self.dir is not None and self.version % self.cfg.checkpoint_every == 0:
                    await self._checkpoint()
                td = stats.pop("td", None)
                self.last = {k: float(v) for k, v in stats.items()}
                reply: dict[str, Any] = {"version": self.version, "stats": self.last}
                if td is not None:
                    reply["td"] = np.asarray(td, np.float32)
                return reply
            case ["get_params", since]:
                if since is not None and not isinstance(since, int):
                    raise Rejected(f"get_params takes a version number or None, got {since!r}")
                return self.published.get(since, self.version, self.algorithm.policy_params)
            case ["spec"]:
                return self.algorithm.spec()
            case ["stats"]:
                return {
                    "algo": self.algo_name,
                    "env_id": self.env_id,
                    "version": self.version,
                    "updates": self.algorithm.updates,
                    "device": str(self.algorithm.device),
                    "checkpoints": self.checkpoints,
                    "restored_from": self.restored_from,
                    "uptime_s": time.monotonic() - self.started,
                    **self.last,
                }
            case ["checkpoint"]:
                if self.dir is None:
                    raise Rejected("this learner has no checkpoint directory")
                await self._checkpoint()
                return self.version
        raise Rejected(f"learner: unknown request {short_repr(request)}")

    async def _checkpoint(self) -> None:
        """Snapshot the state here, write the files in a worker thread (fenced)."""
        assert self.dir is not None
        files, meta = save_algorithm_state(self.algorithm, {"algo": self.algo_name, "env_id": self.env_id})
        await asyncio.to_thread(write_checkpoint, self.dir, files, meta, self.version, self._fence)
        self.checkpoints += 1

    async def terminate(self, reason: Any) -> None:
        try:
            if self.dir is not None:
                await self._checkpoint()
        finally:
            if self._fence is not None:
                self._fence.release()
