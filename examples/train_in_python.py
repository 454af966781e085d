"""Train from Python instead of the CLI: the same supervised tree, a result dict back.

    python examples/train_in_python.py [--nodes 3]

Runs Q-learning on FrozenLake-v1 until a periodic greedy evaluation reaches 0.7
success, then prints the judged evaluation and where the outputs went.

Smoke test: --episodes 400
Smoke expect: judged over
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import beamrl
from beamrl.rl.training import RunSpec, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1)
    parser.add_argument("--episodes", type=int, default=5000)
    parser.add_argument("--out", default="runs/example")
    args = parser.parse_args()
    spec = RunSpec(
        algo="q-learning",
        env_id="FrozenLake-v1",
        episodes=args.episodes,
        seed=0,
        stop_at_success=0.7,
        hyper={"gamma": 0.99},
    )
    summary = beamrl.run(train(spec, args.out, nodes=args.nodes, progress=False, final_episodes=500))
    reached = summary["time_to_success"]
    print(f"episodes played: {summary['episodes']} in {summary['wall_seconds']:.2f} s", end="")
    print(f" (greedy success >= 0.7 after {reached:.2f} s)" if reached is not None else "")
    print(
        f"judged over {summary['eval_episodes']} episodes on {summary['judge']}: success {summary['eval_success_rate']}"
    )
    print(f"outputs in {args.out}/: metrics.csv, curve.png, summary.json, qtable.npz")


if __name__ == "__main__":
    main()
