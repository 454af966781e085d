"""What a user reads: help texts, the files a run writes, Ctrl-C, the plot, the crash demo's log.

CLI tests run the real ``beamrl`` console script in a subprocess from a scratch directory.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from beamrl.bench.suites import OPT_IN, SUITES
from beamrl.cli import build_parser
from beamrl.launch import NodeProcess
from beamrl.rl.envs.registry import NATIVE, facts
from beamrl.rl.training import ALGOS, RunSpec
from beamrl.rl.training.outputs import curve_figure
from beamrl.rl.training.preflight import hyper_keys
from tests import ROOT
from tests.cli.test_cli_errors import BEAMRL, beamrl


def test_train_help_shows_every_option_with_help_and_defaults_set_keys_and_budgets(tmp_path: Path) -> None:
    result = beamrl("train", "--help", cwd=tmp_path)
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    parser = _subparser("train")
    for action in parser._actions:
        assert action.help, f"{action.option_strings or action.dest} has no help text"
        if action.option_strings and action.default is not None and action.default not in (False, [], "==SUPPRESS=="):
            assert f"(default: {action.default})" in text, f"{action.option_strings[0]} does not show its default"
    for shown in ("--seed S seeds the envs, agents and evaluations (default: 0)", "(default: 100)", "(default: 1)"):
        assert shown in text, shown
    for algo in ALGOS:
        assert f"{algo} {', '.join(hyper_keys(algo))}" in text, algo
    for env_id in NATIVE:
        assert f"{env_id} {facts(env_id).episodes:,}" in text, env_id


def _every_parser(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found += _every_parser(sub)
    return found


def test_every_option_of_every_command_has_help() -> None:
    for parser in _every_parser(build_parser()):
        for action in parser._actions:
            if not isinstance(action, argparse._SubParsersAction):
                assert action.help, f"{parser.prog} {action.option_strings or action.dest}: no help text"


def _subparser(name: str) -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    parser: argparse.ArgumentParser = sub.choices[name]
    return parser


def test_bench_help_says_what_each_suite_measures(tmp_path: Path) -> None:
    result = beamrl("bench", "--help", cwd=tmp_path)
    assert result.returncode == 0
    for suite in [*SUITES, *OPT_IN]:
        line = next((ln for ln in result.stdout.splitlines() if ln.strip().startswith(f"{suite} ")), "")
        assert len(line.split()) > 5, f"no description for {suite}:\n{result.stdout}"


def test_a_planner_writes_a_row_per_sweep_a_plot_and_a_truthful_summary(tmp_path: Path) -> None:
    args = ["--out", "vi", "--quiet", "--final-eval-episodes", "100"]
    result = beamrl("train", "value-iteration", "FrozenLake-v1", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((tmp_path / "vi" / "summary.json").read_text())
    assert summary["nodes"] == 1 and summary["iterations"] > 1
    with (tmp_path / "vi" / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == summary["iterations"]
    changes = [float(r["value_change"]) for r in rows]
    assert changes[-1] < 1e-10 < changes[0]  # value iteration's stopping rule, as the plot shows it
    assert (tmp_path / "vi" / "curve.png").stat().st_size > 10_000


def test_time_to_success_is_filled_when_an_evaluation_reaches_the_envs_target(tmp_path: Path) -> None:
    args = ["train", "q-learning", "FrozenLake-v1", "--env", "is_slippery=false", "--episodes", "400"]
    result = beamrl(*args, "--eval-every", "50", "--out", "ql", "--quiet", "--final-eval-episodes", "50", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((tmp_path / "ql" / "summary.json").read_text())
    assert summary["success_target"] == facts("FrozenLake-v1").success_target
    assert summary["last_eval"]["success_rate"] >= summary["success_target"]  # a deterministic lake is solved
    assert summary["time_to_success"] > 0 and summary["episodes_to_success"] % 50 == 0
    assert summary["interrupted"] is False


def _wait_for_file(path: Path, proc: subprocess.Popen[str], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, "the run ended early"
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_ctrl_c_writes_partial_results_marked_interrupted_and_reports_no_false_crash(tmp_path: Path) -> None:
    args = ["train", "q-learning", "FrozenLake-v1", "--nodes", "2", "--episodes", "1000000", "--out", "run", "--quiet"]
    proc = subprocess.Popen(
        [str(BEAMRL), *args, "--final-eval-episodes", "20"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    try:
        _wait_for_file(tmp_path / "run" / "qserver.npz", proc)  # the first checkpoint: training is under way
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the whole foreground group gets it
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 130, output
    assert "interrupted after" in output and '(summary.json says "interrupted": true)' in output, output
    assert "crashed" not in output and "Traceback" not in output, output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["interrupted"] is True and 0 < summary["episodes"] < 1_000_000
    with (tmp_path / "run" / "metrics.csv").open() as f:
        assert len(list(csv.DictReader(f))) == summary["episodes"]
    # the out directory's README table names every file a run leaves
    readme = (ROOT / "README.md").read_text()
    for name in summary["files"]:
        shown = "NAME.log" if name.endswith(".log") else name
        assert f"| `{shown}` |" in readme, f"README's out-directory table misses {name}"
    assert "learner-actor1.log" in summary["files"]


def test_fault_labels_never_overlap_and_no_panel_repeats_another() -> None:
    pytest.importorskip("matplotlib")
    spec = RunSpec("q-learning", "FrozenLake-v1", episodes=3000)
    episodes = list(range(1, 3001))
    rows = {"episode": episodes, "return": [float(e % 2) for e in episodes]}
    evals = [{"episode": float(e), "success_rate": 0.5, "mean_return": 0.5} for e in range(100, 3001, 100)]
    events = [
        {"episode": 1500, "event": "fault injected into worker 1"},
        {"episode": 1500, "event": "worker 1 restarted"},
        {"episode": 1503, "event": "qserver killed"},
        {"episode": 1510, "event": "worker 0 restarted"},
        {"episode": 2500, "event": "qserver killed"},
    ]
    fig = curve_figure(spec, rows, evals, {"events": events})
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    labels = [t for ax in fig.axes for t in ax.texts if t.get_gid() == "event-label"]
    labels += [t for t in fig.texts if t.get_gid() == "event-note"]
    assert len(labels) == 4 + 4  # a number per episode with events, and a line explaining each
    labels += [fig._suptitle, *(ax.xaxis.label for ax in fig.axes)]
    boxes = [t.get_window_extent(renderer) for t in labels]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert not a.overlaps(b), "two fault labels overlap"
    ylabels = [ax.get_ylabel() for ax in fig.axes]
    assert len(set(ylabels)) == len(ylabels) == 2, ylabels  # goal env: training return, greedy success
    assert [line.get_label() for line in fig.axes[1].lines if not line.get_label().startswith("_")] == [
        "greedy success rate"
    ]


def _wait_for_output(node: NodeProcess, pattern: str, count: int = 1, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while len(re.findall(pattern, "".join(node.output))) < count:
        assert node.exit_code() is None, "".join(node.output)
        assert time.monotonic() < deadline, f"never printed {pattern!r} {count}x:\n{''.join(node.output)}"
        time.sleep(0.05)
    return "".join(node.output)


def test_the_crash_demo_runs_from_any_directory_and_logs_one_line_per_repeated_crash(tmp_path: Path) -> None:
    with NodeProcess("demo", tree=ROOT / "supervisors" / "crash_demo.toml", cwd=tmp_path) as node:
        _wait_for_output(node, r"\(flaky\) crashed", count=3)
    output = "".join(node.output)
    crashes = [line for line in output.splitlines() if "(flaky) crashed" in line]
    assert output.count("Traceback") == 1, output
    assert all("the first report has the traceback" in line for line in crashes[1:]), crashes


def test_a_role_file_resolves_its_paths_from_its_own_folder_and_names_a_packaged_tree(tmp_path: Path) -> None:
    site = tmp_path / "pi"
    (site / "nodes").mkdir(parents=True)
    (site / "nodes" / "actor.toml").write_text((ROOT / "nodes" / "actor.toml").read_text())
    made = beamrl("keys", "generate", str(site / "keys"), "--name", "pi-actor-1", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with NodeProcess("pi-actor-1", str(site / "nodes" / "actor.toml"), cwd=elsewhere) as node:
        # started at all: its keys were found next to the role file, not in the current directory
        _wait_for_output(node, r"tree actor_node started")
