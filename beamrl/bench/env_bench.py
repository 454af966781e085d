"""Environment stepping speed, against direct gymnasium stepping measured in the same run.

    from beamrl.bench.env_bench import run
    for row in run():
        print(row)

Rows: ``{"name", "value", "unit", "ratio_vs_floor"}``. The floor is gymnasium's
``FrozenLake-v1`` stepped directly (``gymnasium.make``, its default wrappers); the ratio
is rows' rate over the floor's. Without gymnasium the floor row is missing and the
ratios are None. Budgets (issue 4): native single step >= 1.5x the floor; the vector env
>= 2,000,000 steps/s at n=1024.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from beamrl.rl.envs.registry import make, make_vec

Row = dict[str, Any]


def _rate(step: Callable[[int], Any], steps: int) -> float:
    """Calls per second of ``step(i)`` over ``steps`` calls (best of three rounds)."""
    best = 0.0
    for _ in range(3):
        start = time.perf_counter()
        for i in range(steps):
            step(i)
        best = max(best, steps / (time.perf_counter() - start))
    return best


def gym_frozen_lake_rate(steps: int) -> float | None:
    """gymnasium's FrozenLake-v1 ``step`` rate (steps/s), or None without gymnasium."""
    try:
        import gymnasium
    except ImportError:
        return None
    env = gymnasium.make("FrozenLake-v1")
    env.reset(seed=0)
    return _rate(lambda i: env.step(i & 3), steps)


def native_frozen_lake_rate(steps: int) -> float:
    """beamrl's native FrozenLake-v1 ``step`` rate (steps/s)."""
    env = make("FrozenLake-v1")
    env.reset(seed=0)
    return _rate(lambda i: env.step(i & 3), steps)


def vector_frozen_lake_rate(n: int, calls: int) -> float:
    """Sub-env steps per second of ``make_vec("FrozenLake-v1", n)``."""
    venv = make_vec("FrozenLake-v1", n)
    venv.reset(seed=0)
    actions = np.random.default_rng(0).integers(4, size=(calls, n))
    return n * _rate(lambda i: venv.step(actions[i]), calls)


def run(
    report: Callable[..., Any] | None = None,
    steps: int = 50_000,
    n: int = 1024,
    calls: int = 300,
) -> list[Row]:
    """Measure the floor and beamrl's env rates; pass each row to ``report`` if given."""
    floor = gym_frozen_lake_rate(steps)
    rows: list[Row] = []

    def add(name: str, value: float, note: str = "") -> None:
        ratio = value / floor if floor else None
        rows.append({"name": name, "value": value, "unit": "steps/s", "ratio_vs_floor": ratio})
        if report is not None:
            report(name, value, "steps/s", note)

    if floor is not None:
        add("gymnasium FrozenLake-v1 step (floor)", floor, "gymnasium.make, direct step")
    add("native FrozenLake-v1 step", native_frozen_lake_rate(steps), "budget: >= 1.5x floor")
    add(
        f"native FrozenLake-v1 vector n={n}",
        vector_frozen_lake_rate(n, calls),
        "budget: >= 2,000,000 steps/s",
    )
    return rows


if __name__ == "__main__":  # python -m beamrl.bench.env_bench
    for row in run():
        ratio = row["ratio_vs_floor"]
        extra = f"  ({ratio:.2f}x floor)" if ratio is not None else ""
        print(f"{row['name']:<42} {row['value']:>14,.0f} {row['unit']}{extra}")
