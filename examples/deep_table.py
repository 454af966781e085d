"""Reproduce the README's deep learning table: each row of issue 12 through `beamrl train`'s process tree.

    python examples/deep_table.py [--seeds 0 1 2] [--only dqn:CartPole-v1 ...] [--out DIR] [--quick] [--split]

Each (row, seed) trains `beamrl train`'s tree with `train_deep`: one agent process that
acts and learns, or with `--split` a Learner + Actor (the defaults of
`beamrl.rl.deep.config.DEFAULTS`), judges 20 greedy episodes on gymnasium's env, and
the row's verdict is the median over seeds. It prints a markdown table and writes
`OUT/table.json`. `--quick` runs PPO on CartPole for 4,096 steps (the smoke test).

Smoke test: --quick
Smoke expect: | ppo | CartPole-v1
Smoke timeout: 180
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from beamrl.node import run
from beamrl.rl.deep.config import TABLE, Target
from beamrl.rl.deep.run import train_deep


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--only", nargs="+", help="rows as ALGO:ENV_ID (default: every row)")
    parser.add_argument("--out", default="runs/deep-table")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--split", action="store_true", help="a Learner and an Actor process per run")
    args = parser.parse_args()
    rows = TABLE
    if args.only:
        rows = [r for r in TABLE if f"{r.algo}:{r.env_id}" in args.only]
    if args.quick:
        rows, args.seeds = [Target("ppo", "CartPole-v1", 475.0, 4_096)], [0]
    out = Path(args.out)
    results = []
    seeds = ", ".join(map(str, args.seeds))
    print(f"| algorithm | env | target | steps | returns (seeds {seeds}) | median | wall s | met |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        returns, walls = [], []
        for seed in args.seeds:
            run_dir = out / f"{row.algo}-{row.env_id}-seed{seed}-{row.steps}"
            if (run_dir / "summary.json").is_file():
                summary = json.loads((run_dir / "summary.json").read_text())
            else:
                summary = run(
                    train_deep(row.algo, row.env_id, row.steps, seed, run_dir, progress=False, split=args.split)
                )
            returns.append(summary["eval_mean_return"])
            walls.append(summary["wall_seconds"])
        median = statistics.median(returns)
        met = median >= row.target
        results.append({**row.__dict__, "returns": returns, "median": median, "walls": walls, "met": met})
        shown = ", ".join(f"{r:.1f}" for r in returns)
        print(
            f"| {row.algo} | {row.env_id} | ≥ {row.target:g} | {row.steps:,} | {shown} | {median:.1f} "
            f"| {statistics.median(walls):.0f} | {'yes' if met else 'NO'} |",
            flush=True,
        )
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
