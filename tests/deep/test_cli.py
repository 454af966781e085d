"""``beamrl train dqn CartPole-v1`` end to end: files, a killed learner, --resume, ``beamrl eval``."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from beamrl.cli import main

pytest.importorskip("torch")

SMALL = [
    "--set",
    "hidden=[16]",
    "--set",
    "learning_starts=100",
    "--set",
    "eval_every=300",
    "--set",
    "checkpoint_every=100",
]


def _beamrl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "beamrl.cli", *args], capture_output=True, text=True, timeout=180)


def _in_process(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``beamrl ARGS`` through ``beamrl.cli.main`` in this process (no interpreter and torch start-up)."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_train_kill_resume_and_eval(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    args = ["train", "dqn", "CartPole-v1", "--steps", "500", "--out", str(out), "--quiet", "--kill-at", "300:agent"]
    code, _, err = _in_process(capsys, *args, *SMALL)
    assert code == 0, err[-2000:]
    for name in ("metrics.csv", "summary.json", "model.safetensors", "model.json", "curve.png"):
        assert (out / name).is_file(), name
    assert (out / "agent" / "latest.json").is_file() and not (out / "learner").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == summary["env_steps"] == 500 and summary["eval_episodes"] == 20
    assert summary["hyper"]["hidden"] == [16] and summary["hyper"]["learning_starts"] == 100
    assert summary["processes"] == ["agent"] and summary["restarts"]["agent"] == 1
    assert any(e["event"] == "killed" and e["name"] == "agent" for e in summary["events"])
    with (out / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert rows and max(int(r["step"]) for r in rows) <= 500

    code, _, err = _in_process(capsys, "train", "dqn", "CartPole-v1", "--resume", str(out), "--steps", "600", "--quiet")
    assert code == 0, err[-2000:]
    resumed = json.loads((out / "summary.json").read_text())
    assert resumed["resumed"] and resumed["steps"] == 600 and resumed["processes"] == ["agent"]
    with (out / "metrics.csv").open() as f:
        steps = [int(r["step"]) for r in csv.DictReader(f)]
    assert max(steps) > 500 and len(steps) > len(rows)  # appended, continuing past the first budget

    shown = _beamrl("eval", str(out), "--episodes", "3")  # a fresh process: evaluating needs no torch
    assert shown.returncode == 0, shown.stderr
    result = json.loads(shown.stdout)
    assert result["episodes"] == 3 and result["env_id"] == "CartPole-v1"


def test_split_trains_a_learner_and_an_actor_and_resumes_as_split(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    args = ["train", "dqn", "CartPole-v1", "--steps", "500", "--out", str(out), "--quiet", "--split"]
    code, _, err = _in_process(capsys, *args, "--kill-at", "300:learner", *SMALL)
    assert code == 0, err[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["processes"] == ["learner", "actor"] and summary["restarts"]["learner"] == 1
    assert summary["env_steps"] == 500 and not (out / "agent").exists()
    assert (out / "learner" / "latest.json").is_file() and (out / "actor" / "latest.json").is_file()
    code, _, err = _in_process(capsys, "train", "dqn", "CartPole-v1", "--resume", str(out), "--steps", "600", "--quiet")
    assert code == 0, err[-2000:]  # no --split needed: a resumed run keeps its tree
    resumed = json.loads((out / "summary.json").read_text())
    assert resumed["processes"] == ["learner", "actor"] and resumed["env_steps"] == 600


def test_train_refuses_an_existing_run_and_bad_settings(tmp_path: Path) -> None:
    (tmp_path / "run" / "learner").mkdir(parents=True)
    used = _beamrl("train", "dqn", "CartPole-v1", "--steps", "100", "--out", str(tmp_path / "run"), "--quiet")
    assert used.returncode == 2 and "--resume" in used.stderr and "holds a deep run" in used.stderr
    bad = _beamrl("train", "dqn", "CartPole-v1", "--steps", "100", "--out", str(tmp_path / "x"), "--set", "lrr=1")
    assert bad.returncode == 2 and "no hyper-parameter 'lrr'" in bad.stderr
    kill = _beamrl(
        "train", "dqn", "CartPole-v1", "--steps", "100", "--out", str(tmp_path / "y"), "--kill-at", "x:learner"
    )
    assert kill.returncode == 2 and "STEP:agent" in kill.stderr
    wrong = _beamrl(
        "train", "dqn", "CartPole-v1", "--steps", "100", "--out", str(tmp_path / "z"), "--kill-at", "50:learner"
    )
    assert wrong.returncode == 2 and "has no process 'learner'" in wrong.stderr and "with --split" in wrong.stderr
    tabular = _beamrl(
        "train", "q-learning", "FrozenLake-v1", "--episodes", "10", "--out", str(tmp_path / "t"), "--split"
    )
    assert tabular.returncode == 2 and "--split is for deep algorithms" in tabular.stderr
    missing = _beamrl("eval", str(tmp_path / "nothing"))
    assert missing.returncode == 2 and "no model file" in missing.stderr


def test_a_listening_training_node_answers_the_shell(tmp_path: Path) -> None:
    import beamrl

    cmd = [sys.executable, "-m", "beamrl.cli", "train", "dqn", "CartPole-v1", "--steps", "1000000", "--quiet"]
    cmd += ["--out", str(tmp_path / "run"), "--listen", "tcp://127.0.0.1:0", "--set", "hidden=[16]"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        address = ""
        for line in proc.stdout:  # the node prints its address before training starts
            found = re.search(r"listening on (tcp://127\.0\.0\.1:\d+)", line)
            if found:
                address = found.group(1)
                break
        assert address.startswith("tcp://127.0.0.1:"), address
        session = beamrl.connect(address, timeout=30.0)
        try:
            agent = session.proxy("agent")
            stats = agent.stats()
            assert stats["algo"] == "dqn" and stats["env_id"] == "CartPole-v1" and stats["steps"] >= 0
            assert agent.act([0.0, 0.0, 0.05, 0.0]) in (0, 1)
            with pytest.raises(beamrl.Rejected, match="act takes one observation"):
                agent.act([0.0, 1.0])
            assert "agent" in set(session.registered())
        finally:
            session.close()
    finally:
        proc.terminate()
        proc.wait(30)
        if proc.stdout is not None:
            proc.stdout.close()


def test_deep_runs_take_steps_on_one_node(tmp_path: Path) -> None:
    nodes = _beamrl("train", "ppo", "CartPole-v1", "--nodes", "2", "--out", str(tmp_path / "a"))
    assert nodes.returncode == 2 and "one node" in nodes.stderr
    episodes = _beamrl("train", "ppo", "CartPole-v1", "--episodes", "10", "--out", str(tmp_path / "b"))
    assert episodes.returncode == 2 and "--steps N" in episodes.stderr
