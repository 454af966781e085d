"""``beamrl bench train``: tabular training's env steps/s against a plain loop, and time to a target.

Rows:

- the floor: a plain Python Q-learning loop on beamrl's native FrozenLake-v1 (4x4,
  slippery): a numpy table, ``random`` for ε-greedy, the default ε and α schedules, no
  processes, no messages, no evaluation;
- ``beamrl train q-learning FrozenLake-v1`` with its defaults (5,000 episodes, a greedy
  evaluation every 100) on one node and on three (two more OS processes on loopback):
  env steps/s from the first reported batch to the last, against the floor and three
  nodes against one. The floor and the runs alternate, ``repeats`` times each, and each
  figure is the median;
- seconds until Q-learning's greedy policy reaches 0.70 success (evaluated every 200
  episodes) on one node and on three, the median over seeds.

This machine's cores bound the three-node figure: three OS processes share them (with
whatever else runs), so three nodes can only beat one where there are cores to spare.
"""

from __future__ import annotations

import csv
import os
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from beamrl.node import run as run_on_uvloop
from beamrl.rl.envs.registry import make
from beamrl.rl.training import RunSpec, train

#: episodes of the throughput runs (``beamrl train``'s default budget for FrozenLake-v1)
EPISODES = 5_000


def plain_q_learning_rate(episodes: int = EPISODES, seed: int = 0) -> float:
    """Env steps/s of a plain Python Q-learning loop on native FrozenLake-v1 (the floor)."""
    env = make("FrozenLake-v1")
    n_actions = env.action_space.n
    q = np.zeros((env.observation_space.n, n_actions))
    rng = random.Random(seed)
    gamma, steps = 0.99, 0
    start = time.perf_counter()
    for episode in range(episodes):
        epsilon = max(0.01, 0.999**episode)  # the TD agents' default schedules
        alpha = max(0.01, 0.2 * 0.9997**episode)
        exp = env.reset(seed=seed + episode)
        s = exp.next_state
        while not (exp.terminated or exp.truncated):
            if rng.random() < epsilon:
                a = rng.randrange(n_actions)
            else:
                row = q[s].tolist()
                a = row.index(max(row))
            exp = env.step(a)
            s2 = exp.next_state
            target = exp.reward + (0.0 if exp.terminated else gamma * max(q[s2].tolist()))
            q[s, a] += alpha * (target - q[s, a])
            s = s2
            steps += 1
    return steps / (time.perf_counter() - start)


def training_rate(nodes: int, episodes: int = EPISODES, seed: int = 0) -> float:
    """Env steps/s of ``beamrl train q-learning FrozenLake-v1`` with its defaults on ``nodes`` nodes.

    Timed from the first batch of episodes reported to the last (``metrics.csv``'s wall
    column), so starting the actor nodes' OS processes and the final judged evaluation
    are left out, as the floor leaves out building its env.
    """
    spec = RunSpec("q-learning", "FrozenLake-v1", episodes=episodes, seed=seed)
    with tempfile.TemporaryDirectory(prefix="beamrl-bench-train-") as out:
        run_on_uvloop(train(spec, out, nodes=nodes, progress=False, final_episodes=100))
        with (Path(out) / "metrics.csv").open() as f:
            rows = [(float(r["wall"]), int(r["length"])) for r in csv.DictReader(f)]
    first = rows[0][0]
    steps = sum(length for wall, length in rows if wall > first)  # after the first report
    return steps / (rows[-1][0] - first)


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


def throughput_rows(repeats: int = 3) -> list[dict[str, Any]]:
    """The floor and the 1- and 3-node training rates, run back to back ``repeats`` times.

    Each ratio is the median of the ratios within a repetition (a busy machine slows a
    whole repetition more than its parts); each rate is the median of its runs.
    """
    floor, one, three = [], [], []
    for _ in range(repeats):
        floor.append(plain_q_learning_rate())
        one.append(training_rate(1))
        three.append(training_rate(3))
    f, o, t = (statistics.median(xs) for xs in (floor, one, three))
    one_vs_floor = statistics.median(x / y for x, y in zip(one, floor, strict=True))
    three_vs_one = statistics.median(x / y for x, y in zip(three, one, strict=True))
    cores = os.cpu_count() or 1
    listed = ", ".join(f"{x:,.0f}" for x in three)
    return [
        {"name": "plain Python Q-learning loop, FrozenLake-v1 (floor)", "value": f, "unit": "steps/s"},
        {
            "name": "beamrl train q-learning FrozenLake-v1, 1 node",
            "value": o,
            "unit": "steps/s",
            "ratio_vs_floor": one_vs_floor,
            "target": ">= 0.8x floor",
            "note": f"median of {repeats}: " + ", ".join(f"{x:,.0f}" for x in one),
        },
        {
            "name": "the same, 3 nodes (2 more OS processes)",
            "value": t,
            "unit": "steps/s",
            "ratio_vs_floor": t / f,
            "target": ">= 1.0x 1 node",
            "note": f"{three_vs_one:.2f}x 1 node on {cores} cores; median of {repeats}: {listed}",
        },
    ]


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Throughput against the plain loop, then the median time to 0.70 per node count."""
    rows = throughput_rows(repeats=1 if quick else 5)
    seeds = [0] if quick else [0, 1, 2]
    for nodes in (1, 3):
        runs = [_time_to_target(nodes, seed) for seed in seeds]
        times = sorted(r["time_to_success"] if r["time_to_success"] is not None else float("inf") for r in runs)
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
    return rows
