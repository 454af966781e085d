"""``beamrl train``: build the training tree, spread its workers over nodes, write the results.

    summary = beamrl.run(train(RunSpec("q-learning", "FrozenLake-v1", episodes=2000), "runs/fl", nodes=3))

Writes into ``out``: ``metrics.csv`` (one row per episode, evaluation columns
filled where an evaluation ran), ``curve.png`` (return and success over
episodes), ``summary.json`` and, for tabular agents, ``qtable.npz`` (array ``q``,
shape (n_states, n_actions)). ``nodes=K`` starts K-1 extra nodes as OS
processes on loopback (each runs ``supervisors/actor_node.toml``); ``attach``
uses nodes already running elsewhere (started from ``nodes/actor.toml``).
"""

from __future__ import annotations

import asyncio
import csv
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from pathlib import Path
from typing import Any

import numpy as np

from beamrl.errors import BeamError, CallTimeout, NoProc, ProcessCrashed
from beamrl.node import Node
from beamrl.rl.envs import make
from beamrl.rl.qserver import QServer
from beamrl.rl.trainer import PLANNING_ALGOS, Recorder, RunSpec, finite, table_shape
from beamrl.supervisor import DynamicSupervisor, child

log = logging.getLogger("beamrl.rl")


class TrainingFailed(BeamError, RuntimeError):
    """A training run could not go on: its tree went down or no episode finished for too long."""


#: Something that watches a run from its node (a dashboard, a TensorBoard writer): entered once the
#: training tree is up, exited when the run is over. [dashboard]
Observer = Callable[[Node], AbstractAsyncContextManager[Any]]

#: episodes of the final (judge) evaluation per env family, as the targets are stated
FINAL_EVAL_EPISODES = {"FrozenLake": 2_000, "Taxi": 1_000, "Blackjack": 100_000, "CliffWalking": 10}
ACTOR_TREE = Path(__file__).resolve().parents[2] / "supervisors" / "actor_node.toml"


def final_eval_episodes(env_id: str) -> int:
    """How many episodes the final evaluation uses for ``env_id``."""
    for prefix, n in FINAL_EVAL_EPISODES.items():
        if env_id.startswith(prefix):
            return n
    return 100


def judge_env(env_id: str, env_kwargs: dict[str, Any]) -> tuple[Any, str]:
    """gymnasium's own env when installed (the judge the targets name), else the native one."""
    from beamrl.rl.envs.registry import ALIASES

    try:
        import gymnasium
    except ImportError:
        return make(env_id, **env_kwargs), "beamrl native (gymnasium not installed)"
    from beamrl.rl.envs.gym_adapter import GymEnv

    canonical = ALIASES.get(env_id, env_id)
    return GymEnv(gymnasium.make(canonical, **env_kwargs), canonical), f"gymnasium {gymnasium.__version__}"


def worker_spec(spec: RunSpec, index: int, learner: str) -> dict[str, Any]:
    """A worker's subtree (EnvServer + Worker, rest_for_one) as data a remote node can start."""
    env_kwargs = {k: v for k, v in spec.env_kwargs.items()}
    return {
        "name": f"worker-{index}-sup",
        "strategy": "rest_for_one",
        "max_restarts": 10,
        "max_seconds": 10,
        "children": [
            {
                "start": "beamrl.rl.env_server:EnvServer",
                "args": [spec.env_id],
                "kwargs": env_kwargs,
                "name": f"env-{index}",
            },
            {
                "start": "beamrl.rl.trainer:Worker",
                "args": [spec.to_data(), index, f"env-{index}", ("qserver", learner), ("recorder", learner)],
                "name": f"worker-{index}",
            },
        ],
    }


class _ActorNodes:
    """Extra nodes as OS processes on loopback, each running the actor tree; logs in ``out/NAME.log``."""

    def __init__(self, count: int, learner_address: str, run_name: str, out_dir: Path) -> None:
        self.procs: list[subprocess.Popen[str]] = []
        self.names = [f"{run_name}-actor{i}" for i in range(1, count + 1)]
        self.logs = [out_dir / f"{name}.log" for name in self.names]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        for name, log_path in zip(self.names, self.logs, strict=True):
            cmd = [sys.executable, "-m", "beamrl.cli", "node", "start", "--name", name, "--join", learner_address]
            cmd += ["--tree", str(ACTOR_TREE)]
            with log_path.open("w") as log_file:
                self.procs.append(subprocess.Popen(cmd, env=env, stdout=log_file, stderr=subprocess.STDOUT, text=True))

    def failed(self) -> str | None:
        """A message naming the first actor node that exited early, with its log file."""
        for name, proc, log_path in zip(self.names, self.procs, self.logs, strict=True):
            if proc.poll() is not None:
                return f"actor node {name!r} exited with code {proc.returncode}: see {log_path}"
        return None

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


async def _wait_for_workers_sup(
    node: Node, names: list[str], actors: _ActorNodes | None, timeout: float = 60.0
) -> None:
    deadline = time.monotonic() + timeout
    pending = set(names)
    while pending:
        failure = actors.failed() if actors is not None else None
        if failure is not None:
            raise RuntimeError(failure)
        for name in list(pending):
            if name in node.nodes():
                try:
                    await node.call(("workers", name), ["count_children"], timeout=2.0)
                except BeamError:  # not up yet: its tree is still starting
                    continue
                pending.discard(name)
        if pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"actor nodes {sorted(pending)} did not come up within {timeout} s")
            await asyncio.sleep(0.05)


async def train(
    spec: RunSpec,
    out: str | os.PathLike[str],
    *,
    nodes: int = 1,
    attach: list[str] | None = None,
    progress: bool = True,
    listen: str | None = None,
    keys: str | None = None,
    name: str = "learner",
    final_episodes: int | None = None,
    stall_seconds: float = 60.0,
    observers: Sequence[Observer] = (),
) -> dict[str, Any]:
    """Run training as a supervised tree and write metrics, plot, summary and table to ``out``.

    ``observers`` watch the run from the learner's node (``beamrl train --dashboard``);
    planners run no tree and ignore them. Raises ``TrainingFailed`` when the tree goes
    down or no episode ends for ``stall_seconds``.
    """
    out_dir = Path(out)
    await asyncio.to_thread(_prepare, out_dir)
    started = time.monotonic()
    if spec.algo in PLANNING_ALGOS:
        summary, table = await _plan(spec)
        rows: dict[str, list[Any]] = {}
        evals: list[dict[str, float]] = []
    else:
        summary, table, rows, evals = await _learn(
            spec, out_dir, nodes, attach or [], progress, listen, keys, name, stall_seconds, observers
        )
    env, judge = judge_env(spec.env_id, spec.env_kwargs)
    n_final = final_episodes or final_eval_episodes(spec.env_id)
    from beamrl.rl.trainer import greedy_eval

    final_spec = RunSpec(**{**spec.to_data(), "eval_episodes": n_final})
    _, _, state_fn = table_shape(env.observation_space, env.action_space)
    result = await asyncio.to_thread(greedy_eval, np.argmax(table, axis=1), env, state_fn, final_spec, 7919)
    summary.update(
        algo=spec.algo,
        env_id=spec.env_id,
        env_kwargs=spec.env_kwargs,
        seed=spec.seed,
        nodes=max(nodes, 1) + len(attach or []),
        hyper_parameters=spec.hyper,
        eval_mean_return=result["mean_return"],
        eval_success_rate=result["success_rate"] if _has_goal(spec.env_id) else None,
        eval_episodes=n_final,
        judge=judge,
        total_wall_seconds=time.monotonic() - started,
    )
    await asyncio.to_thread(_write_outputs, out_dir, spec, summary, table, rows, evals)
    return summary


def _prepare(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = out_dir / "qserver.npz"
    if checkpoint.exists():
        checkpoint.unlink()  # a new run starts from scratch; restarts within the run resume


def _write_outputs(
    out_dir: Path,
    spec: RunSpec,
    summary: dict[str, Any],
    table: np.ndarray,
    rows: dict[str, list[Any]],
    evals: list[dict[str, float]],
) -> None:
    np.savez(out_dir / "qtable.npz", q=np.asarray(table, dtype=np.float64))
    _write_metrics(out_dir / "metrics.csv", rows, evals)
    summary["curve"] = _plot(out_dir / "curve.png", spec, rows, evals, summary)
    (out_dir / "summary.json").write_text(json.dumps(_jsonable(summary), indent=2) + "\n")


def _has_goal(env_id: str) -> bool:
    return not env_id.startswith("Blackjack")


async def _plan(spec: RunSpec) -> tuple[dict[str, Any], np.ndarray]:
    from beamrl.rl.agents import PolicyIteration, PolicyIterationConfig, ValueIteration, ValueIterationConfig

    env = make(spec.env_id, **spec.env_kwargs)
    hyper = dict(spec.hyper)
    if spec.algo == "value-iteration":
        planner: Any = ValueIteration(ValueIterationConfig(**hyper))
    else:
        planner = PolicyIteration(PolicyIterationConfig(**hyper))
    t0 = time.monotonic()
    await asyncio.to_thread(planner.plan_env, env)
    wall = time.monotonic() - t0
    return {"episodes": 0, "steps": 0, "wall_seconds": wall, "iterations": planner.iterations}, planner.Q


async def _learn(
    spec: RunSpec,
    out_dir: Path,
    nodes: int,
    attach: list[str],
    progress: bool,
    listen: str | None,
    keys: str | None,
    name: str,
    stall_seconds: float = 60.0,
    observers: Sequence[Observer] = (),
) -> tuple[dict[str, Any], np.ndarray, dict[str, list[Any]], list[dict[str, float]]]:
    probe = make(spec.env_id, **spec.env_kwargs)
    n_states, n_actions, _ = table_shape(probe.observation_space, probe.action_space)
    distributed = nodes > 1 or bool(attach)
    if distributed and listen is None:
        listen = "tcp://127.0.0.1:0"
    n_workers = max(nodes, 1) + len(attach)
    spec = RunSpec(**{**spec.to_data(), "workers": n_workers})
    checkpoint = out_dir / "qserver.npz"
    async with Node(name, listen=listen, keys=keys) as node:
        await node.start_supervisor(
            [
                child(
                    QServer,
                    n_states,
                    n_actions,
                    checkpoint=str(checkpoint),
                    checkpoint_every=spec.checkpoint_every,
                    name="qserver",
                ),
                child(Recorder, spec.to_data(), n_workers, progress=progress, name="recorder"),
                child(DynamicSupervisor, name="workers", max_restarts=50, max_seconds=10),
            ],
            name="training",
        )
        address = node.address or ""
        actors = _ActorNodes(nodes - 1, address, name, out_dir) if nodes > 1 else None
        watching = AsyncExitStack()  # [dashboard] observers watch the run, then close before the node
        try:
            for observer in observers:
                await watching.enter_async_context(observer(node))
            remote_names = list(actors.names) if actors is not None else []
            for address in attach:
                remote_names.append(await node.connect(address))
            await _wait_for_workers_sup(node, remote_names, actors)
            await node.start_child("workers", worker_spec(spec, 0, name))
            for i, remote in enumerate(remote_names, start=1):
                await node.start_child(("workers", remote), worker_spec(spec, i, name))
            summary = await _wait_for_the_run(node, stall_seconds)
            table = await node.call("recorder", ["final_table"])
            rows = await node.call("recorder", ["metrics"])
            evals = await node.call("recorder", ["evals"])
            for i, remote in enumerate(remote_names, start=1):
                try:
                    await node.terminate_child(("workers", remote), f"worker-{i}-sup", timeout=10)
                except BeamError as exc:  # the node may be gone already; the run is over anyway
                    log.info("leaving worker %d on %r: %s", i, remote, exc)
        finally:
            await watching.aclose()
            if actors is not None:
                await asyncio.to_thread(actors.close)
    return summary, table, rows, evals


async def _wait_for_the_run(node: Node, stall_seconds: float) -> dict[str, Any]:
    """The recorder's summary once the run is over; an error if no episode ends for ``stall_seconds``."""
    last_progress, last_count = time.monotonic(), -1
    while True:
        try:
            try:
                summary: dict[str, Any] = await node.call("recorder", ["wait"], timeout=1.0)
                return summary
            except CallTimeout:
                count = (await node.call("recorder", ["summary"]))["episodes"]
        except (NoProc, ProcessCrashed) as exc:
            raise TrainingFailed(f"the training tree went down: {exc}") from exc
        if count != last_count:
            last_progress, last_count = time.monotonic(), count
        elif time.monotonic() - last_progress > stall_seconds:
            raise TrainingFailed(
                f"no episode finished in {stall_seconds:.0f} s (after {count}): the workers keep failing "
                "or their nodes are gone; the log above says why"
            )


def _write_metrics(path: Path, rows: dict[str, list[Any]], evals: list[dict[str, float]]) -> None:
    by_episode = {int(e["episode"]): e for e in evals}
    names = ["episode", "worker", "return", "length", "success", "epsilon", "wall"]
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*names, "eval_success_rate", "eval_mean_return"])
        for i in range(len(rows.get("episode", []))):
            episode = rows["episode"][i]
            ev = by_episode.get(int(episode))
            extra = [f"{ev['success_rate']:.4f}", f"{ev['mean_return']:.4f}"] if ev else ["", ""]
            writer.writerow([rows[n][i] for n in names] + extra)


def _plot(
    path: Path, spec: RunSpec, rows: dict[str, list[Any]], evals: list[dict[str, float]], summary: dict[str, Any]
) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, (ax_ret, ax_succ) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    episodes = np.asarray(rows.get("episode", []), dtype=float)
    returns = np.asarray(rows.get("return", []), dtype=float)
    if len(returns):
        window = max(1, min(100, len(returns) // 10))
        smooth = np.convolve(returns, np.ones(window) / window, mode="valid")
        ax_ret.plot(episodes, returns, ".", alpha=0.15, markersize=2, label="episode return")
        ax_ret.plot(episodes[window - 1 :], smooth, label=f"moving mean ({window})")
    if evals:
        ax_ret.plot([e["episode"] for e in evals], [e["mean_return"] for e in evals], "o-", label="greedy eval return")
        ax_succ.plot(
            [e["episode"] for e in evals], [e["success_rate"] for e in evals], "o-", label="greedy success rate"
        )
    labels: dict[int, list[str]] = {}
    for event in summary.get("events") or []:
        labels.setdefault(int(event["episode"]), []).append(event["event"])
    for episode, texts in labels.items():
        for ax in (ax_ret, ax_succ):
            ax.axvline(episode, color="red", linestyle=":", alpha=0.6)
        ax_ret.annotate(
            "; ".join(texts),
            (episode, 0.98),
            xycoords=("data", "axes fraction"),
            xytext=(3, -3),
            textcoords="offset points",
            va="top",
            fontsize="x-small",
            color="red",
        )
    if spec.algo in PLANNING_ALGOS:
        ax_succ.axhline(summary.get("eval_success_rate") or 0.0, label=f"{spec.algo} success rate")
    ax_ret.set_ylabel("return")
    ax_succ.set_ylabel("success rate")
    ax_succ.set_xlabel("episode")
    for ax in (ax_ret, ax_succ):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="lower right", fontsize="small")
    fig.suptitle(f"beamrl {spec.algo} on {spec.env_id}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return str(path)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float):
        return finite(value)
    return value
