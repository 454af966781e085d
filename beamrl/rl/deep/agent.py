"""``Agent``: acting and learning interleaved in one object, no messages (act a phase, learn its batches).

    agent = Agent("dqn", "CartPole-v1", cfg, seed=0, total_steps=50_000)
    agent.run(until=25_000)                  # act k steps, learn one batch, repeat
    agent.save(Path("ckpt"))                 # everything: weights, optimizer, replay, envs, RNGs
    again = Agent.load(Path("ckpt"), "dqn", "CartPole-v1", cfg, seed=0, total_steps=50_000)
    again.run()                              # continues exactly where ``agent`` stood

The same ``Acting`` and ``Algorithm`` the ``Actor`` and ``Learner`` processes wrap, in
one loop: what tests use to check each algorithm in seconds and resume equality, and
what ``beamrl bench learn`` times as the floor of the process version.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from beamrl.rl.deep.acting import Acting
from beamrl.rl.deep.checkpoint import npz_bytes, read_checkpoint, read_npz, write_checkpoint
from beamrl.rl.deep.learner import load_algorithm_state, make_algorithm, save_algorithm_state

__all__ = ["Agent"]


class Agent:
    """See the module docstring."""

    def __init__(self, algo: str, env_id: str, cfg: Any, seed: int, total_steps: int) -> None:
        torch.set_num_threads(1)
        self.algo, self.env_id, self.cfg = algo, env_id, cfg
        self.algorithm = make_algorithm(algo, env_id, cfg, seed)
        self.acting = Acting(algo, cfg, env_id, seed, self.algorithm.spec(), total_steps)
        self.acting.set_params(self.algorithm.policy_params())
        self.last: dict[str, Any] = {}

    def run(self, until: int | None = None, on_phase: Callable[[Agent], None] | None = None) -> None:
        """Act and learn until ``until`` env steps (default: the budget)."""
        stop = self.acting.total if until is None else min(until, self.acting.total)
        sync = self.cfg.param_sync_every
        while self.acting.steps < stop and not self.acting.finished:
            for batch in self.acting.next_batches():
                self.last = self.algorithm.learn(batch)
                self.acting.feedback(batch, self.last)
                if self.algorithm.updates % sync == 0:
                    self.acting.set_params(self.algorithm.policy_params())
            if on_phase is not None:
                on_phase(self)

    def save(self, directory: Path) -> Path:
        """A checkpoint of the whole agent in ``directory`` (see ``beamrl.rl.deep.checkpoint``)."""
        files, meta = save_algorithm_state(self.algorithm, {"algo": self.algo, "env_id": self.env_id})
        acting_meta, replay = self.acting.state()
        if replay is not None:
            files["replay.npz"] = npz_bytes(replay)
        meta["acting"] = acting_meta
        return write_checkpoint(directory, files, meta, tag=self.acting.steps)

    @classmethod
    def load(cls, directory: Path, algo: str, env_id: str, cfg: Any, seed: int, total_steps: int) -> Agent:
        """An agent continuing from the checkpoint in ``directory``."""
        found = read_checkpoint(directory)
        if found is None:
            raise FileNotFoundError(f"no agent checkpoint in {directory}")
        folder, meta = found
        agent = cls(algo, env_id, cfg, seed, total_steps)
        load_algorithm_state(agent.algorithm, folder, meta)
        replay = read_npz(folder / "replay.npz") if (folder / "replay.npz").is_file() else None
        agent.acting.load_state(meta["acting"], replay)
        agent.acting.set_params(agent.algorithm.policy_params())
        return agent

    def greedy(self, obs: np.ndarray) -> np.ndarray:
        return self.acting.policy.greedy(obs)
