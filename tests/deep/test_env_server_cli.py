"""``beamrl train ALGO ENV_ID --env-server TARGET``: a deep run that steps EnvServers (issue 12's "or an EnvServer").

``local`` servers start in the run's own tree; ``NAME@ADDR`` ones run on another node
(here a ``beamrl node start`` OS process on loopback, hosting ``supervisors/cartpole_env.toml``).
Every env step of the acting process goes through a server: the servers' step counts show it.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from beamrl.cli import main
from beamrl.launch import NodeProcess
from beamrl.transport.keys import generate_keys
from tests import ROOT, start_peer

pytest.importorskip("torch")

SMALL = ["--quiet", "--set", "hidden=[16]", "--set", "learning_starts=100", "--set", "checkpoint_every=50"]
PPO_SMALL = ["--quiet", "--set", "hidden=[16]", "--set", "n_steps=32", "--set", "checkpoint_every=1"]


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["train", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def env_node() -> Iterator[NodeProcess]:
    """A node in another OS process hosting a CartPole EnvServer named ``cartpole``."""
    peer = start_peer("envs-host", tree=str(ROOT / "supervisors" / "cartpole_env.toml"))
    yield peer
    peer.terminate()


def test_a_run_with_local_env_servers_steps_them_and_records_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    code, printed, err = _run(
        capsys, "dqn", "CartPole-v1", "--steps", "300", "--out", str(out), "--env-server", "local", *SMALL
    )
    assert code == 0, err[-2000:]
    for name in ("metrics.csv", "summary.json", "model.safetensors", "run.json"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    [used] = summary["env_servers"]
    assert used["target"] == "local" and used["name"] == "env0" and used["node"] == "deep"
    assert used["steps"] == summary["env_steps"] == 300  # every env step went through the server
    assert used["episodes"] >= 2  # CartPole's random episodes are short: the server reset it along the way
    assert summary["hyper"]["num_envs"] == 1
    assert json.loads((out / "run.json").read_text())["env_servers"] == ["local"]
    assert "env server local: 'env0' on node 'deep' counts 300 steps" in printed


def test_split_run_goes_on_when_its_local_env_server_is_killed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The killed server is restarted fresh, the actor crashes on it and restarts from its checkpoint."""
    out = tmp_path / "run"
    targets = ["--env-server", "local", "--env-server", "local"]
    args = ["ppo", "CartPole-v1", "--steps", "640", "--out", str(out), "--split", *targets, "--kill-at", "200:env1"]
    code, _, err = _run(capsys, *args, *PPO_SMALL)
    assert code == 0, err[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["env_steps"] == 640 and summary["hyper"]["num_envs"] == 2  # two servers: two envs
    assert summary["restarts"]["env1"] == 1 and summary["restarts"]["actor"] >= 1
    assert summary["restarts"]["env0"] == 0 and summary["restarts"]["learner"] == 0
    assert any(e["event"] == "killed" and e["name"] == "env1" for e in summary["events"])
    steps = {u["name"]: u["steps"] for u in summary["env_servers"]}
    assert steps["env0"] >= 320  # its half of the budget, and the steps redone after the actor's restart
    assert 0 < steps["env1"] < steps["env0"]  # the restarted server counts from zero


def test_a_run_steps_an_env_server_on_another_node(
    env_node: NodeProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    target = f"cartpole@{env_node.address}"
    code, _, err = _run(
        capsys, "dqn", "CartPole-v1", "--steps", "300", "--out", str(out), "--env-server", target, *SMALL
    )
    assert code == 0, err[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    [used] = summary["env_servers"]
    assert used["node"] == "envs-host" and used["address"] == env_node.address and used["target"] == target
    assert used["steps"] >= summary["env_steps"] == 300  # the server counts every step (earlier tests' too)


def test_a_curve_node_is_reached_with_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--keys DIR: the training node (named ``deep``) and the env's node trust each other's public keys."""
    keys = tmp_path / "keys"
    for name in ("deep", "pi"):
        generate_keys(keys, name)
    tree = str(ROOT / "supervisors" / "cartpole_env.toml")
    peer = start_peer("pi", "--keys", str(keys), tree=tree)
    try:
        target = ["--env-server", f"cartpole@{peer.address}"]
        refused = tmp_path / "refused"
        code, _, err = _run(capsys, "dqn", "CartPole-v1", "--steps", "200", "--out", str(refused), *target, *SMALL)
        assert code == 2 and "did you pass --keys DIR" in err and not refused.exists()  # plaintext: no answer
        out = tmp_path / "run"
        code, _, err = _run(
            capsys, "dqn", "CartPole-v1", "--steps", "200", "--out", str(out), *target, "--keys", str(keys), *SMALL
        )
    finally:
        peer.terminate()
    assert code == 0, err[-2000:]
    assert json.loads((out / "summary.json").read_text())["env_servers"][0]["steps"] == 200


@pytest.mark.parametrize(
    ("target", "env_id", "message"),
    [
        ("bad", "CartPole-v1", r"--env-server takes local or NAME@tcp://HOST:PORT .* got 'bad'"),
        ("cartpole@tcp://127.0.0.1:1", "CartPole-v1", r"nothing answered at tcp://127.0.0.1:1 within 5 s"),
        ("nope@ADDR", "CartPole-v1", r"node 'envs-host' at tcp://\S+ has no process named 'nope'"),
        ("cartpole@ADDR#other", "CartPole-v1", r"answers as 'envs-host', expected 'other'"),
        (
            "cartpole@ADDR",
            "Acrobot-v1",
            r"'cartpole' hosts 'CartPole-v1', whose observation_space is Box.*Acrobot-v1 has",
        ),
    ],
)
def test_a_bad_env_server_is_refused_before_anything_is_written(
    env_node: NodeProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str], target: str, env_id: str, message: str
) -> None:
    out = tmp_path / "run"
    target = target.replace("ADDR", env_node.address)
    code, _, err = _run(capsys, "dqn", env_id, "--steps", "300", "--out", str(out), "--env-server", target, *SMALL)
    assert code == 2
    assert err.startswith("beamrl train: ") and len(err.strip().splitlines()) == 1, err
    assert re.search(message, err), err
    assert not out.exists()


LOCAL = ["--env-server", "local"]
REMOTE = ["--env-server", "c@tcp://127.0.0.1:7"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["q-learning", "FrozenLake-v1", *LOCAL], "--env-server is for the deep algorithms .* q-learning is tabular"),
        (["apex-dqn", "CartPole-v1", *LOCAL], "--env-server is for the one-node deep algorithms .* apex-dqn's actor"),
        (["a3c", "CartPole-v1", *LOCAL], "--env-server is for the one-node deep algorithms .* a3c's actor nodes"),
        (["reinforce", "CartPole-v1", *LOCAL, *LOCAL], "reinforce steps one environment: give one --env-server, not 2"),
        (["ppo", "CartPole-v1", *LOCAL, *LOCAL, "--set", "num_envs=3"], "--set gives num_envs=3, but 2 --env-server"),
        (["dqn", "CartPole-v1", *REMOTE, *REMOTE], "--env-server c@tcp://127.0.0.1:7 is given twice"),
    ],
)
def test_options_that_cannot_go_with_env_servers_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    out = tmp_path / "run"
    code, _, err = _run(capsys, *args, "--steps", "100", "--out", str(out), "--quiet")
    assert code == 2, err
    assert re.search(message, err), err
    assert not out.exists()


def test_env_server_wait_needs_env_server(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "dqn", "CartPole-v1", "--env-server-wait", "5", "--out", str(tmp_path / "r"))
    assert code == 2 and "give --env-server too" in err


def test_a_run_whose_remote_env_server_goes_away_stops_with_a_clear_error_and_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The node hosting the server is killed mid-run: the agent restarts and waits, the run stops after
    --env-server-wait seconds naming the server; its checkpoints stay, and --resume finishes it once it is back."""
    out = tmp_path / "run"
    peer = start_peer("envs-lost", tree=str(ROOT / "supervisors" / "cartpole_env.toml"))
    address = peer.address
    try:
        checkpoint = out / "agent" / "latest.json"
        killer = threading.Thread(target=_kill_when, args=(peer, checkpoint), daemon=True)
        killer.start()
        args = ["dqn", "CartPole-v1", "--steps", "100000", "--out", str(out), "--env-server", f"cartpole@{address}"]
        code, _, err = _run(capsys, *args, "--env-server-wait", "2", *SMALL)
        killer.join(5)
    finally:
        peer.kill()
    assert code == 2
    assert f"env server 'cartpole' (node 'envs-lost' at {address}) has not answered for 2 s" in err, err[-2000:]
    assert f"--resume {out} continues it" in err
    assert checkpoint.is_file() and not (out / "summary.json").exists()

    back = start_peer("envs-lost", listen=address, tree=str(ROOT / "supervisors" / "cartpole_env.toml"))
    try:  # the same node again at the same address: the run resumes on the servers it was started with
        code, _, err = _run(capsys, "dqn", "CartPole-v1", "--resume", str(out), "--steps", "600", "--quiet")
    finally:
        back.terminate()
    assert code == 0, err[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed"] and summary["env_steps"] == 600
    assert summary["env_servers"][0]["node"] == "envs-lost" and summary["env_servers"][0]["steps"] > 0


def _kill_when(peer: NodeProcess, path: Path, timeout: float = 60.0) -> None:
    """SIGKILL the node once ``path`` exists (the run checkpointed: it is under way)."""
    deadline = time.monotonic() + timeout
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    peer.kill()
