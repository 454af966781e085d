"""``beamrl train a3c``: a run through the CLI (a local worker, the learner killed mid-run), attach, bad options."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests import ROOT, start_peer
from tests.cli.test_cli_errors import beamrl

pytest.importorskip("torch")
pytest.importorskip("gymnasium")

SMALL = ["--set", "hidden=[32,32]", "--set", "eval_every=5000", "--set", "checkpoint_every=100"]


def test_a_run_with_a_local_worker_writes_its_files_and_survives_a_killed_learner(tmp_path: Path) -> None:
    args = ["--nodes", "1", "--local-worker", "--steps", "20000", "--out", "run", "--quiet", *SMALL]
    result = beamrl("train", "a3c", "CartPole-v1", *args, "--kill-at", "8000:learner", cwd=tmp_path, timeout=110)
    assert result.returncode == 0, result.stdout + result.stderr
    run = tmp_path / "run"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["worker_nodes"] == ["learner", "learner-actor1"] and summary["env_steps"] >= 20_000
    assert [e["target"] for e in summary["events"] if e["event"] == "killed"] == ["learner"]
    assert summary["restarts"]["learner"] == 1 and summary["learner_restored_from"] is not None
    assert summary["pushes_applied"] > 0  # counted by the restarted learner
    with (run / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert {r["kind"] for r in rows} == {"episode", "worker", "rates", "eval"}
    versions = [int(r["learner_version"]) for r in rows if r["kind"] == "worker"]
    assert versions[-1] > summary["learner_restored_from"]  # it kept learning after the fault
    assert {r["worker"] for r in rows if r["kind"] == "episode"} == {"0", "1"}
    for name in ("model.safetensors", "model.json", "learner-actor1.log", "curve.png"):
        assert (run / name).is_file(), name
    assert "mean return" in result.stdout and "events:" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kill-at", "100:replay"], "--kill-at expects STEP:TARGET with TARGET one of actor-node, learner"),
        (["--kill-at", "100:actor-node:1"], "starts actor nodes 0..0: give --nodes K > 1"),
        (["--kill-at", "100:learner:1"], "only actor-node takes a node number"),
        (["--episodes", "100"], "a3c counts its budget in env steps: use --steps N"),
        (["--set", "bogus=1"], "a3c has no hyper-parameter 'bogus'"),
        (["--set", "n_steps=0"], "n_steps must be >= 1"),
        (["--set", "optimizer=sgd"], "optimizer must be 'rmsprop' or 'adam'"),
        (["--split"], "--split is for one-node deep runs; a3c's"),
    ],
)
def test_bad_options_are_refused_before_anything_starts(args: list[str], message: str, tmp_path: Path) -> None:
    result = beamrl("train", "a3c", "CartPole-v1", "--out", "run", *args, cwd=tmp_path, timeout=60)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
    assert not (tmp_path / "run" / "learner").exists()


def test_local_worker_is_refused_for_other_algorithms(tmp_path: Path) -> None:
    result = beamrl("train", "apex-dqn", "CartPole-v1", "--local-worker", "--out", "run", cwd=tmp_path, timeout=60)
    assert result.returncode != 0 and "--local-worker is for a3c runs" in result.stderr, result.stderr


def test_a_worker_node_from_nodes_actor_toml_attached_over_curve(tmp_path: Path) -> None:
    """The README's recipe: an actor node from nodes/actor.toml (with torch installed) hosts an A3C worker."""
    learner_keys, actor_keys = tmp_path / "learner-box", tmp_path / "box"
    for directory, name in ((learner_keys, "learner"), (actor_keys, "pi-actor-1")):
        assert beamrl("keys", "generate", str(directory), "--name", name, cwd=tmp_path).returncode == 0
    (actor_keys / "learner.key").write_bytes((learner_keys / "learner.key").read_bytes())
    (learner_keys / "pi-actor-1.key").write_bytes((actor_keys / "pi-actor-1.key").read_bytes())
    actor = start_peer("pi-actor-1", str(ROOT / "nodes/actor.toml"), "--keys", str(actor_keys))
    try:
        result = beamrl(
            *("train", "a3c", "CartPole-v1", "--node", str(ROOT / "nodes/learner.toml")),
            *("--listen", "tcp://127.0.0.1:0", "--keys", str(learner_keys)),
            *("--attach", f"{actor.address}#pi-actor-1", "--steps", "8000", "--out", "run", "--quiet", *SMALL),
            cwd=tmp_path,
            timeout=110,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        summary = json.loads((tmp_path / "run" / "summary.json").read_text())
        assert summary["worker_nodes"] == ["pi-actor-1"] and summary["env_steps"] >= 8_000
        assert summary["pushes_applied"] > 0
    finally:
        assert actor.terminate() == 0, "".join(actor.output)
