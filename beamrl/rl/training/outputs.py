"""What a run leaves in its directory: ``metrics.csv``, ``curve.png``, ``summary.json``, ``qtable.npz``.

``metrics.csv`` has one row per episode, with the evaluation columns filled where an
evaluation ran (a planner: one row per sweep, with the largest value change);
``curve.png`` plots the run (``curve_figure``; needs matplotlib, else it is skipped);
``qtable.npz`` holds the array ``q``, shape (n_states, n_actions). Beside them a run
leaves ``qserver.npz`` (the shared table's checkpoint) and one ``NAME.log`` per actor
node it started. Every file is written atomically (``beamrl.persist``).
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
from beamrl.rl.envs.registry import facts
from beamrl.rl.training.recorder import METRICS
from beamrl.rl.training.spec import RunSpec

#: the columns of a planner's ``metrics.csv``
PLANNER_METRICS = ("iteration", "value_change")


def write_outputs(
    out_dir: Path,
    spec: RunSpec,
    summary: dict[str, Any],
    table: np.ndarray,
    rows: dict[str, list[Any]],
    evals: list[dict[str, float]],
) -> None:
    """Write the outputs of a run into ``out_dir``; ``summary["curve"]`` names the plot and
    ``summary["files"]`` every file the directory holds (actor logs and the checkpoint too)."""
    with atomic_write(out_dir / "qtable.npz") as f:
        np.savez(f, allow_pickle=False, q=np.asarray(table, dtype=np.float64))
    _write_metrics(out_dir / "metrics.csv", rows, evals)
    summary["curve"] = _plot(out_dir / "curve.png", spec, rows, evals, summary)
    written = {p.name for p in out_dir.iterdir() if p.is_file() and not p.name.startswith(".")}
    summary["files"] = sorted(written | {"summary.json"})
    atomic_write_bytes(out_dir / "summary.json", (json.dumps(_jsonable(summary), indent=2) + "\n").encode())


def finite(x: float | None) -> float | None:
    """``x`` unless it is None or not finite (for JSON)."""
    return None if x is None or not math.isfinite(x) else x


def _write_metrics(path: Path, rows: dict[str, list[Any]], evals: list[dict[str, float]]) -> None:
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    if "value_change" in rows:  # a planner: one row per sweep (or improvement round)
        writer.writerow(PLANNER_METRICS)
        writer.writerows(zip(*(rows[n] for n in PLANNER_METRICS), strict=True))
        atomic_write_bytes(path, text.getvalue().encode())
        return
    by_episode = {int(e["episode"]): e for e in evals}
    names = list(METRICS)
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
    fig = curve_figure(spec, rows, evals, summary)
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)
    return str(path)


def curve_figure(
    spec: RunSpec, rows: dict[str, list[Any]], evals: list[dict[str, float]], summary: dict[str, Any]
) -> Any:
    """The figure of ``curve.png`` (needs matplotlib).

    A learner gets two panels: the training episodes' returns, and the greedy evaluations
    (success rate for goal envs, mean return otherwise); faults and restarts are dotted
    lines with a number each, explained below the plot. A planner gets the largest value
    change per sweep, on a log scale.
    """
    import matplotlib.pyplot as plt  # deferred: an optional extra

    if "value_change" in rows:
        fig, ax = plt.subplots(figsize=(8, 4))
        ax.semilogy(rows["iteration"], np.maximum(np.asarray(rows["value_change"], dtype=float), 1e-16), "o-", ms=3)
        unit = "sweep" if spec.algo == "value-iteration" else "improvement round"
        ax.set_xlabel(unit)
        ax.set_ylabel("largest change of a state value")
        success = summary.get("eval_success_rate")
        verdict = (
            f"greedy success {success:.3f}" if success is not None else f"return {summary['eval_mean_return']:.3f}"
        )
        ax.set_title(f"converged after {summary.get('iterations')} {unit}s; {verdict}", fontsize="medium")
        fig.suptitle(f"beamrl {spec.algo} on {spec.env_id}")
        fig.tight_layout()
        return fig
    has_goal = facts(spec.env_id).has_goal
    fig, (ax_ret, ax_eval) = plt.subplots(2, 1, figsize=(8, 6.5), sharex=True)
    episodes = np.asarray(rows.get("episode", []), dtype=float)
    returns = np.asarray(rows.get("return", []), dtype=float)
    if len(returns):
        window = max(1, min(100, len(returns) // 10))
        smooth = np.convolve(returns, np.ones(window) / window, mode="valid")
        ax_ret.plot(episodes, returns, ".", alpha=0.15, markersize=2, label="training episode return")
        ax_ret.plot(episodes[window - 1 :], smooth, label=f"moving mean ({window})")
    if evals:
        key, label = ("success_rate", "greedy success rate") if has_goal else ("mean_return", "greedy mean return")
        ax_eval.plot([e["episode"] for e in evals], [e[key] for e in evals], "o-", label=label)
    ax_ret.set_ylabel("training return")
    ax_eval.set_ylabel("greedy success rate" if has_goal else "greedy mean return")
    ax_eval.set_xlabel("episode")
    notes = _mark_events(summary.get("events") or [], (ax_ret, ax_eval))
    for ax in (ax_ret, ax_eval):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="lower right", fontsize="small")
    fig.suptitle(f"beamrl {spec.algo} on {spec.env_id}")
    fig.tight_layout(rect=(0, 0.04 * len(notes), 1, 1))
    for i, note in enumerate(notes):
        fig.text(0.01, 0.04 * (len(notes) - i) - 0.03, note, fontsize="small", color="red", gid="event-note")
    return fig


def _mark_events(events: list[dict[str, Any]], axes: tuple[Any, ...]) -> list[str]:
    """Dotted lines at each event's episode, numbered at staggered heights; returns the notes."""
    by_episode: dict[int, list[str]] = {}
    for event in events:
        by_episode.setdefault(int(event["episode"]), []).append(str(event["event"]))
    notes = []
    for number, (episode, texts) in enumerate(sorted(by_episode.items()), start=1):
        for ax in axes:
            ax.axvline(episode, color="red", linestyle=":", alpha=0.6)
        axes[0].annotate(
            str(number),
            (episode, 0.97 - 0.09 * ((number - 1) % 5)),
            xycoords=("data", "axes fraction"),
            xytext=(2, 0),
            textcoords="offset points",
            va="top",
            fontsize="x-small",
            color="red",
            gid="event-label",
        )
        notes.append(f"{number}: episode {episode}: {'; '.join(texts)}")
    return notes


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
