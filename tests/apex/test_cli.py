"""``beamrl train apex-dqn``: a whole run through the CLI (with the learner killed mid-run), and bad options."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests import ROOT, start_peer
from tests.cli.test_cli_errors import beamrl

pytest.importorskip("torch")
pytest.importorskip("gymnasium")

SMALL = [
    "--set",
    "hidden=[32,32]",
    "--set",
    "batch_size=64",
    "--set",
    "samples_per_insert=2",
    "--set",
    "min_replay=500",
    "--set",
    "eval_every=5000",
]


def test_a_run_writes_its_files_and_survives_a_killed_learner_and_replay(tmp_path: Path) -> None:
    """The learner killed once, the replay twice: summary.json's replay.lost is what both kills lost."""
    args = ["--nodes", "1", "--steps", "30000", "--out", "run", "--quiet", *SMALL]
    kills = ["--kill-at", "8000:learner", "--kill-at", "12000:replay", "--kill-at", "18000:replay"]
    result = beamrl("train", "apex-dqn", "CartPole-v1", *args, *kills, cwd=tmp_path, timeout=110)
    assert result.returncode == 0, result.stdout + result.stderr
    run = tmp_path / "run"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["env_steps"] >= 30_000 and summary["actor_nodes"] == ["learner-actor1"]
    killed = [e["target"] for e in summary["events"] if e["event"] == "killed"]
    assert killed == ["learner", "replay", "replay"]
    assert summary["restarts"]["learner"] == 1 and summary["restarts"]["replay"] == 2
    assert summary["learner_updates"] > 0  # counted by the restarted learner, from its checkpoint on
    back = [(e["target"], e) for e in summary["events"] if e["event"] == "restarted"]
    assert [target for target, _ in back] == ["learner", "replay", "replay"], summary["events"]
    # each replay loss is reported and adds up: what it held when killed (at least what it told the
    # driver just before) is what its checkpoint restored plus what it lost; the run then went on adding
    replay_kills = [e for e in summary["events"] if e["event"] == "killed" and e["target"] == "replay"]
    restores = [e for target, e in back if target == "replay"]
    for killed_replay, replay in zip(replay_kills, restores, strict=True):
        assert replay["restored_total"] + replay["lost"] >= killed_replay["total_added"] > 0, (killed_replay, replay)
        assert replay["restored"] == replay["restored_total"]
    assert summary["replay"]["lost"] == sum(replay["lost"] for replay in restores)  # both kills', not the last's
    assert summary["replay"]["total_added"] > restores[-1]["restored_total"]
    with (run / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    kinds = {r["kind"] for r in rows}
    assert kinds == {"episode", "actor", "rates", "eval"}
    versions = [int(r["learner_version"]) for r in rows if r["kind"] == "rates"]
    assert versions[-1] > versions[len(versions) // 2] > 0  # it kept learning after the faults
    for name in ("model.safetensors", "model.json", "learner-actor1.log"):
        assert (run / name).is_file(), name
    assert "mean return" in result.stdout and "events:" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kill-at", "100:actor"], "--kill-at expects STEP:TARGET with TARGET one of actor-node, learner, replay"),
        (["--nodes", "2", "--kill-at", "100:actor-node:2"], "--kill-at 100:actor-node:2 kills a node this run"),
        (["--kill-at", "100:actor-node:one"], "the actor node must be a number from 0 (STEP:actor-node:I), got 'one'"),
        (["--episodes", "100"], "apex-dqn counts its budget in env steps: use --steps N"),
        (["--set", "bogus=1"], "apex-dqn has no hyper-parameter 'bogus'"),
        (["--nodes", "1", "--set", "batch_size=0"], "batch_size must be >= 1"),
    ],
)
def test_bad_options_are_refused_before_anything_starts(args: list[str], message: str, tmp_path: Path) -> None:
    result = beamrl("train", "apex-dqn", "CartPole-v1", "--out", "run", *args, cwd=tmp_path, timeout=60)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
    assert not (tmp_path / "run" / "learner").exists()


def test_the_readme_apex_recipe_over_curve_on_loopback(tmp_path: Path) -> None:
    """Keys per machine, public keys exchanged, an actor node from nodes/actor.toml, the learner from
    nodes/learner.toml attaching it by name: the README's Ape-X recipe, all over CURVE."""
    learner_keys, actor_keys = tmp_path / "learner-box", tmp_path / "pi"
    for directory, name in ((learner_keys, "learner"), (actor_keys, "pi-actor-1")):
        assert beamrl("keys", "generate", str(directory), "--name", name, cwd=tmp_path).returncode == 0
    (actor_keys / "learner.key").write_bytes((learner_keys / "learner.key").read_bytes())
    (learner_keys / "pi-actor-1.key").write_bytes((actor_keys / "pi-actor-1.key").read_bytes())
    actor = start_peer("pi-actor-1", str(ROOT / "nodes/actor.toml"), "--keys", str(actor_keys))
    try:
        result = beamrl(
            *("train", "apex-dqn", "CartPole-v1", "--node", str(ROOT / "nodes/learner.toml")),
            *("--listen", "tcp://127.0.0.1:0", "--keys", str(learner_keys)),
            *("--attach", f"{actor.address}#pi-actor-1", "--steps", "15000", "--out", "run", "--quiet", *SMALL),
            cwd=tmp_path,
            timeout=110,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        summary = json.loads((tmp_path / "run" / "summary.json").read_text())
        assert summary["actor_nodes"] == ["pi-actor-1"] and summary["env_steps"] >= 15_000
        assert summary["learner_updates"] > 0
    finally:
        assert actor.terminate() == 0, "".join(actor.output)
