"""``train --tensorboard``: the dashboard's scalars as TensorBoard event files, read back by TensorBoard."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from beamrl.rl.training import RunSpec, train

pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
pytest.importorskip("aiohttp", reason="the dashboard extra (aiohttp) is not installed")

from beamrl.dashboard.run import tensorboard_observer

ROOT = Path(__file__).resolve().parents[2]


async def test_a_run_writes_its_curves_for_tensorboard(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logdir, out = tmp_path / "tb", tmp_path / "run"
    spec = RunSpec("q-learning", "FrozenLake-v1", episodes=400, eval_every=100, eval_episodes=20)
    await train(spec, out, progress=False, final_episodes=50, observers=[tensorboard_observer(str(logdir))])
    with (out / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    events = EventAccumulator(str(logdir))
    events.Reload()
    returns = events.Scalars("charts/episodic_return")
    assert [e.step for e in returns] == [int(r["episode"]) for r in rows]
    assert [e.value for e in returns] == [float(r["return"]) for r in rows]
    evals = events.Scalars("eval/success_rate")
    assert [(e.step, round(e.value, 4)) for e in evals] == [
        (int(r["episode"]), float(r["eval_success_rate"])) for r in rows if r["eval_success_rate"]
    ]
    assert {"charts/return_mean100", "eval/mean_return", "charts/epsilon"} <= set(events.Tags()["scalars"])


def test_without_the_package_the_flag_says_how_to_get_it(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['tensorboard'] = None\n"
        "from beamrl.cli import main\n"
        f"sys.exit(main(['train', 'q-learning', 'FrozenLake-v1', '--episodes', '10', '--out', {str(tmp_path)!r},"
        f" '--tensorboard', {str(tmp_path / 'tb')!r}]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "pip install 'beamrl[tensorboard]'" in result.stderr
    assert not (tmp_path / "metrics.csv").exists()  # refused before training started


def test_a_deep_run_from_the_cli_writes_its_loss(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("torch")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from beamrl.cli import main

    logdir, out = tmp_path / "tb", tmp_path / "run"
    args = ["train", "ppo", "CartPole-v1", "--steps", "1200", "--out", str(out), "--quiet", "--set", "hidden=[16]"]
    assert main([*args, "--tensorboard", str(logdir)]) == 0, capsys.readouterr().err[-2000:]
    with (out / "metrics.csv").open() as f:
        episodes = [r for r in csv.DictReader(f) if r["episode_return"]]
    losses = [float(r["loss"]) for r in episodes if r["loss"] not in ("", "nan")]
    events = EventAccumulator(str(logdir))
    events.Reload()
    assert [e.value for e in events.Scalars("charts/episodic_return")] == [float(r["episode_return"]) for r in episodes]
    assert losses and [e.value for e in events.Scalars("losses/loss")] == pytest.approx(losses, rel=1e-6)
    assert "charts/epsilon" not in events.Tags()["scalars"]  # PPO does not explore by epsilon


def test_an_a3c_run_from_the_cli_writes_its_pushes_lag_and_loss(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("gymnasium")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from beamrl.cli import main

    logdir, out = tmp_path / "tb", tmp_path / "run"
    args = ["train", "a3c", "CartPole-v1", "--nodes", "1", "--steps", "4000", "--out", str(out), "--quiet"]
    assert main([*args, "--set", "hidden=[16]", "--tensorboard", str(logdir)]) == 0, capsys.readouterr().err[-2000:]
    with (out / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    events = EventAccumulator(str(logdir))
    events.Reload()
    returns = [float(r["episode_return"]) for r in rows if r["kind"] == "episode"]
    assert returns and [e.value for e in events.Scalars("charts/episodic_return")] == returns
    lags = {float(r["param_lag"]) for r in rows if r["kind"] == "worker" and r["param_lag"]}
    logged = events.Scalars("scalars/param_lag/worker-0")  # the worker on node learner-actor1
    assert logged and {e.value for e in logged} <= lags
    losses = {float(r["loss"]) for r in rows if r["kind"] == "worker" and r["loss"]}
    logged = events.Scalars("losses/loss")  # float32 in the event file: each one some poll's loss of the worker's
    assert losses and logged and all(min(abs(e.value - x) for x in losses) <= 1e-6 * abs(e.value) for e in logged)
    assert max(e.value for e in events.Scalars("scalars/pushes_per_s")) > 0
    assert {"scalars/stale_per_s", "scalars/entropy"} <= set(events.Tags()["scalars"])
