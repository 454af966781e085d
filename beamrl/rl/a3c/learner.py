"""``A3CLearner``: the process that applies the workers' gradients and versions the parameters.

    pid = await node.start(A3CLearner, "CartPole-v1", cfg.to_data(), 0, "run/learner", name="learner")
    await node.call("learner", ["push", 12, grads, 40])   # {"version": 13, "applied": True, "lag": 0}
    await node.call("learner", ["get_params", 12])        # (13, {name: ndarray}), or None when not newer
    await node.call("learner", ["spec"])                  # the numpy policy's description
    await node.call("learner", ["stats"])                 # pushes applied and dropped, lags, losses

Requests:

``["push", version, grads, env_steps]``  a worker's gradient, computed on the parameters of
        ``version``, for ``env_steps`` env steps of rollout. Applied (one shared-optimizer
        step; the version goes up by one) unless it is stale: more than ``max_staleness``
        versions behind, or from a version this learner never published (newer than its
        own, as after a restart from an older checkpoint); a stale push is dropped and
        counted, and the reply says so. A gradient that does not fit the model (names,
        shapes, NaN) is refused with ``BadGradient`` and the learner keeps running.
``["get_params", since]`` ``["spec"]`` ``["stats"]`` ``["checkpoint"]``

Pushes are applied one at a time, in arrival order (a GenServer's mailbox is the lock
the shared optimizer needs). The learner checkpoints every ``checkpoint_every`` applied
pushes and in ``terminate`` (fenced, as ``beamrl.rl.deep.learner.Learner``); one started
on a directory with a checkpoint resumes from it (weights, optimizer statistics, version).
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import torch

from beamrl.errors import Rejected
from beamrl.fencing import WriterFence
from beamrl.gen_server import GenServer
from beamrl.process import From
from beamrl.reprs import short_repr
from beamrl.rl.a3c.config import a3c_config
from beamrl.rl.a3c.grads import SharedModel
from beamrl.rl.deep.checkpoint import open_checkpoint, write_checkpoint
from beamrl.rl.deep.learner import load_algorithm_state, save_algorithm_state
from beamrl.rl.deep.params import VersionedParams

__all__ = ["A3CLearner"]

log = logging.getLogger("beamrl.rl.a3c")


class A3CLearner(GenServer):
    """See the module docstring."""

    async def init(self, env_id: str, config: dict[str, Any], seed: int = 0, checkpoint_dir: str | None = None) -> None:
        torch.set_num_threads(1)
        self.cfg = a3c_config(env_id, config)
        self.env_id = env_id
        self.model = SharedModel(self.cfg, env_id, seed)
        self.published = VersionedParams()
        self.applied = 0  #: pushes applied by this incarnation
        self.stale = 0  #: pushes dropped for staleness
        self.env_steps = 0  #: env steps behind the applied pushes
        self.lags: list[int] = []  #: version lag of recent applied pushes
        self.last: dict[str, float] = {}
        self.checkpoints = 0
        self.restored_from: int | None = None
        self.started = time.monotonic()
        self.dir = Path(checkpoint_dir) if checkpoint_dir else None
        self._fence: WriterFence | None = None
        if self.dir is not None:
            self._fence = open_checkpoint(self.dir, lambda: self._alive, self._restore)

    def _restore(self, folder: Path, meta: dict[str, Any]) -> None:
        load_algorithm_state(self.model, folder, meta)
        self.env_steps = int(meta.get("env_steps", 0))
        self.restored_from = self.model.updates
        log.info("a3c learner resumed from %s at version %d", folder, self.version)

    @property
    def version(self) -> int:
        return self.model.updates

    async def handle_call(self, request: Any, from_: From) -> Any:
        match request:
            case ["push", int() as based_on, grads, int() as steps] if not isinstance(based_on, bool):
                return await self._push(based_on, grads, steps)
            case ["push", *_]:
                raise Rejected('push takes ["push", version:int, {name: ndarray}, env_steps:int]')
            case ["get_params", since]:
                if since is not None and (not isinstance(since, int) or isinstance(since, bool)):
                    raise Rejected(f"get_params takes a version number or None, got {since!r}")
                return self.published.get(since, self.version, self.model.policy_params)
            case ["spec"]:
                return self.model.spec()
            case ["stats"]:
                lags = self.lags[-1_000:]
                return {
                    "env_id": self.env_id,
                    "version": self.version,
                    "applied": self.applied,
                    "stale": self.stale,
                    "env_steps": self.env_steps,
                    "mean_lag": sum(lags) / len(lags) if lags else 0.0,
                    "max_lag": max(lags, default=0),
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
        raise Rejected(f"a3c learner: unknown request {short_repr(request)}")

    async def _push(self, based_on: int, grads: Any, steps: int) -> dict[str, Any]:
        lag = self.version - based_on
        if lag < 0 or lag > self.cfg.max_staleness:
            self.stale += 1
            return {"version": self.version, "applied": False, "lag": lag}
        checked = self.model.check(grads)  # BadGradient (a Rejected) names what is wrong
        norm = await asyncio.to_thread(self.model.apply, checked)
        self.applied += 1
        self.env_steps += max(0, steps)
        self.lags.append(lag)
        if len(self.lags) > 10_000:
            del self.lags[:-1_000]
        self.last = {"grad_norm": norm}
        if self.dir is not None and self.version % self.cfg.checkpoint_every == 0:
            await self._checkpoint()
        return {"version": self.version, "applied": True, "lag": lag}

    async def _checkpoint(self) -> None:
        assert self.dir is not None
        files, meta = save_algorithm_state(self.model, {"algo": "a3c", "env_id": self.env_id})
        meta["env_steps"] = self.env_steps
        await asyncio.to_thread(write_checkpoint, self.dir, files, meta, self.version, self._fence)
        self.checkpoints += 1

    async def terminate(self, reason: Any) -> None:
        try:
            if self.dir is not None:
                await self._checkpoint()
        finally:
            if self._fence is not None:
                self._fence.release()
