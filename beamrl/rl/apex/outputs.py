"""An Ape-X run's ``metrics.csv`` columns and its ``curve.png``.

``metrics.csv`` holds four kinds of rows (column ``kind``): ``episode`` (an actor's
finished episode), ``actor`` (its steps/s, env steps and parameter lag: the learner's
version minus the actor's), ``rates`` (replay inserts/s and samples/s, learner
updates/s, between two polls) and ``eval`` (a greedy evaluation of the learner's
parameters). Every row has the wall time and the env steps of all actors so far.
"""

from __future__ import annotations

import csv
from pathlib import Path

__all__ = ["METRICS", "plot"]

METRICS = [
    "kind",
    "wall_s",
    "env_steps",
    "actor",
    "episode_return",
    "episode_length",
    "eval_mean_return",
    "learner_version",
    "inserts_per_s",
    "samples_per_s",
    "learner_steps_per_s",
    "actor_steps_per_s",
    "actor_env_steps",
    "param_lag",
]


def plot(out_dir: Path) -> str | None:
    """``curve.png``: episode returns and greedy evaluations over wall time (None without matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    ep_t, ep_r, ev_t, ev_r = [], [], [], []
    with (out_dir / "metrics.csv").open() as f:
        for row in csv.DictReader(f):
            if row["kind"] == "episode":
                ep_t.append(float(row["wall_s"]))
                ep_r.append(float(row["episode_return"]))
            elif row["kind"] == "eval":
                ev_t.append(float(row["wall_s"]))
                ev_r.append(float(row["eval_mean_return"]))
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(ep_t, ep_r, ".", ms=2, alpha=0.5, label="episode return (actors)")
    ax.plot(ev_t, ev_r, "o-", label="greedy evaluation (learner's parameters)")
    ax.set_xlabel("wall seconds")
    ax.set_ylabel("return")
    ax.legend()
    fig.tight_layout()
    path = out_dir / "curve.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return str(path)
