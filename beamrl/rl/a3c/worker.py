"""``A3CWorker``: one A3C worker as a process: its envs, a parameter copy, gradients pushed to the learner.

    child("beamrl.rl.a3c.worker:A3CWorker", "CartPole-v1", cfg.to_data(), 0, seed, ("learner", "learner"),
          name="a3c-worker-0")
    await node.call("a3c-worker-0", ["progress"])   # steps, episodes since the last call, version, pushes
    await node.call("a3c-worker-0", ["act", obs])   # the greedy action of its copy (REPL: worker.act(obs))

Each round: a rollout of ``n_steps`` on each of its ``num_envs`` envs with its copy of
the policy (a numpy forward pass), the n-step actor-critic gradient of that rollout on
its torch copy (``beamrl.rl.a3c.grads``), then ``["push", version, grads, steps]`` to the
learner, and every ``pull_every`` pushes ``["get_params", version]`` (answered only when
newer). Unlike an Ape-X actor a worker needs torch: it differentiates the loss.

The torch half (``beamrl.rl.a3c.grads.WorkerCopy``) is imported and built in a worker
thread during ``init``, and each gradient is computed in one: importing torch takes
seconds on a small or busy machine, and the node's event loop must keep answering
heartbeats meanwhile (a node whose loop stalls past its heartbeat timeout is declared down).

When the learner or its node is away, the push fails; the worker drops that gradient,
keeps acting on the parameters it has and tries again next round (every 0.1 s while
it fails), so a restarted learner simply gets pushes again. A worker started fresh asks
for ``["get_params", None]`` in ``init``: a worker restarted on a restarted node starts
from the current version.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from beamrl.api import call, cast, send_after
from beamrl.errors import BeamError, Rejected
from beamrl.gen_server import GenServer
from beamrl.process import From
from beamrl.reprs import short_repr
from beamrl.rl.a3c.config import A3CConfig, a3c_config
from beamrl.rl.deep.acting import EnvBatch
from beamrl.rl.deep.params import NumpyPolicy, Params

if TYPE_CHECKING:
    from beamrl.rl.a3c.grads import WorkerCopy

__all__ = ["A3CWorker", "rollout"]

log = logging.getLogger("beamrl.rl.a3c")
_CALL_TIMEOUT_S = 10.0
_RETRY_S = 0.1


def _torch_side(env_id: str, cfg: A3CConfig) -> WorkerCopy:
    """Import the gradient module (and torch) and build the worker's copy: run in a worker thread."""
    grads = importlib.import_module("beamrl.rl.a3c.grads")
    copy: WorkerCopy = grads.WorkerCopy(env_id, cfg)
    return copy


def rollout(envs: EnvBatch, policy: NumpyPolicy, rng: np.random.Generator, n_steps: int) -> dict[str, np.ndarray]:
    """``n_steps`` steps of every env with actions sampled from ``policy``: arrays (T, N) (see ``grads``)."""
    cols: dict[str, list[np.ndarray]] = {
        k: [] for k in ("obs", "actions", "rewards", "terminated", "dones", "next_obs")
    }
    for _ in range(n_steps):
        actions = policy.sample(envs.obs, rng)
        obs, rewards, term, trunc, nxt = envs.step(actions)
        for key, value in zip(cols, (obs, actions, rewards, term, term | trunc, nxt), strict=True):
            cols[key].append(value)
    batch = {k: np.stack(v) for k, v in cols.items()}
    batch["terminated"] = batch["terminated"].astype(np.float32)
    batch["dones"] = batch["dones"].astype(np.float32)
    return batch


class A3CWorker(GenServer):
    """See the module docstring."""

    async def init(
        self, env_id: str, config: dict[str, Any], index: int, seed: int, learner: Any = "learner", go: bool = True
    ) -> None:
        """``go=False``: ready but idle until a ``["go"]`` cast (a run starts all its workers, then lets them go)."""
        self.cfg = a3c_config(env_id, config)
        self.index, self.learner = int(index), learner
        worker_seed = seed + 7_919 * (self.index + 1)
        self.envs = EnvBatch(env_id, self.cfg.num_envs, worker_seed)
        self.rng = np.random.default_rng(worker_seed)
        self.copy = await asyncio.to_thread(_torch_side, env_id, self.cfg)
        spec = await call(learner, ["spec"], timeout=30.0)
        self.policy = NumpyPolicy(spec)
        self.version = -1
        self.steps = 0
        self.pushes = 0  #: pushes the learner applied
        self.stale = 0  #: pushes the learner dropped as stale
        self.failures = 0  #: pushes or pulls that did not reach the learner
        self.episodes: list[tuple[float, int]] = []
        self.last: dict[str, float] = {}
        self.rate = (time.monotonic(), 0)
        self.sps = 0.0
        await self._pull(None)
        if self.version < 0:
            raise RuntimeError(f"a3c worker {index}: the learner {learner!r} gave no parameters")
        self.going = False
        if go:
            cast(self.pid, ["go"])

    def _load(self, version: int, params: Params) -> None:
        self.version = version
        self.policy.load(params)
        self.copy.load(params)

    async def _pull(self, since: int | None) -> bool:
        try:
            got = await call(self.learner, ["get_params", since], timeout=_CALL_TIMEOUT_S)
        except BeamError as exc:
            self.failures += 1
            log.info("a3c worker %d: no parameters this time (%s); acting on version %d", self.index, exc, self.version)
            return False
        if got is not None:
            self._load(*got)
        return True

    # -- the loop -------------------------------------------------------------------------
    async def handle_cast(self, request: Any) -> None:
        if request == ["go"] and not self.going:
            self.going = True
            await self._round()
        elif request == ["tick"]:
            await self._round()

    async def handle_info(self, message: Any) -> None:
        if message == "tick":
            await self._round()

    async def _round(self) -> None:
        batch = rollout(self.envs, self.policy, self.rng, self.cfg.n_steps)
        steps = batch["rewards"].size
        self.steps += steps
        grads, self.last = await asyncio.to_thread(self.copy.gradients, batch)
        self.episodes.extend(self.envs.drain())
        if len(self.episodes) > 10_000:  # nobody polls: keep the newest
            del self.episodes[:-10_000]
        now = time.monotonic()
        if now - self.rate[0] >= 1.0:
            self.sps, self.rate = (self.steps - self.rate[1]) / (now - self.rate[0]), (now, self.steps)
        try:
            reply = await call(self.learner, ["push", self.version, grads, steps], timeout=_CALL_TIMEOUT_S)
        except BeamError as exc:  # the learner restarting or its node away: drop it, act on, retry soon
            self.failures += 1
            log.info("a3c worker %d: push failed (%s)", self.index, exc)
            send_after(_RETRY_S, self.pid, "tick")
            return
        if reply["applied"]:
            self.pushes += 1
        else:
            self.stale += 1
        if not reply["applied"] or (self.pushes % self.cfg.pull_every == 0 and reply["version"] > self.version):
            await self._pull(self.version if reply["version"] >= self.version else None)
        await asyncio.sleep(0)  # let the node's other tasks run (a stop, heartbeats) between rounds
        cast(self.pid, ["tick"])

    # -- requests -------------------------------------------------------------------------
    async def handle_call(self, request: Any, from_: From) -> Any:
        match request:
            case ["progress"]:
                episodes, self.episodes = self.episodes, []
                return {
                    "index": self.index,
                    "steps": self.steps,
                    "episodes": [[r, n] for r, n in episodes],
                    "version": self.version,
                    "pushes": self.pushes,
                    "stale": self.stale,
                    "failures": self.failures,
                    "steps_per_s": self.sps,
                    **self.last,
                }
            case ["act", obs]:
                try:
                    return int(self.policy.greedy(np.asarray(obs, np.float32).reshape(1, -1))[0])
                except ValueError as exc:
                    raise Rejected(f"a3c worker {self.index}: cannot act on {obs!r}: {exc}") from None
        raise Rejected(f"a3c worker: unknown request {short_repr(request)}")
