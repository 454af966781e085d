"""The ``beamrl`` command line: one module per command, defaults stated once."""

from __future__ import annotations

import subprocess
import sys

import pytest

from beamrl.cli import COMMANDS, build_parser
from beamrl.cli.train import spec_from_args
from beamrl.rl.envs.registry import facts
from beamrl.rl.training import RunSpec


def test_every_command_has_its_module() -> None:
    names = {c.__name__.rsplit(".", 1)[1] for c in COMMANDS}
    assert names == {"bench", "dashboard", "eval", "keys", "node", "ps", "serve", "shell", "train"}
    for name in names:  # each module registers its command, with a handler
        with pytest.raises(SystemExit, match="0"):
            build_parser().parse_args([name, "--help"])
    assert build_parser().parse_args(["ps", "tcp://127.0.0.1:1"]).handler.__module__ == "beamrl.cli.ps"
    assert build_parser().parse_args(["eval", "runs/x"]).handler.__module__ == "beamrl.cli.eval"
    assert build_parser().parse_args(["serve", "runs/x"]).handler.__module__ == "beamrl.cli.serve"


def test_the_learn_suite_runs_only_when_named() -> None:
    from beamrl.bench.suites import OPT_IN, SUITES

    assert "learn" in OPT_IN and "learn" not in SUITES  # `beamrl bench` (all) leaves it out
    assert build_parser().parse_args(["bench", "learn", "--quick"]).suite == "learn"


@pytest.mark.parametrize("env_id", ["FrozenLake-v1", "FrozenLake8x8-v1", "Taxi-v3", "Blackjack-v1", "CartPole-v1"])
def test_train_defaults_come_from_the_run_spec_and_the_env_registry(env_id: str) -> None:
    spec = spec_from_args(build_parser().parse_args(["train", "q-learning", env_id]))
    plain = RunSpec("q-learning", env_id, episodes=1)
    assert spec.episodes == facts(env_id).episodes
    assert (spec.seed, spec.eval_every, spec.eval_episodes) == (plain.seed, plain.eval_every, plain.eval_episodes)


def test_a_planner_needs_no_episode_budget_and_a_step_budget_replaces_it() -> None:
    assert spec_from_args(build_parser().parse_args(["train", "value-iteration", "FrozenLake-v1"])).episodes is None
    spec = spec_from_args(build_parser().parse_args(["train", "sarsa", "Taxi-v3", "--steps", "500"]))
    assert (spec.episodes, spec.steps) == (None, 500)


def test_the_bench_report_does_not_import_the_cli() -> None:
    probe = "import sys, beamrl.bench.remote, beamrl.bench.report; print('beamrl.cli' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_packaged_actor_tree_is_the_one_actor_machines_run() -> None:
    from pathlib import Path

    from beamrl.tree import load_tree
    from beamrl.trees import tree_path

    root = Path(__file__).resolve().parents[2]
    assert load_tree(tree_path("actor_node.toml")) == load_tree(root / "supervisors" / "actor_node.toml")
    with pytest.raises(FileNotFoundError, match=r"no tree named 'absent\.toml'"):
        tree_path("absent.toml")
