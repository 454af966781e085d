"""``Agent``: acting and learning interleaved in one object, no messages (act a phase, learn its batches).

    agent = Agent("dqn", "CartPole-v1", cfg, seed=0, total_steps=50_000)
    agent.run(until=25_000)                  # act k steps, learn one batch, repeat
    agent.save(Path("ckpt"))                 # everything: weights, optimizer, replay, envs, RNGs
    again = Agent.load(Path("ckpt"), "dqn", "CartPole-v1", cfg, seed=0, total_steps=50_000)
    again.run()                              # continues exactly where ``agent`` stood

The same ``Acting`` and ``Algorithm`` the ``Actor`` and ``Learner`` processes wrap, in
one loop: what the ``AgentServer`` process runs (``beamrl train``'s default on one
node), what tests use to check each algorithm in seconds and resume equality.

No parameters are copied between the halves: with ``param_sync_every == 1`` the numpy
policy holds views of the torch tensors (updated in place by the optimizer, so it
always acts with the latest weights and nothing is refreshed); with a larger
``param_sync_every`` it acts on copies refreshed every that many updates, as an
``Actor`` would. A learner on a GPU (``device``) cannot lend numpy views of its
weights: the acting half then always acts on a CPU copy, refreshed every
``param_sync_every`` updates (every update by default: one small device-to-host copy,
while acting one observation at a time stays on the CPU, where it is fastest).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from beamrl.fencing import WriterFence
from beamrl.rl.deep.acting import Acting
from beamrl.rl.deep.checkpoint import npz_bytes, read_checkpoint, read_npz, write_checkpoint
from beamrl.rl.deep.learner import load_algorithm_state, make_algorithm, save_algorithm_state
from beamrl.rl.deep.params import Params

__all__ = ["Agent"]


class Agent:
    """See the module docstring."""

    def __init__(
        self, algo: str, env_id: str, cfg: Any, seed: int, total_steps: int, envs: list[Any] | None = None
    ) -> None:
        """``envs``: environments to step instead of making ``env_id``'s (e.g. ``ServedEnv``s)."""
        torch.set_num_threads(1)
        self.algo, self.env_id, self.cfg = algo, env_id, cfg
        self.algorithm = make_algorithm(algo, env_id, cfg, seed)
        self.acting = Acting(algo, cfg, env_id, seed, self.algorithm.spec(), total_steps, envs)
        self.live = cfg.param_sync_every == 1 and self.algorithm.device.type == "cpu"
        self._views = self.live_params() if self.live else {}  # stay valid: torch updates weights in place
        self.refresh()
        self.last: dict[str, Any] = {}

    def live_params(self) -> Params:
        """The policy's parameters as numpy views of the torch tensors (no copy; CPU learners only)."""
        module = self.algorithm.modules[self.algorithm.policy_module]
        prefix = self.algorithm.policy_module
        return {f"{prefix}.{k}": v.detach().numpy() for k, v in module.state_dict().items()}

    def refresh(self) -> None:
        """Let the acting half see the learner's current weights (see the module docstring)."""
        if self.live:
            self.acting.policy.load(self._views, live=True)
        else:
            self.acting.set_params(self.algorithm.policy_params())

    def step(self) -> int:
        """Act one phase and learn its batches; return the number of updates done."""
        acting, algorithm = self.acting, self.algorithm
        batches = acting.next_batches()
        sync = self.cfg.param_sync_every
        for batch in batches:
            self.last = algorithm.learn(batch)
            acting.feedback(batch, self.last)
            if not self.live and algorithm.updates % sync == 0:
                self.refresh()
        return len(batches)

    def run(self, until: int | None = None, on_phase: Callable[[Agent], None] | None = None) -> None:
        """Act and learn until ``until`` env steps (default: the budget)."""
        stop = self.acting.total if until is None else min(until, self.acting.total)
        while self.acting.steps < stop and not self.acting.finished:
            self.step()
            if on_phase is not None:
                on_phase(self)

    def save(
        self,
        directory: Path,
        extra: dict[str, Any] | None = None,
        files: dict[str, bytes] | None = None,
        fence: WriterFence | None = None,
    ) -> Path:
        """A checkpoint of the whole agent in ``directory`` (see ``beamrl.rl.deep.checkpoint``).

        ``extra`` (JSON) and ``files`` go into it too; ``fence`` guards its writes.
        """
        written, meta = save_algorithm_state(self.algorithm, {"algo": self.algo, "env_id": self.env_id})
        acting_meta, replay = self.acting.state()
        if replay is not None:
            written["replay.npz"] = npz_bytes(replay)
        meta["acting"] = acting_meta
        meta.update(extra or {})
        return write_checkpoint(directory, {**written, **(files or {})}, meta, tag=self.acting.steps, fence=fence)

    @classmethod
    def load(cls, directory: Path, algo: str, env_id: str, cfg: Any, seed: int, total_steps: int) -> Agent:
        """An agent continuing from the checkpoint in ``directory``."""
        found = read_checkpoint(directory)
        if found is None:
            raise FileNotFoundError(f"no agent checkpoint in {directory}")
        agent = cls(algo, env_id, cfg, seed, total_steps)
        agent.restore(*found)
        return agent

    def restore(self, folder: Path, meta: dict[str, Any]) -> None:
        """Continue from the checkpoint ``folder`` with its ``meta`` (``read_checkpoint``'s answer)."""
        load_algorithm_state(self.algorithm, folder, meta)
        replay = read_npz(folder / "replay.npz") if (folder / "replay.npz").is_file() else None
        self.acting.load_state(meta["acting"], replay)
        self.refresh()

    def greedy(self, obs: np.ndarray) -> np.ndarray:
        return self.acting.policy.greedy(obs)
