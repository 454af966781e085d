"""``beamrl eval RUN_DIR [--episodes N] [--render] [--seed S]``: judge a deep run's saved policy.

Reads ``RUN_DIR/model.safetensors`` (its metadata names the env and the policy spec) and
plays greedy episodes with numpy only, so evaluating needs no torch.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np

from beamrl.cli.options import HelpFormatter, positive_int
from beamrl.rl.deep.evaluate import EVAL_SEED, evaluate, load_policy
from beamrl.rl.deep.params import NumpyPolicy
from beamrl.rl.envs import make
from beamrl.rl.spaces import Box

_TEXT_RENDERED = ("FrozenLake", "Taxi", "CliffWalking")


def eval_command(args: argparse.Namespace) -> int:
    policy, meta = load_policy(args.run_dir)
    env_id = meta["env_id"]
    if args.render:
        return _render(policy, env_id, args.seed)
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


def _render(policy: NumpyPolicy, env_id: str, seed: int) -> int:
    """Play one greedy episode, printing the env's text rendering after each step."""
    env = make(env_id, render_mode="ansi") if env_id.startswith(_TEXT_RENDERED) else make(env_id)
    exp = env.reset(seed=seed)
    total = 0.0
    print(env.render(), end="")
    while not exp.done:
        exp = env.step(_action(policy, exp.next_state, env))
        total += exp.reward
        print(env.render(), end="")
    print(f"return {total:.1f}")
    return 0


def _action(policy: NumpyPolicy, obs: Any, env: Any) -> Any:
    a = policy.greedy(obs)[0]
    return np.asarray(a, np.float32).reshape(env.action_space.shape) if isinstance(env.action_space, Box) else int(a)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval", help="evaluate (or --render) a deep run's model.safetensors, numpy only", formatter_class=HelpFormatter
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="the --out directory of a deep beamrl train run")
    p.add_argument("--episodes", metavar="N", type=positive_int, default=20, help="episodes to evaluate")
    p.add_argument("--render", action="store_true", help="play one episode, printing the env's text rendering")
    p.add_argument("--seed", metavar="S", type=int, default=EVAL_SEED, help="seed of the evaluation episodes")
    p.set_defaults(handler=eval_command)
