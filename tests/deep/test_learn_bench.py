"""``beamrl bench learn``'s parts on tiny budgets: the acting path alone, and one row of each tree."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("gymnasium")

from beamrl.bench.learn_bench import _ours, acting_path
from beamrl.rl.deep.config import Target


def test_the_acting_path_is_measured_against_a_plain_loop() -> None:
    floor, ours = acting_path(steps=300)
    assert floor["name"].startswith("plain loop") and floor["value"] > 0
    assert "learning off" in ours["name"] and ours["value"] > 0 and ours["note"].endswith("x the plain loop")


@pytest.mark.parametrize("split", [False, True], ids=["agent", "split"])
def test_a_table_row_trains_with_either_tree(split: bool) -> None:
    got = _ours(Target("ppo", "CartPole-v1", 475.0, 512), 512, seed=0, split=split)
    assert got["wall"] > 0 and got["cpu"] > 0 and 8.0 <= got["return"] <= 500.0
