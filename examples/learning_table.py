"""Reproduce the README's learning table: every target of the tabular issue, through the process trainer.

    python examples/learning_table.py [--nodes 3] [--quick]

Each row trains with `beamrl.rl.training.train` (QServer, workers, recorder) and is
judged on gymnasium's own env, as the table states; it prints a markdown table.
`--quick` runs a short FrozenLake row only (the smoke test).

Smoke test: --quick
Smoke expect: | FrozenLake-v1
Smoke timeout: 120
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import beamrl
from beamrl.rl.training import RunSpec, train

# (algo, env id, episodes, what the target is, its threshold)
ROWS = [
    ("q-learning", "FrozenLake-v1", 5_000, "success", 0.70),
    ("sarsa", "FrozenLake-v1", 20_000, "success", 0.70),
    ("expected-sarsa", "FrozenLake-v1", 20_000, "success", 0.70),
    ("mc", "FrozenLake-v1", 20_000, "success", 0.70),
    ("value-iteration", "FrozenLake-v1", None, "success", 0.73),
    ("policy-iteration", "FrozenLake-v1", None, "success", 0.73),
    ("value-iteration", "FrozenLake8x8-v1", None, "success", 0.85),
    ("q-learning", "Taxi-v3", 20_000, "return", 7.5),
    ("sarsa", "Taxi-v3", 20_000, "return", 7.5),
    ("expected-sarsa", "Taxi-v3", 20_000, "return", 7.5),
    ("q-learning", "CliffWalking-v1", 1_000, "return", -13.0),
    ("sarsa", "CliffWalking-v1", 1_000, "return", None),
    ("mc", "Blackjack-v1", 300_000, "return", -0.08),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--env", help="only the rows of this env id")
    args = parser.parse_args()
    rows = [("q-learning", "FrozenLake-v1", 2_000, "success", 0.70)] if args.quick else ROWS
    if args.env:
        rows = [row for row in rows if row[1] == args.env]
    print("| env | algorithm | episodes | judged result | target | nodes | wall |")
    print("|---|---|---|---|---|---|---|")
    for algo, env_id, episodes, kind, target in rows:
        nodes = 1 if episodes is None else args.nodes
        spec = RunSpec(algo, env_id, episodes=episodes, seed=args.seed)
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="beamrl-table-") as out:
            summary = beamrl.run(train(spec, out, nodes=nodes, progress=False))
        wall = time.monotonic() - started
        value = summary["eval_success_rate"] if kind == "success" else summary["eval_mean_return"]
        measure = f"{kind} {value:.3f} over {summary['eval_episodes']:,}"
        goal = "safe path (see tests)" if target is None else f">= {target}"
        shown = "—" if episodes is None else f"{episodes:,}"
        print(f"| {env_id} | {algo} | {shown} | {measure} | {goal} | {nodes} | {wall:.1f} s |", flush=True)


if __name__ == "__main__":
    main()
