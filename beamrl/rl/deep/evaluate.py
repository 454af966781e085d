"""Evaluate a deep policy with numpy only: during training, at the end, and ``beamrl eval RUN_DIR``.

    returns = evaluate(policy, "CartPole-v1", episodes=20, seed=10_000)
    beamrl eval runs/dqn-CartPole-v1-seed0 --episodes 20 [--render]

Evaluations use the deterministic policy (``NumpyPolicy.greedy``) on the judge env
(gymnasium's own env when installed, as for the tabular trainer); episode ``i`` is
reset with seed ``seed + i``. A run directory holds ``model.safetensors`` whose
metadata names the env and the policy spec, so evaluating needs no torch.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from beamrl.rl.deep.params import NumpyPolicy, load_params
from beamrl.rl.envs import make
from beamrl.rl.spaces import Box
from beamrl.rl.train import judge_env

__all__ = ["EVAL_SEED", "evaluate", "load_policy", "main"]

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


def main(args: argparse.Namespace) -> int:
    """``beamrl eval RUN_DIR [--episodes N] [--render] [--seed S]``."""
    policy, meta = load_policy(args.run_dir)
    env_id = meta["env_id"]
    if args.render:
        env = (
            make(env_id, render_mode="ansi")
            if env_id.startswith(("FrozenLake", "Taxi", "CliffWalking"))
            else make(env_id)
        )
        exp = env.reset(seed=args.seed)
        total = 0.0
        print(env.render(), end="")
        while not exp.done:
            exp = env.step(_action(policy, exp.next_state, env))
            total += exp.reward
            print(env.render(), end="")
        print(f"return {total:.1f}")
        return 0
    returns = evaluate(policy, env_id, args.episodes, seed=args.seed)
    result = {
        "run": str(args.run_dir),
        "algo": meta.get("algo"),
        "env_id": env_id,
        "episodes": len(returns),
        "mean_return": float(np.mean(returns)),
        "std_return": float(np.std(returns)),
        "min_return": float(np.min(returns)),
    }
    print(json.dumps(result))
    return 0


def _action(policy: NumpyPolicy, obs: Any, env: Any) -> Any:
    a = policy.greedy(obs)[0]
    return np.asarray(a, np.float32).reshape(env.action_space.shape) if isinstance(env.action_space, Box) else int(a)


def add_parser(sub: Any) -> None:
    """The ``beamrl eval`` sub-command."""
    p = sub.add_parser("eval", help="evaluate (or --render) a deep run's model.safetensors, numpy only")
    p.add_argument("run_dir")
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--render", action="store_true", help="play one episode, printing the env's text rendering")
    p.add_argument("--seed", type=int, default=EVAL_SEED)
    p.set_defaults(handler=main)
