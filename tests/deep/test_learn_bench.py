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


def test_several_seeds_give_one_row_with_the_median_of_each_side(monkeypatch: pytest.MonkeyPatch) -> None:
    from beamrl.bench import learn_bench

    ours = {0: 500.0, 1: 100.0, 2: 300.0}
    peer = {0: 200.0, 1: 400.0, 2: 250.0}
    monkeypatch.setattr(
        learn_bench, "_ours", lambda row, steps, seed, split=False: {"wall": 2.0, "cpu": 1.0, "return": ours[seed]}
    )
    monkeypatch.setattr(learn_bench, "_sb3", lambda row, steps, seed: {"wall": 4.0, "cpu": 4.0, "return": peer[seed]})
    monkeypatch.setattr(learn_bench, "acting_path", lambda steps, seed: [])
    row = Target("ppo", "CartPole-v1", 475.0, 1_000)
    first, speed = learn_bench.run(seeds=[0, 1, 2], only=[row])
    assert first["name"] == "ppo CartPole-v1 1,000 steps, seeds 0, 1, 2"
    assert first["value"] == 2.0 and speed["value"] == 500.0  # wall a seed; 3,000 steps in 6 s
    assert "median return 300.0 (500.0 / 100.0 / 300.0)" in first["note"]
    assert "median return 250.0 (200.0 / 400.0 / 250.0)" in first["note"]
    assert "wall 0.50x SB3's, cpu 0.25x" in first["note"]


def test_one_seed_is_reported_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    from beamrl.bench import learn_bench

    monkeypatch.setattr(
        learn_bench, "_ours", lambda row, steps, seed, split=False: {"wall": 3.0, "cpu": 3.0, "return": 9.0}
    )
    monkeypatch.setattr(learn_bench, "_sb3", lambda row, steps, seed: "Stable-Baselines3 not installed")
    monkeypatch.setattr(learn_bench, "acting_path", lambda steps, seed: [])
    (first, _) = learn_bench.run(seeds=[4], only=[Target("dqn", "Acrobot-v1", -100.0, 100_000)])
    assert first["name"] == "dqn Acrobot-v1 100,000 steps" and first["note"].startswith("return 9.0 (target -100)")
    assert first["note"].endswith("; Stable-Baselines3 not installed")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["replay", "--seeds", "0,1"], "--seeds and --row are options of the learn suite"),
        (["learn", "--seeds", "1,1"], "expected distinct non-negative integers like 0,1,2, got '1,1'"),
        (["learn", "--seeds", "a"], "expected distinct non-negative integers"),
        (["learn", "--row", "ppo:Acrobot-v1"], "no learning-table row 'ppo:Acrobot-v1'; the rows are dqn:CartPole-v1"),
    ],
)
def test_bench_learn_refuses_bad_seeds_and_rows(args: list[str], says: str) -> None:
    import subprocess
    import sys

    got = subprocess.run(
        [sys.executable, "-c", "import sys; from beamrl.cli import main; sys.exit(main())", "bench", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert got.returncode == 2 and says in got.stderr and "Traceback" not in got.stderr
