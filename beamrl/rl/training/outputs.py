"""What a run leaves in its directory: ``metrics.csv``, ``curve.png``, ``summary.json``, ``qtable.npz``.

``metrics.csv`` has one row per episode, with the evaluation columns filled where an
evaluation ran; ``curve.png`` plots return and success over episodes (needs matplotlib,
else it is skipped); ``qtable.npz`` holds the array ``q``, shape (n_states, n_actions).
Every file is written atomically (``beamrl.persist``).
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from beamrl.persist import atomic_write, atomic_write_bytes
from beamrl.rl.training.recorder import METRICS
from beamrl.rl.training.spec import PLANNING_ALGOS, RunSpec


def write_outputs(
    out_dir: Path,
    spec: RunSpec,
    summary: dict[str, Any],
    table: np.ndarray,
    rows: dict[str, list[Any]],
    evals: list[dict[str, float]],
) -> None:
    """Write the four outputs of a run into ``out_dir`` (``summary["curve"]`` names the plot)."""
    with atomic_write(out_dir / "qtable.npz") as f:
        np.savez(f, allow_pickle=False, q=np.asarray(table, dtype=np.float64))
    _write_metrics(out_dir / "metrics.csv", rows, evals)
    summary["curve"] = _plot(out_dir / "curve.png", spec, rows, evals, summary)
    atomic_write_bytes(out_dir / "summary.json", (json.dumps(_jsonable(summary), indent=2) + "\n").encode())


def finite(x: float | None) -> float | None:
    """``x`` unless it is None or not finite (for JSON)."""
    return None if x is None or not math.isfinite(x) else x


def _write_metrics(path: Path, rows: dict[str, list[Any]], evals: list[dict[str, float]]) -> None:
    by_episode = {int(e["episode"]): e for e in evals}
    names = list(METRICS)
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow([*names, "eval_success_rate", "eval_mean_return"])
    for i in range(len(rows.get("episode", []))):
        episode = rows["episode"][i]
        ev = by_episode.get(int(episode))
        extra = [f"{ev['success_rate']:.4f}", f"{ev['mean_return']:.4f}"] if ev else ["", ""]
        writer.writerow([rows[n][i] for n in names] + extra)
    atomic_write_bytes(path, text.getvalue().encode())


def _plot(
    path: Path, spec: RunSpec, rows: dict[str, list[Any]], evals: list[dict[str, float]], summary: dict[str, Any]
) -> str | None:
    try:
        import matplotlib  # deferred: an optional extra (beamrl[plot]); without it there is no curve.png

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, (ax_ret, ax_succ) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    episodes = np.asarray(rows.get("episode", []), dtype=float)
    returns = np.asarray(rows.get("return", []), dtype=float)
    if len(returns):
        window = max(1, min(100, len(returns) // 10))
        smooth = np.convolve(returns, np.ones(window) / window, mode="valid")
        ax_ret.plot(episodes, returns, ".", alpha=0.15, markersize=2, label="episode return")
        ax_ret.plot(episodes[window - 1 :], smooth, label=f"moving mean ({window})")
    if evals:
        ax_ret.plot([e["episode"] for e in evals], [e["mean_return"] for e in evals], "o-", label="greedy eval return")
        ax_succ.plot(
            [e["episode"] for e in evals], [e["success_rate"] for e in evals], "o-", label="greedy success rate"
        )
    labels: dict[int, list[str]] = {}
    for event in summary.get("events") or []:
        labels.setdefault(int(event["episode"]), []).append(event["event"])
    for episode, texts in labels.items():
        for ax in (ax_ret, ax_succ):
            ax.axvline(episode, color="red", linestyle=":", alpha=0.6)
        ax_ret.annotate(
            "; ".join(texts),
            (episode, 0.98),
            xycoords=("data", "axes fraction"),
            xytext=(3, -3),
            textcoords="offset points",
            va="top",
            fontsize="x-small",
            color="red",
        )
    if spec.algo in PLANNING_ALGOS:
        ax_succ.axhline(summary.get("eval_success_rate") or 0.0, label=f"{spec.algo} success rate")
    ax_ret.set_ylabel("return")
    ax_succ.set_ylabel("success rate")
    ax_succ.set_xlabel("episode")
    for ax in (ax_ret, ax_succ):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="lower right", fontsize="small")
    fig.suptitle(f"beamrl {spec.algo} on {spec.env_id}")
    fig.tight_layout()
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)
    return str(path)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float):
        return finite(value)
    return value
