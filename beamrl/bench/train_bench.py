"""``beamrl bench train``: wall-clock to a learning target, and training's env steps/s against a floor.

Rows: seconds until Q-learning's greedy policy on FrozenLake-v1 (4x4, slippery)
reaches 0.70 success (judged every 200 episodes over 1,000 evaluation episodes)
on one node and on three; environment steps per second of those runs against
gymnasium's direct FrozenLake stepping measured in the same run.
"""

from __future__ import annotations

import tempfile
from typing import Any

from beamrl.bench.env_bench import gym_frozen_lake_rate
from beamrl.node import run as run_on_uvloop
from beamrl.rl.training import RunSpec, train


def _time_to_target(nodes: int, seed: int) -> dict[str, Any]:
    spec = RunSpec(
        "q-learning",
        "FrozenLake-v1",
        episodes=20_000,
        seed=seed,
        eval_every=200,
        eval_episodes=1_000,
        stop_at_success=0.70,
    )
    with tempfile.TemporaryDirectory(prefix="beamrl-bench-train-") as out:
        summary: dict[str, Any] = run_on_uvloop(train(spec, out, nodes=nodes, progress=False, final_episodes=2_000))
    return summary


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Median over seeds of the time to 0.70, per node count, and the steps/s ratio."""
    floor = gym_frozen_lake_rate(50_000) or float("nan")
    seeds = [0] if quick else [0, 1, 2]
    rows = [{"name": "gymnasium FrozenLake-v1 direct step (floor)", "value": floor, "unit": "steps/s"}]
    for nodes in (1, 3):
        runs = [_time_to_target(nodes, seed) for seed in seeds]
        times = sorted(r["time_to_success"] if r["time_to_success"] is not None else float("inf") for r in runs)
        rate = sum(r["steps_per_second"] for r in runs) / len(runs)
        judged = min(r["eval_success_rate"] for r in runs)
        rows.append(
            {
                "name": f"q-learning FrozenLake-v1 to 0.70 success, {nodes} node{'s' if nodes > 1 else ''}",
                "value": times[len(times) // 2],
                "unit": "s (median)",
                "target": "<= 10 s" if nodes == 1 else "",
                "note": f"{len(seeds)} seeds, judged success >= {judged:.3f} on 2,000 episodes",
            }
        )
        rows.append(
            {
                "name": f"  training env steps/s, {nodes} node{'s' if nodes > 1 else ''}",
                "value": rate,
                "unit": "steps/s",
                "note": f"{rate / floor:.2f}x direct gymnasium stepping",
            }
        )
    return rows
