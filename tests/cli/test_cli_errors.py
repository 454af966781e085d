"""Every mistake a user makes on the command line gets one clear answer, and exit code 2.

Each test runs the real ``beamrl`` console script in a subprocess, from a scratch
directory, as a user would. A run that cannot do what its options say is refused before
anything starts.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from beamrl.launch import NodeProcess
from tests import ROOT

BEAMRL = Path(sys.executable).parent / "beamrl"


def beamrl(*args: str, cwd: Path, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BEAMRL), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


def refused(result: subprocess.CompletedProcess[str], message: str) -> str:
    """The one error line, checked: exit 2, ``message`` in it, no traceback anywhere."""
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert message in result.stderr, output
    assert "Traceback" not in output, output
    return result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--nodes", "three"], "--nodes: expected a positive integer, got 'three'"),
        (["--episodes", "0"], "--episodes: expected a positive integer, got '0'"),
        (["--env", "slippery=false"], "--env slippery=False: FrozenLake-v1 does not take these keywords"),
        (["--env", "slippery"], "--env expects KEY=VALUE"),
        (["--set", "gama=0.9"], "--set gama: q-learning takes alpha, gamma, epsilon"),
        (["--crash-at", "100", "--crash-worker", "5"], "--crash-worker 5: the run has 1 worker(s), numbered 0..0"),
        (["--nodes", "2", "--crash-at", "100", "--crash-worker", "2"], "--crash-worker 2: the run has 2 worker(s)"),
        (["--crash-worker", "1"], "--crash-worker picks the worker --crash-at crashes: give --crash-at"),
        (["--crash-at", "6000"], "a fault at episode 6000 is past the 5000-episode budget"),
        (["--kill-at", "100:nosuch"], "--kill-at 100:nosuch: the learner can kill qserver"),
        (["--kill-at", "soon:qserver"], "--kill-at expects EPISODE:NAME"),
        (["--attach", "127.0.0.1:7002"], "addresses look like tcp://HOST:PORT"),
    ],
)
def test_train_refuses_options_that_cannot_work(args: list[str], message: str, tmp_path: Path) -> None:
    refused(beamrl("train", "q-learning", "FrozenLake-v1", "--out", "run", *args, cwd=tmp_path), message)
    assert not (tmp_path / "run").exists(), "refused before anything started"


@pytest.mark.parametrize(
    ("algo", "args", "message"),
    [
        ("dqn", ["--crash-at", "100"], "--crash-at: for tabular runs only, dqn would ignore it; drop it"),
        (
            "ppo",
            ["--env", "x=1", "--eval-every", "7"],
            "--env, --eval-every: for tabular runs only, ppo would ignore them",
        ),
        (
            "apex-dqn",
            ["--stop-at-success", "0.5"],
            "--stop-at-success: for tabular runs only, apex-dqn would ignore it",
        ),
        ("apex-dqn", ["--split"], "--split is for one-node deep runs"),
        ("a3c", ["--crash-at", "5"], "--crash-at: for tabular runs only, a3c would ignore it"),
    ],
)
def test_deep_and_apex_runs_refuse_options_they_would_ignore(
    algo: str, args: list[str], message: str, tmp_path: Path
) -> None:
    refused(beamrl("train", algo, "CartPole-v1", "--out", "run", *args, cwd=tmp_path), message)
    assert not (tmp_path / "run").exists(), "refused before anything started"


def test_a_planner_on_several_nodes_is_refused(tmp_path: Path) -> None:
    result = beamrl("train", "value-iteration", "FrozenLake-v1", "--nodes", "3", cwd=tmp_path)
    refused(result, "value-iteration plans on one node from the env's model: leave out --nodes and --attach")
    result = beamrl("train", "policy-iteration", "FrozenLake-v1", "--crash-at", "10", cwd=tmp_path)
    refused(result, "policy-iteration plays no episodes, so a fault (--crash-at, --kill-at) would never fire")
    result = beamrl("train", "value-iteration", "FrozenLake-v1", "--episodes", "100", cwd=tmp_path)
    refused(result, "value-iteration solves the env's model and plays no episodes: leave out --episodes")


def test_a_tabular_algorithm_on_cartpole_says_what_to_use(tmp_path: Path) -> None:
    result = beamrl("train", "q-learning", "CartPole-v1", cwd=tmp_path)
    message = "q-learning needs a discrete observation space; CartPole-v1 has Box(4,): try dqn"
    assert refused(result, message).strip() == f"beamrl train: {message}"


def test_a_misspelt_argument_in_a_tree_is_refused_before_anything_starts(tmp_path: Path) -> None:
    tree = tmp_path / "typo.toml"
    text = (ROOT / "supervisors" / "crash_demo.toml").read_text().replace("every = 4", "evry = 4")
    tree.write_text(text.replace('pythonpath = [".."]', f"pythonpath = [{str(ROOT)!r}]"))
    result = beamrl("node", "start", "--tree", str(tree), cwd=tmp_path)
    message = refused(result, "got an unexpected keyword argument 'evry'")
    assert str(tree) in message and "children[1] (flaky)" in message and "Flaky.init" in message
    assert "listening" not in result.stdout


def test_a_wrong_env_id_in_a_tree_is_its_message_alone(tmp_path: Path) -> None:
    tree = tmp_path / "envs.toml"
    child = 'start = "beamrl.rl:EnvServer"\nname = "env"\nargs = ["FrozenLake-v9"]\n'
    tree.write_text(f'name = "envs"\n[[children]]\n{child}')
    result = beamrl("node", "start", "--tree", str(tree), cwd=tmp_path)
    message = refused(result, "unknown env id 'FrozenLake-v9'")
    assert len(message.strip().splitlines()) == 1, message
    assert "crashed" not in result.stdout + result.stderr


def test_the_cli_speaks_of_options_not_of_python_arguments(tmp_path: Path) -> None:
    result = beamrl("node", "start", "--listen", "tcp://0.0.0.0:7999", cwd=tmp_path)
    message = refused(result, "refusing to listen on 'tcp://0.0.0.0:7999' without CURVE keys")
    assert "--keys DIR" in message and "--insecure" in message
    assert "keys=DIR" not in message and "insecure=True" not in message


@pytest.mark.parametrize("command", [["node"], ["keys"], []])
def test_a_command_without_its_subcommand_prints_its_help(command: list[str], tmp_path: Path) -> None:
    result = beamrl(*command, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(f"usage: beamrl {' '.join(command)}".rstrip()), result.stderr
    assert "required" not in result.stderr
    assert {"node": "start", "keys": "generate", "": "train"}[" ".join(command)] in result.stderr


def test_ps_names_the_address_format(tmp_path: Path) -> None:
    result = beamrl("ps", "127.0.0.1:7001", cwd=tmp_path)
    refused(result, "addresses look like tcp://HOST:PORT (e.g. tcp://127.0.0.1:7001), got '127.0.0.1:7001'")


def test_nothing_listening_is_one_sentence(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on: bound, never listening
        s.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{s.getsockname()[1]}"
        for command in (
            ["ps", address, "--timeout", "1"],
            ["shell", address, "--timeout", "1"],
            ["train", "mc", "Taxi-v3"],
        ):
            if command[0] == "train":
                command += ["--attach", address, "--out", "run", "--quiet"]
            message = refused(beamrl(*command, cwd=tmp_path), f"nothing answered at {address}")
            assert message.count("\n") == 1 and message.count(" within ") == 1, message


def test_attaching_a_node_without_the_actor_tree_fails_fast_saying_what_it_lacks(tmp_path: Path) -> None:
    with NodeProcess("bare", cwd=tmp_path) as bare:
        result = beamrl(
            "train", "q-learning", "FrozenLake-v1", "--attach", bare.address, "--quiet", cwd=tmp_path, timeout=40
        )
    message = refused(result, "runs no 'workers' supervisor, so it cannot host workers")
    assert "nodes/actor.toml" in message and "--tree actor_node" in message
