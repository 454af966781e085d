"""``Actor``: the process that acts (torch-free) and feeds a ``Learner``, one batch per message.

    pid = await node.start(Actor, "dqn", "CartPole-v1", config, 0, 50_000, "run/actor", learner="learner")
    await node.call(pid, ["progress"])      # steps, done, new metric rows (drained), learner version, replay size
    await node.call(pid, ["act", obs])      # the greedy action (REPL: actor.act(obs))
    await node.call(pid, ["final"])         # spec + the parameters to keep (best evaluation or last)
    # envs=["env0", ...]: step EnvServers (local or remote, one per env) instead of local envs
    # env_wait=S: a (restarted) process waits up to S seconds for its EnvServers (see deep.env_servers)

It owns an ``Acting`` (its envs, a numpy copy of the policy, the replay memory or the
rollout) and drives the loop in slices of ~50 ms so that calls interleave: act a
phase, send each batch with ``["learn", batch]``, use the reply (new priorities, the
learner's version), refresh its parameters with ``["get_params", version]`` every
``param_sync_every`` updates, or at once when the version went down (the learner
restarted from a checkpoint). When the learner is gone the batch is dropped and the
actor retries shortly, so a killed learner costs a few batches, not the run.

Every ``eval_every`` env steps it evaluates the greedy policy, keeps the best
parameters (``keep_best``) and checkpoints itself (env snapshots, RNG, replay, best
parameters) into ``checkpoint_dir`` (written in a worker thread, under the directory's
writer fence: see ``beamrl.rl.deep.checkpoint``); a restarted actor resumes from there.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from beamrl.api import call, cast, send_after
from beamrl.errors import CallTimeout, NoProc, ProcessCrashed, Rejected
from beamrl.fencing import WriterFence
from beamrl.gen_server import GenServer
from beamrl.process import From
from beamrl.reprs import short_repr
from beamrl.rl.deep.acting import Acting
from beamrl.rl.deep.checkpoint import (
    npz_bytes,
    open_checkpoint,
    read_npz,
    read_tensors,
    write_checkpoint,
)
from beamrl.rl.deep.config import DQNConfig, config_for
from beamrl.rl.deep.evaluate import evaluate
from beamrl.rl.deep.params import params_to_bytes
from beamrl.rl.deep.served_env import ServedEnv

__all__ = ["Actor"]

log = logging.getLogger("beamrl.rl.deep")
_SLICE_S = 0.05
_LEARNER_DOWN = (NoProc, ProcessCrashed, CallTimeout)


class Actor(GenServer):
    """See the module docstring."""

    async def init(
        self,
        algo: str,
        env_id: str,
        config: dict[str, Any],
        seed: int,
        total_steps: int,
        checkpoint_dir: str | None = None,
        learner: Any = "learner",
        envs: list[Any] | None = None,
        env_wait: float = 0.0,
    ) -> None:
        self.algo, self.env_id, self.learner = algo, env_id, learner
        self.cfg = config_for(algo, env_id, config)
        spec = await call(learner, ["spec"])
        self.served = bool(envs)
        if envs:  # EnvServers: acting runs in a worker thread, its env calls are carried out by the loop
            served = [await ServedEnv.connect(self.node, target, wait=env_wait) for target in envs]
            self.acting = await asyncio.to_thread(Acting, algo, self.cfg, env_id, seed, spec, total_steps, served)
        else:
            self.acting = Acting(algo, self.cfg, env_id, seed, spec, total_steps)
        self.version, params = await call(learner, ["get_params", None])
        self.learner_version = self.version
        self.acting.set_params(params)
        self.dir = Path(checkpoint_dir) if checkpoint_dir else None
        self.rows: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.loss = math.nan
        self.best_return = -math.inf
        self.best: tuple[int, dict[str, np.ndarray]] | None = None
        self.next_eval = self.cfg.eval_every or total_steps + 1
        self.rate = (time.monotonic(), 0)
        self.sps = 0.0
        self.done = False
        self._fence: WriterFence | None = None
        if self.dir is not None:
            self._fence = open_checkpoint(self.dir, lambda: self._alive, self._restore)
        cast(self.pid, ["tick"])

    # -- the loop -------------------------------------------------------------------------
    async def handle_cast(self, request: Any) -> None:
        if request == ["tick"]:
            await self._tick()

    async def handle_info(self, message: Any) -> None:
        if message == "tick":
            await self._tick()

    async def _tick(self) -> None:
        deadline = time.monotonic() + _SLICE_S
        acting = self.acting
        while not acting.finished and time.monotonic() < deadline:
            batches = await asyncio.to_thread(acting.next_batches) if self.served else acting.next_batches()
            for batch in batches:
                try:
                    reply = await call(self.learner, ["learn", batch], timeout=60.0)
                except _LEARNER_DOWN as e:
                    self._event("learner_unavailable", error=f"{type(e).__name__}: {e}")
                    send_after(0.05, self.pid, "tick")
                    return
                acting.feedback(batch, reply)
                self.learner_version = int(reply["version"])
                self.loss = reply["stats"].get("loss", math.nan)
                await self._maybe_refresh(int(reply["version"]))
            self._record_episodes()
            if acting.steps >= self.next_eval:
                await self._evaluate()
        if acting.finished:
            if not self.done:
                self.done = True
                self._record_episodes()
                await self._checkpoint()
            return
        cast(self.pid, ["tick"])

    async def _maybe_refresh(self, version: int) -> None:
        if version < self.version:  # the learner restarted from an older checkpoint
            self._event("learner_version_went_back", seen=self.version, now=version)
            got = await call(self.learner, ["get_params", None])
        elif version - self.version >= self.cfg.param_sync_every:
            got = await call(self.learner, ["get_params", self.version])
        else:
            return
        if got is not None:
            self.version, params = got
            self.acting.set_params(params)

    def _record_episodes(self) -> None:
        now, steps = time.monotonic(), self.acting.steps
        t0, s0 = self.rate
        if now - t0 >= 1.0:
            self.sps, self.rate = (steps - s0) / (now - t0), (now, steps)
        eps = self.acting.epsilon() if isinstance(self.cfg, DQNConfig) else None
        for ret, length in self.acting.envs.drain():
            self.rows.append(
                {"step": steps, "episode_return": ret, "episode_length": length, "loss": self.loss, "epsilon": eps}
                | {"steps_per_s": self.sps, "version": self.version}
            )

    async def _evaluate(self) -> None:
        while self.next_eval <= self.acting.steps:
            self.next_eval += self.cfg.eval_every
        policy = self.acting.policy
        returns = await asyncio.to_thread(evaluate, policy, self.env_id, self.cfg.eval_episodes)
        mean = float(np.mean(returns))
        self.rows.append({"step": self.acting.steps, "eval_mean_return": mean, "version": self.version})
        if mean >= self.best_return:
            self.best_return, self.best = mean, (self.version, dict(policy.params))
        await self._checkpoint()

    def _event(self, kind: str, **info: Any) -> None:
        if not self.events or self.events[-1]["event"] != kind:
            log.warning("actor: %s %s", kind, info)
            self.events.append({"event": kind, "step": self.acting.steps, **info})

    # -- requests -------------------------------------------------------------------------
    async def handle_call(self, request: Any, from_: From) -> Any:
        match request:
            case ["progress"]:
                rows, self.rows = self.rows, []
                events, self.events = self.events, []
                return {
                    "steps": self.acting.steps,
                    "total": self.acting.total,
                    "done": self.done,
                    "rows": rows,
                    "events": events,
                    "loss": self.loss,
                    "steps_per_s": self.sps,
                    "version": self.version,
                    "best_return": self.best_return,
                    # the learner's version at its last answer: the actor's lag is it minus "version"
                    "learner_version": self.learner_version,
                    "replay_size": None if self.acting.replay is None else len(self.acting.replay),
                }
            case ["act", obs]:
                action = self.acting.policy.greedy(np.asarray(obs, np.float32))[0]
                return action.tolist() if isinstance(action, np.ndarray) else int(action)
            case ["stats"]:
                return {
                    "steps": self.acting.steps,
                    "version": self.version,
                    "loss": self.loss,
                    "best_return": self.best_return,
                }
            case ["final"]:
                keep = self.cfg.keep_best and self.best is not None
                version, params = (
                    self.best if keep and self.best is not None else (self.version, self.acting.policy.params)
                )
                return {
                    "spec": self.acting.policy.spec,
                    "params": params,
                    "version": version,
                    "selected": "best periodic evaluation" if keep else "last",
                    "env_steps": self.acting.steps,
                    "best_return": self.best_return,
                }
        raise Rejected(f"actor: unknown request {short_repr(request)}")

    # -- checkpoints ----------------------------------------------------------------------
    async def _checkpoint(self) -> None:
        """Snapshot the state here, write the files in a worker thread (fenced)."""
        if self.dir is None:
            return
        meta, replay = self.acting.state()
        files = {}
        if replay is not None:
            files["replay.npz"] = npz_bytes(replay)
        if self.best is not None:
            files["best.safetensors"] = params_to_bytes(self.best[1])
        info = {"acting": meta, "next_eval": self.next_eval, "best_return": self.best_return}
        info["best_version"] = None if self.best is None else self.best[0]
        await asyncio.to_thread(write_checkpoint, self.dir, files, info, self.acting.steps, self._fence)

    def _restore(self, folder: Path, meta: dict[str, Any]) -> None:
        replay = read_npz(folder / "replay.npz") if (folder / "replay.npz").is_file() else None
        self.acting.load_state(meta["acting"], replay)
        self.next_eval = int(meta["next_eval"])
        self.best_return = float(meta["best_return"])
        if meta.get("best_version") is not None:
            self.best = (int(meta["best_version"]), read_tensors(folder / "best.safetensors"))
        log.info("actor resumed from %s at step %d", folder, self.acting.steps)

    async def terminate(self, reason: Any) -> None:
        try:
            await self._checkpoint()
        finally:
            if self._fence is not None:
                self._fence.release()
