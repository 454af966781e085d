"""``beamrl train a3c ENV_ID --nodes K``: A3C with workers on K nodes, and the run's files.

    summary = beamrl.node.run(train_a3c("CartPole-v1", 300_000, nodes=2, out="runs/a3c"))

The learner node (this process) runs::

    a3c (Supervisor, one_for_one)
      recorder      RunMetrics   the live metrics dashboards read (beamrl.rl.deep.metrics)
      learner       A3CLearner   shared model + optimizer, versioned parameters, checkpoints in OUT/learner
      a3c-worker-0  A3CWorker    only with ``local_worker`` (--local-worker): a worker beside the learner

and each worker node (``--nodes K`` starts K ``beamrl node start`` processes on loopback;
``--attach ADDR`` adds nodes started elsewhere from ``nodes/actor.toml``; both need torch)
runs its ``workers`` supervisor with one ``a3c-worker-I``. Every name is reachable from
``beamrl shell ADDR``: ``("learner", "learner")``, ``("a3c-worker-1", "learner-actor1")``.
The driver here polls every worker and the learner twice a second: metrics rows (episodes,
each worker's steps/s and parameter lag, pushes applied and dropped per second) and a
greedy evaluation every ``eval_every`` env steps. A worker whose node went away is an
event; when the node is back (restarted by ``--kill-at``, or by hand for an attached one)
the driver starts the worker there again and it pulls the current parameters. The run
stops after ``steps`` env steps over all workers, or at the first evaluation reaching
``stop_at``. Each poll also goes to the ``recorder``: episode returns, evaluations,
events, and as curves the pushes applied and dropped as stale per second, the workers'
mean loss and policy entropy (of their last rollouts) and each worker's parameter lag
(``observers``: ``beamrl train --dashboard``, ``--tensorboard``, which close after its
last rows, before the tree stops).

``kill_at``: ``(STEP, TARGET)`` or ``(STEP, "actor-node", I)`` (``--kill-at STEP:actor-node:I``)
with TARGET ``actor-node`` (SIGKILL worker node I's OS process, node 0 when I is left out,
then start it again) or ``learner`` (killed in place: its supervisor restarts it from its
checkpoint); ``beamrl.rl.training.actors.Faults`` injects them. A run does not stop at
``stop_at`` before its faults were injected and recovered from. ``summary.json`` lists every
event (killed, restarted with what the learner restored, worker_lost, worker_rejoined)
with its wall time and env step.
"""

from __future__ import annotations

import asyncio
import csv
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from beamrl.errors import BeamError, NodeDown
from beamrl.node import Node
from beamrl.rl.a3c.config import A3CConfig, a3c_config
from beamrl.rl.apex.outputs import plot
from beamrl.rl.deep.evaluate import evaluate
from beamrl.rl.deep.files import write_json
from beamrl.rl.deep.metrics import Observer, RunWatch, recorder_child
from beamrl.rl.deep.params import NumpyPolicy, save_params
from beamrl.rl.training import judge_env
from beamrl.rl.training.actors import (
    ActorNodes,
    Faults,
    StepKill,
    check_step_kills,
    parse_step_kills,
    quiet_call,
    wait_for_actor_trees,
)
from beamrl.rl.training.progress import say
from beamrl.supervisor import child

__all__ = ["KILL_TARGETS", "METRICS", "parse_kill_at", "train_a3c", "worker_spec"]

log = logging.getLogger("beamrl.rl.a3c")
KILL_TARGETS = ("actor-node", "learner")
FINAL_EVAL_EPISODES = 20
_POLL_S = 0.5

#: metrics.csv columns; ``kind`` is episode, worker, rates or eval
METRICS = [
    "kind",
    "wall_s",
    "env_steps",
    "worker",
    "episode_return",
    "episode_length",
    "eval_mean_return",
    "learner_version",
    "pushes_per_s",
    "stale_per_s",
    "worker_steps_per_s",
    "worker_env_steps",
    "param_lag",
    "loss",
]


@dataclass
class _Worker:
    index: int
    node: str  #: the node it runs on ("" : the learner's own node)
    steps: int = 0  #: env steps of earlier incarnations plus this one's
    base: int = 0  #: env steps of earlier incarnations
    up: bool = False
    version: int = -1

    @property
    def address(self) -> Any:
        return f"a3c-worker-{self.index}" if not self.node else (f"a3c-worker-{self.index}", self.node)


@dataclass
class _Run:
    cfg: A3CConfig
    started: float
    events: list[dict[str, Any]] = field(default_factory=list)
    workers: list[_Worker] = field(default_factory=list)

    def env_steps(self) -> int:
        return sum(w.steps for w in self.workers)

    def event(self, kind: str, **info: Any) -> None:
        item = {"event": kind, "wall_s": round(time.monotonic() - self.started, 3), "env_steps": self.env_steps()}
        self.events.append(item | info)
        say(f"* {kind}: {', '.join(f'{k}={v}' for k, v in info.items())}")


def worker_spec(
    env_id: str, cfg: A3CConfig, index: int, seed: int, learner_node: str, go: bool = True
) -> dict[str, Any]:
    """Worker ``index``'s child spec, as data a remote ``workers`` supervisor starts (``go``: see ``A3CWorker``)."""
    return {
        "start": "beamrl.rl.a3c.worker:A3CWorker",
        "args": [env_id, cfg.to_data(), index, seed, ("learner", learner_node), go],
        "name": f"a3c-worker-{index}",
        "restart": "permanent",
    }


def parse_kill_at(items: list[str] | None) -> list[StepKill]:
    """``["20000:actor-node:1"]`` -> ``[StepKill(20000, "actor-node", 1)]``; anything else is a ValueError."""
    return parse_step_kills(items, KILL_TARGETS)


async def train_a3c(
    env_id: str,
    steps: int,
    *,
    nodes: int = 2,
    attach: list[str] | None = None,
    local_worker: bool = False,
    seed: int = 0,
    out: str | os.PathLike[str] = "runs/a3c",
    overrides: dict[str, Any] | None = None,
    kill_at: Sequence[tuple[int, str] | tuple[int, str, int]] | None = None,
    stop_at: float | None = None,
    listen: str | None = None,
    keys: str | None = None,
    name: str = "learner",
    observers: Sequence[Observer] = (),
) -> dict[str, Any]:
    """Train A3C; write ``metrics.csv``, ``summary.json``, ``model.safetensors``, ``curve.png``."""
    cfg = a3c_config(env_id, overrides)
    attach = list(attach or [])
    if nodes < 0 or nodes + len(attach) + int(local_worker) < 1:
        raise ValueError("a3c needs at least one worker: --nodes K (K >= 1), --attach ADDR or --local-worker")
    kills = check_step_kills(kill_at, KILL_TARGETS, nodes)
    out_dir = Path(out)
    _prepare(out_dir)
    run = _Run(cfg, time.monotonic())
    async with (
        Node(name, listen=listen or "tcp://127.0.0.1:0", keys=keys) as node,
        RunWatch(node, observers, run.events) as watch,  # the observers are up before the tree starts
    ):
        recorder = recorder_child(
            {"algo": "a3c", "env_id": env_id, "steps": steps, "absent": ["eval_success", "epsilon"]}
        )
        learner_spec = child(
            "beamrl.rl.a3c.learner:A3CLearner", env_id, cfg.to_data(), seed, str(out_dir / "learner"), name="learner"
        )
        await node.start_supervisor(
            [recorder, learner_spec], strategy="one_for_one", max_restarts=10, max_seconds=60.0, name="a3c"
        )
        address = node.address or ""
        say(f"learner node {name!r} listening on {address}: beamrl shell {address}")
        started_nodes = ActorNodes(nodes, address, name, out_dir) if nodes else None
        try:
            names = list(started_nodes.names) if started_nodes is not None else []
            attached: dict[str, str] = {}
            for peer in attach:
                attached[await node.connect(peer)] = peer
            names += list(attached)
            await wait_for_actor_trees(node, names, started_nodes, attached=attached)
            first = int(local_worker)
            run.workers = [_Worker(0, "")] if local_worker else []
            run.workers += [_Worker(first + i, n) for i, n in enumerate(names)]
            # side by side and idle: a worker node imports torch as its worker starts (seconds), and
            # the workers started first would otherwise run far ahead before the others and the driver
            await asyncio.gather(*(_start_worker(node, run, w, env_id, seed, name, go=False) for w in run.workers))
            for worker in run.workers:
                if worker.up:
                    node.cast(worker.address, ["go"])
            reached = await _drive(node, run, watch, env_id, steps, kills, stop_at, started_nodes, out_dir, seed, name)
            for worker in run.workers:
                await _stop_worker(node, worker)
            final_version, params = await node.call("learner", ["get_params", None], timeout=30.0)
            selected = "last"
            if reached is not None:  # the model that reached the target, not the pushes after it
                final_version, params, selected = reached["learner_version"], reached.pop("params"), "reached stop_at"
            spec = await node.call("learner", ["spec"])
            learner_stats = await node.call("learner", ["stats"])
            restarts = {c.name: c.restarts for c in await node.which_children("a3c") if c.name != "recorder"}
            await watch.close()  # the pages and event files get the last rows while the recorder is up
            await node.stop("a3c", timeout=60.0)
        finally:
            if started_nodes is not None:
                await asyncio.to_thread(started_nodes.close)
    wall = time.monotonic() - run.started
    meta = {"spec": spec, "algo": "a3c", "env_id": env_id, "version": final_version, "selected": selected}
    save_params(out_dir / "model.safetensors", params, meta)
    write_json(out_dir / "model.json", meta)
    returns = await asyncio.to_thread(evaluate, NumpyPolicy(spec, params), env_id, FINAL_EVAL_EPISODES)
    summary = {
        "algo": "a3c",
        "env_id": env_id,
        "seed": seed,
        "steps": steps,
        "env_steps": run.env_steps(),
        "worker_nodes": [w.node or name for w in run.workers],
        "hyper": cfg.to_data(),
        "eval_mean_return": float(np.mean(returns)),
        "eval_returns": returns,
        "eval_episodes": FINAL_EVAL_EPISODES,
        "judge": judge_env(env_id, {})[1],
        "stop_at": stop_at,
        "time_to_target": reached,
        "model_selected": selected,
        "model_version": final_version,
        "pushes_applied": int(learner_stats["applied"]),
        "pushes_stale": int(learner_stats["stale"]),
        "mean_push_lag": learner_stats["mean_lag"],
        "learner_restored_from": learner_stats["restored_from"],
        "wall_seconds": wall,
        "env_steps_per_s": run.env_steps() / wall if wall > 0 else None,
        "events": run.events,
        "restarts": restarts,
        "curve": plot(out_dir),
    }
    write_json(out_dir / "summary.json", summary)
    return summary


def _prepare(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    if (out_dir / "learner").exists():
        raise ValueError(f"{out_dir} holds an earlier run (learner/): use another --out")


async def _start_worker(
    node: Node, run: _Run, worker: _Worker, env_id: str, seed: int, learner: str, go: bool = True
) -> bool:
    try:
        if worker.node:
            spec = worker_spec(env_id, run.cfg, worker.index, seed, learner, go)
            await node.start_child(("workers", worker.node), spec, timeout=30.0)
        else:
            local = child(
                "beamrl.rl.a3c.worker:A3CWorker",
                *(env_id, run.cfg.to_data(), worker.index, seed, "learner", go),
                name=f"a3c-worker-{worker.index}",
            )
            await node.start_child("a3c", local, timeout=30.0)
    except BeamError as exc:
        log.warning("worker %d on %r did not start: %s", worker.index, worker.node, exc)
        return False
    worker.up = True
    return True


async def _stop_worker(node: Node, worker: _Worker) -> None:
    sup = ("workers", worker.node) if worker.node else "a3c"
    try:
        await node.terminate_child(sup, f"a3c-worker-{worker.index}", timeout=10)
    except BeamError as exc:
        log.info("leaving worker %d on %r: %s", worker.index, worker.node, exc)


async def _drive(
    node: Node,
    run: _Run,
    watch: RunWatch,
    env_id: str,
    steps: int,
    kills: list[StepKill],
    stop_at: float | None,
    started_nodes: ActorNodes | None,
    out_dir: Path,
    seed: int,
    learner: str,
) -> dict[str, Any] | None:
    """Poll, write metrics rows, evaluate, inject faults, tell the recorder; return when and where ``stop_at``
    was reached."""
    cfg = run.cfg
    next_eval = cfg.eval_every
    last = (time.monotonic(), 0, 0)  # time, applied, stale (this learner incarnation's counters)
    faults = Faults(kills, started_nodes, out_dir, run.event)
    reached: dict[str, Any] | None = None
    with (out_dir / "metrics.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, METRICS, extrasaction="ignore")
        writer.writeheader()
        while run.env_steps() < steps and reached is None:
            await asyncio.sleep(_POLL_S)
            now = time.monotonic()
            wall = round(now - run.started, 3)
            stats = await quiet_call(node, "learner", ["stats"])
            version = stats["version"] if stats else -1
            rows: list[dict[str, Any]] = []  # this poll's, for the recorder
            polled = [await _poll_worker(node, run, w, writer, wall, version) for w in run.workers]
            for p in filter(None, polled):
                rows += [{"step": run.env_steps(), "episode_return": r, "episode_length": n} for r, n in p["episodes"]]
            gauges = _gauges(run, polled, version)
            if stats is not None:
                applied, stale = stats["applied"], stats["stale"]
                if applied < last[1]:  # a restarted learner counts from zero
                    last = (last[0], 0, 0)
                dt = now - last[0]
                rates = {"pushes_per_s": (applied - last[1]) / dt, "stale_per_s": (stale - last[2]) / dt}
                last = (now, applied, stale)
                gauges |= rates
                writer.writerow({"kind": "rates", "wall_s": wall, "env_steps": run.env_steps()} | rates)
            f.flush()
            await faults.step(node, run.env_steps())
            await _rejoin(node, run, env_id, seed, learner)
            if run.env_steps() >= next_eval:
                while next_eval <= run.env_steps():
                    next_eval += cfg.eval_every
                reached = await _evaluate(node, run, env_id, writer, stop_at, rows)
                if not faults.settled((w.node, w.up) for w in run.workers):
                    reached = None  # the faults asked for come first
            await watch.report(rows, run.env_steps(), gauges, done=run.env_steps() >= steps or reached is not None)
    await faults.wait_back(node)  # a kill late in the run still gets its restarted event
    return reached


def _gauges(run: _Run, polled: list[dict[str, Any] | None], version: int) -> dict[str, Any]:
    """The curves of one poll besides the rates: each worker's lag, the workers' mean loss and entropy."""
    gauges: dict[str, Any] = {}
    for worker, p in zip(run.workers, polled, strict=True):
        if p is not None and version >= 0:
            gauges[f"param_lag/worker-{worker.index}"] = max(0, version - worker.version)
    for part in ("loss", "entropy"):  # of each worker's last rollout; none before its first gradient
        values = [float(p[part]) for p in polled if p is not None and p.get(part) is not None]
        if values:
            gauges[part] = sum(values) / len(values)
    return gauges


async def _evaluate(
    node: Node, run: _Run, env_id: str, writer: Any, stop_at: float | None, rows: list[dict[str, Any]]
) -> dict[str, Any] | None:
    """A greedy evaluation of the learner's parameters, written and added to ``rows``; what ``stop_at`` reached."""
    got = await quiet_call(node, "learner", ["get_params", None])
    spec = await quiet_call(node, "learner", ["spec"])
    if got is None or spec is None:
        return None
    mean = float(np.mean(await asyncio.to_thread(evaluate, NumpyPolicy(spec, got[1]), env_id, run.cfg.eval_episodes)))
    wall = round(time.monotonic() - run.started, 3)
    writer.writerow(
        {"kind": "eval", "wall_s": wall, "env_steps": run.env_steps()}
        | {"eval_mean_return": mean, "learner_version": got[0]}
    )
    say(f"  {run.env_steps():>8} env steps, learner version {got[0]}: greedy return {mean:.1f}")
    rows.append({"step": run.env_steps(), "eval_mean_return": mean})
    if stop_at is None or mean < stop_at:
        return None
    return {
        "wall_s": wall,
        "env_steps": run.env_steps(),
        "learner_version": got[0],
        "eval_mean_return": mean,
        "params": got[1],
    }


async def _poll_worker(
    node: Node, run: _Run, worker: _Worker, writer: Any, wall: float, version: int
) -> dict[str, Any] | None:
    """Read a worker's progress and write its rows; returns the progress, or None when it is not up."""
    if not worker.up:
        return None
    try:
        p = await node.call(worker.address, ["progress"], timeout=5.0)
    except BeamError as exc:
        worker.up = False
        worker.base = worker.steps
        down = isinstance(exc, NodeDown) or (worker.node and worker.node not in node.nodes())
        reason = "node down" if down else type(exc).__name__
        run.event("worker_lost", worker=worker.index, node=worker.node, reason=reason, learner_version=version)
        return None
    worker.steps = worker.base + int(p["steps"])
    worker.version = int(p["version"])
    for ret, length in p["episodes"]:
        writer.writerow(
            {"kind": "episode", "wall_s": wall, "env_steps": run.env_steps(), "worker": worker.index}
            | {"episode_return": ret, "episode_length": length}
        )
    writer.writerow(
        {"kind": "worker", "wall_s": wall, "env_steps": run.env_steps(), "worker": worker.index}
        | {"worker_steps_per_s": p["steps_per_s"], "worker_env_steps": worker.steps, "learner_version": version}
        | {"param_lag": max(0, version - worker.version) if version >= 0 else None, "loss": p.get("loss")}
    )
    return dict(p)


async def _rejoin(node: Node, run: _Run, env_id: str, seed: int, learner: str) -> None:
    """Start the worker again on a node that is back (it pulls the current parameters in ``init``)."""
    for worker in run.workers:
        if worker.up or not worker.node or worker.node not in node.nodes():
            continue
        try:
            await node.call(("workers", worker.node), ["count_children"], timeout=2.0)
        except BeamError:
            continue  # its tree is still starting
        if await _start_worker(node, run, worker, env_id, seed, learner):
            p = await quiet_call(node, worker.address, ["progress"])
            got = None if p is None else p["version"]
            run.event("worker_rejoined", worker=worker.index, node=worker.node, params_version=got)
