"""The learning table of issue 12, row by row (slow: minutes per row; ``pytest -m slow tests/deep``)."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from beamrl.node import run
from beamrl.rl.deep.config import TABLE, Target

pytest.importorskip("torch")

from beamrl.rl.deep.run import train_deep


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("row", TABLE, ids=[f"{r.algo}-{r.env_id}" for r in TABLE])
def test_table_row_is_met(row: Target, tmp_path: Path) -> None:
    returns = []
    for seed in (0, 1, 2):
        summary = run(train_deep(row.algo, row.env_id, row.steps, seed, tmp_path / str(seed), progress=False))
        assert summary["env_steps"] <= row.steps and summary["eval_episodes"] == 20
        returns.append(summary["eval_mean_return"])
    assert statistics.median(returns) >= row.target, f"returns over seeds 0, 1, 2: {returns}"
