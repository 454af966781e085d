"""``beamrl bench SUITE``: which benchmark modules each suite runs."""

from __future__ import annotations

from collections.abc import Callable

from beamrl.bench import (
    codec_bench,
    env_bench,
    env_server_bench,
    local,
    remote,
    replay_bench,
    replay_server_bench,
    train_bench,
)
from beamrl.bench.report import Row
from beamrl.rl.deep.config import Target


def _env(quick: bool) -> list[Row]:
    rows: list[Row] = env_bench.run()
    return rows + env_server_bench.run(quick=quick)


def _dashboard(quick: bool) -> list[Row]:
    try:
        from beamrl.bench import dashboard_bench  # deferred: the optional dashboard extra (aiohttp)
    except ImportError as exc:
        note = f"skipped: {exc}; pip install 'beamrl[dashboard]'"
        return [{"name": "dashboard cost on a training run", "value": float("nan"), "unit": "", "note": note}]
    return dashboard_bench.run(quick=quick)


def _replay(quick: bool) -> list[Row]:
    rows: list[Row] = replay_bench.run(capacity=100_000 if quick else 1_000_000)
    return rows + replay_server_bench.run(quick=quick)


SUITES: dict[str, Callable[[bool], list[Row]]] = {
    "local": lambda quick: local.run(quick=quick),
    "remote": lambda quick: remote.run(quick=quick),
    "env": _env,
    "replay": _replay,
    "train": lambda quick: train_bench.run(quick=quick),
    "codec": lambda quick: codec_bench.run(quick=quick),
    "dashboard": _dashboard,
}
"""Suite name -> ``run(quick)`` returning its rows; ``all`` runs them in this order."""


def learn_suite(quick: bool, seeds: list[int] | None = None, rows: list[Target] | None = None) -> list[Row]:
    """``seeds`` each row runs on (default ``[0]``); ``rows`` of the learning table (default: all)."""
    from beamrl.bench import learn_bench  # deferred: it trains deep agents (torch) and SB3

    result: list[Row] = learn_bench.run(quick=quick, seeds=seeds, only=rows)
    return result


def _apex(quick: bool) -> list[Row]:
    from beamrl.bench import apex_bench  # deferred: its learner loads torch

    rows: list[Row] = apex_bench.run(quick=quick)
    return rows


OPT_IN: dict[str, Callable[[bool], list[Row]]] = {"learn": learn_suite, "apex": _apex}
"""Suites run only when named (``beamrl bench learn``): not part of ``all``, they take minutes."""
