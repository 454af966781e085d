"""``AgentServer``: one process that acts and learns (the single-node deep agent, ``beamrl train``'s default).

    pid = await node.start(AgentServer, "dqn", "CartPole-v1", config, 0, 50_000, "run/agent", name="agent")
    # envs=["env0", ...]: step EnvServers (local or remote, one per env) instead of local envs
    # env_wait=S: a (restarted) process waits up to S seconds for its EnvServers (see deep.env_servers)
    await node.call(pid, ["progress"])      # steps, done, new metric rows (drained), replay size
    await node.call(pid, ["act", obs])      # the greedy action (REPL: agent.act(obs))
    await node.call(pid, ["stats"])         # env steps, updates, losses, checkpoints (REPL: agent.stats())
    await node.call(pid, ["checkpoint"])    # write one now; answers the env steps it holds
    await node.call(pid, ["final"])         # spec + the parameters to keep (best evaluation or last)

The DQN design of the seeds: act a phase (``train_freq`` steps, or a rollout), learn its
batches, repeat. It owns an ``Agent`` (``beamrl.rl.deep.agent``): the ``Acting`` half
and the torch ``Algorithm`` in the same object, so a batch goes to ``learn`` as a plain
call (no message, no codec) and the numpy policy acts on views of the torch weights
(no parameter copies; a learner on a GPU lends a CPU copy instead, see ``Agent``).
The loop runs in slices of ~50 ms in a worker thread, one slice per ``["tick"]`` it
sends itself, so that the node keeps serving and calls (``progress``, ``act``,
``stats``) are answered between slices.

Every ``eval_every`` env steps it evaluates the greedy policy and keeps the best
parameters (``keep_best``). It checkpoints everything (weights, targets, optimizer
moments, torch and numpy RNGs, env snapshots, the replay, the best parameters) into
``checkpoint_dir`` every ``checkpoint_every`` updates, after each evaluation, at the
end and in ``terminate``; a restarted agent resumes from there. Checkpoints are written
under the directory's writer fence (``beamrl.fencing``): a killed agent's slice that is
still running in its thread cannot write over its successor's files.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from beamrl.api import cast
from beamrl.errors import Rejected
from beamrl.fencing import WriterFence
from beamrl.gen_server import GenServer
from beamrl.process import From
from beamrl.rl.deep.agent import Agent
from beamrl.rl.deep.checkpoint import open_checkpoint, read_tensors
from beamrl.rl.deep.config import DQNConfig, config_for
from beamrl.rl.deep.evaluate import evaluate
from beamrl.rl.deep.params import Params, params_to_bytes
from beamrl.rl.deep.served_env import ServedEnv

__all__ = ["AgentServer"]

log = logging.getLogger("beamrl.rl.deep")
_SLICE_S = 0.05


class AgentServer(GenServer):
    """See the module docstring."""

    async def init(
        self,
        algo: str,
        env_id: str,
        config: dict[str, Any],
        seed: int,
        total_steps: int,
        checkpoint_dir: str | None = None,
        envs: list[Any] | None = None,
        env_wait: float = 0.0,
    ) -> None:
        self.algo, self.env_id = algo, env_id
        self.cfg = config_for(algo, env_id, config)
        if envs:  # EnvServers: built in a worker thread, whose resets are calls the loop carries out
            served = [await ServedEnv.connect(self.node, target, wait=env_wait) for target in envs]
            self.agent = await asyncio.to_thread(Agent, algo, env_id, self.cfg, seed, total_steps, served)
        else:
            self.agent = Agent(algo, env_id, self.cfg, seed, total_steps)
        self.dir = Path(checkpoint_dir) if checkpoint_dir else None
        self.rows: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.loss = math.nan
        self.best_return = -math.inf
        self.best: tuple[int, Params] | None = None
        self.next_eval = self.cfg.eval_every or total_steps + 1
        self.next_checkpoint = self.cfg.checkpoint_every
        self.rate = (time.monotonic(), 0)
        self.sps = 0.0
        self.done = False
        self.checkpoints = 0
        self.restored_from: int | None = None
        self.started = time.monotonic()
        self._fence: WriterFence | None = None
        self._saved: tuple[int, int, float] | None = None  #: (steps, updates, best return) of the last checkpoint
        if self.dir is not None:
            self._fence = open_checkpoint(self.dir, lambda: self._alive, self._restore)
        cast(self.pid, ["tick"])

    @property
    def updates(self) -> int:
        return self.agent.algorithm.updates

    # -- the loop -------------------------------------------------------------------------
    async def handle_cast(self, request: Any) -> None:
        if request == ["tick"] and not self.done:
            await asyncio.to_thread(self._slice)
            if not self.done:
                cast(self.pid, ["tick"])

    def _slice(self) -> None:
        """Act and learn for ~50 ms (in a worker thread: the GenServer handles nothing else meanwhile)."""
        deadline = time.monotonic() + _SLICE_S
        agent, acting = self.agent, self.agent.acting
        while not acting.finished and time.monotonic() < deadline:
            if agent.step():
                self.loss = float(agent.last.get("loss", math.nan))
            self._record_episodes()
            if acting.steps >= self.next_eval:
                self._evaluate()
            if self.updates >= self.next_checkpoint:
                self._checkpoint()
        if acting.finished:
            self._record_episodes()
            self._checkpoint()
            self.done = True

    def _record_episodes(self) -> None:
        acting = self.agent.acting
        now, steps = time.monotonic(), acting.steps
        t0, s0 = self.rate
        if now - t0 >= 1.0:
            self.sps, self.rate = (steps - s0) / (now - t0), (now, steps)
        eps = acting.epsilon() if isinstance(self.cfg, DQNConfig) else None
        for ret, length in acting.envs.drain():
            self.rows.append(
                {"step": steps, "episode_return": ret, "episode_length": length, "loss": self.loss, "epsilon": eps}
                | {"steps_per_s": self.sps, "version": self.updates}
            )

    def _evaluate(self) -> None:
        acting = self.agent.acting
        while self.next_eval <= acting.steps:
            self.next_eval += self.cfg.eval_every
        returns = evaluate(acting.policy, self.env_id, self.cfg.eval_episodes)
        mean = float(np.mean(returns))
        self.rows.append({"step": acting.steps, "eval_mean_return": mean, "version": self.updates})
        if mean >= self.best_return:  # a copy: the policy's arrays are the live torch weights
            self.best_return, self.best = mean, (self.updates, self.agent.algorithm.policy_params())
        self._checkpoint()

    # -- requests -------------------------------------------------------------------------
    async def handle_call(self, request: Any, from_: From) -> Any:
        acting = self.agent.acting
        match request:
            case ["progress"]:
                rows, self.rows = self.rows, []
                events, self.events = self.events, []
                return {
                    "steps": acting.steps,
                    "total": acting.total,
                    "done": self.done,
                    "rows": rows,
                    "events": events,
                    "loss": self.loss,
                    "steps_per_s": self.sps,
                    "version": self.updates,
                    "best_return": self.best_return,
                    "replay_size": None if acting.replay is None else len(acting.replay),
                }
            case ["act", obs]:
                try:
                    x = np.asarray(obs, np.float32)
                    action = acting.policy.greedy(x)[0]
                except (ValueError, TypeError) as e:
                    raise Rejected(f"agent: act takes one observation of {self.env_id}, got {obs!r:.80}: {e}") from e
                return action.tolist() if isinstance(action, np.ndarray) else int(action)
            case ["stats"]:
                return {
                    "algo": self.algo,
                    "env_id": self.env_id,
                    "steps": acting.steps,
                    "total": acting.total,
                    "updates": self.updates,
                    "version": self.updates,
                    "checkpoints": self.checkpoints,
                    "restored_from": self.restored_from,
                    "best_return": self.best_return,
                    "steps_per_s": self.sps,
                    "uptime_s": time.monotonic() - self.started,
                    **{k: float(v) for k, v in self.agent.last.items() if np.ndim(v) == 0},
                }
            case ["checkpoint"]:
                if self.dir is None:
                    raise Rejected("this agent has no checkpoint directory")
                await asyncio.to_thread(self._checkpoint, True)
                return acting.steps
            case ["final"]:
                keep = self.cfg.keep_best and self.best is not None
                if keep and self.best is not None:
                    version, params = self.best
                else:
                    version, params = self.updates, self.agent.algorithm.policy_params()
                return {
                    "spec": acting.policy.spec,
                    "params": params,
                    "version": version,
                    "selected": "best periodic evaluation" if keep else "last",
                    "env_steps": acting.steps,
                    "best_return": self.best_return,
                }
        raise Rejected(f"agent: unknown request {request!r:.200}")

    # -- checkpoints ----------------------------------------------------------------------
    def _checkpoint(self, force: bool = False) -> None:
        """Write a checkpoint (in the worker thread); unless ``force``, not when the last one holds this state."""
        while self.next_checkpoint <= self.updates:
            self.next_checkpoint += self.cfg.checkpoint_every
        state = (self.agent.acting.steps, self.updates, self.best_return)
        if self.dir is None or (state == self._saved and not force):
            return
        files = {} if self.best is None else {"best.safetensors": params_to_bytes(self.best[1])}
        extra = {
            "next_eval": self.next_eval,
            "best_return": self.best_return,
            "best_version": None if self.best is None else self.best[0],
        }
        self.agent.save(self.dir, extra, files, fence=self._fence)
        self.checkpoints += 1
        self._saved = state

    def _restore(self, folder: Path, meta: dict[str, Any]) -> None:
        self.agent.restore(folder, meta)
        self.next_eval = int(meta["next_eval"])
        self.best_return = float(meta["best_return"])
        if meta.get("best_version") is not None:
            self.best = (int(meta["best_version"]), read_tensors(folder / "best.safetensors"))
        self.restored_from = self.agent.acting.steps
        self._saved = (self.agent.acting.steps, self.updates, self.best_return)
        self.next_checkpoint = self.updates + self.cfg.checkpoint_every
        self.done = self.agent.acting.finished
        log.info("agent resumed from %s at step %d (update %d)", folder, self.agent.acting.steps, self.updates)

    async def terminate(self, reason: Any) -> None:
        try:
            if self.dir is not None:
                await asyncio.to_thread(self._checkpoint)
        finally:
            if self._fence is not None:
                self._fence.release()
