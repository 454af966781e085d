"""Evaluate a deep policy with numpy only: during training, at the end, and for ``beamrl eval``
(``beamrl.cli.eval``).

    returns = evaluate(policy, "CartPole-v1", episodes=20, seed=10_000)

Evaluations use the deterministic policy (``NumpyPolicy.greedy``) on the judge env
(gymnasium's own env when installed, as for the tabular trainer); episode ``i`` is
reset with seed ``seed + i``. A run directory holds ``model.safetensors`` whose
metadata names the env and the policy spec, so evaluating needs no torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from beamrl.rl.deep.params import NumpyPolicy, load_params
from beamrl.rl.envs import make
from beamrl.rl.spaces import Box
from beamrl.rl.training import judge_env

__all__ = ["EVAL_SEED", "evaluate", "load_policy"]

EVAL_SEED = 1_000_000  #: evaluation episodes are seeded from here, away from training seeds


def evaluate(policy: NumpyPolicy, env_id: str, episodes: int, seed: int = EVAL_SEED, judge: bool = True) -> list[float]:
    """Returns of ``episodes`` greedy episodes."""
    env = judge_env(env_id, {})[0] if judge else make(env_id)
    box = env.action_space if isinstance(env.action_space, Box) else None
    returns = []
    try:
        for i in range(episodes):
            exp = env.reset(seed=seed + i)
            total = 0.0
            while not exp.done:
                action = policy.greedy(exp.next_state)[0]
                exp = env.step(np.asarray(action, np.float32).reshape(box.shape) if box is not None else int(action))
                total += exp.reward
            returns.append(total)
    finally:
        env.close()
    return returns


def load_policy(run_dir: str | Path) -> tuple[NumpyPolicy, dict[str, Any]]:
    """The policy saved in ``RUN_DIR/model.safetensors`` and that file's metadata (env, algo, spec)."""
    params, meta = load_params(Path(run_dir) / "model.safetensors")
    if "spec" not in meta or "env_id" not in meta:
        raise ValueError(f"{run_dir}/model.safetensors has no beamrl metadata (spec, env_id): not a deep run's model")
    return NumpyPolicy(meta["spec"], params), meta
