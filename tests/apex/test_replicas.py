"""``beamrl train apex-dqn --set learners=2``: two data-parallel learner replicas in one Ape-X run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.test_cli_errors import beamrl

pytest.importorskip("torch")
pytest.importorskip("gymnasium")

SMALL = ["--set", "hidden=[32,32]", "--set", "batch_size=64", "--set", "min_replay=500", "--set", "eval_every=5000"]


def test_two_learner_replicas_learn_in_step_and_end_identical(tmp_path: Path) -> None:
    args = ["--nodes", "1", "--steps", "6000", "--out", "run", "--quiet", "--set", "learners=2", *SMALL]
    result = beamrl("train", "apex-dqn", "CartPole-v1", *args, cwd=tmp_path, timeout=150)
    assert result.returncode == 0, result.stdout + result.stderr
    run = tmp_path / "run"
    summary = json.loads((run / "summary.json").read_text())
    learners = summary["learners"]
    assert learners["replicas"] == 2
    # held at one version: both replicas did every update, each on batches its own loop sampled
    assert learners["versions"][0] == learners["versions"][1] == summary["learner_updates"] > 0
    assert learners["loop_updates"][0] == learners["loop_updates"][1] == summary["learner_updates"]
    assert learners["digests"][0] == learners["digests"][1], "the replicas' weights drifted apart"
    assert summary["actor_nodes"] == ["learner-actor1"]
    assert (run / "learner-learner1.log").is_file()


def test_a_learner_kill_is_refused_with_replicas(tmp_path: Path) -> None:
    args = ["--nodes", "1", "--steps", "1000", "--set", "learners=2", "--kill-at", "500:learner"]
    result = beamrl("train", "apex-dqn", "CartPole-v1", *args, cwd=tmp_path, timeout=60)
    assert result.returncode != 0
    assert "--kill-at STEP:learner needs one learner" in result.stderr + result.stdout
    assert not (tmp_path / "runs").exists()  # refused before anything started
