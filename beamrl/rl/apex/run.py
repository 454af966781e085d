"""``beamrl train apex-dqn ENV_ID --nodes K``: Ape-X DQN over K actor nodes, and the run's files.

    summary = beamrl.node.run(train_apex("CartPole-v1", 100_000, nodes=2, out="runs/apex"))

The learner node (this process) runs::

    apex (Supervisor, one_for_one)
      recorder      RunMetrics     the live metrics dashboards read (beamrl.rl.deep.metrics)
      replay        ReplayServer   prioritized, rate-limited, checkpointed in OUT/replay
      learner       Learner        torch DQN (beamrl.rl.deep.learner), checkpoints in OUT/learner
      learner-loop  LearnerLoop    samples, learns, sends priorities back

With ``replay_shards`` = R > 1 (``--set replay_shards=R``) the ``replay`` is R shards
``replay-0`` ... ``replay-{R-1}`` (``buffer_size / R`` each, checkpoints in OUT/replay-K,
each its own rate limiter with ``min_replay / R``); actor ``i`` feeds shard
``shard_of(i, R)`` = ``i mod R``, and the loop samples whichever shard has a batch ready
(``beamrl.rl.apex.loop``). The driver's rates and gauges sum over the shards, and
``summary.json``'s ``replay`` adds each shard's counts under ``shards``
(``beamrl.rl.apex.shards``).

and each actor node (``--nodes K`` starts K ``beamrl node start`` processes on loopback;
``--attach ADDR`` adds nodes started elsewhere from ``nodes/actor.toml``) runs its
``workers`` supervisor with one ``apex-actor-I`` (``ApexActor``, numpy only). The driver
here polls every actor, the replay and the learner twice a second: metrics rows, the
rates (inserts/s, samples/s, learner updates/s), each actor's parameter lag (learner
version − the actor's), and a greedy evaluation every ``eval_every`` env steps. An actor
whose node went away is an event; when its node is back (restarted by ``--kill-at``, or
by hand for an attached one) the driver starts the actor there again and it pulls the
current parameters. The run stops after ``steps`` env steps over all actors, or at the
first evaluation reaching ``stop_at``. Each poll also goes to the ``recorder``: episode
returns, evaluations, events, and the replay size, inserts/s, samples/s, the loss and
each actor's parameter lag as curves (``observers``: ``beamrl train --dashboard``,
``--tensorboard``, which close after its last rows, before the tree stops).

With ``learners`` = G > 1 (``--set learners=G``) the ``learner`` is replica 0 of G
data-parallel replicas and G - 1 more nodes run the others, each with its own loop
(``beamrl.rl.apex.replicas``): the ``attach_learners`` nodes (``--attach-learner ADDR``,
started elsewhere from ``nodes/learner-replica.toml``) and the rest on loopback;
``summary.json``'s ``learners`` holds their nodes, the group's address, their final
versions and weight digests (equal when they stayed in step).

``kill_at``: ``(STEP, TARGET)`` or ``(STEP, "actor-node", I)`` (``--kill-at STEP:actor-node:I``)
with TARGET ``actor-node`` (SIGKILL actor node I's OS process, node 0 when I is left
out, then start it again), ``learner`` or ``replay`` (killed in place: their supervisor
restarts them from their checkpoints; with shards ``replay`` is ``replay-0``, and
``replay-K`` names shard K); ``beamrl.rl.training.actors.Faults`` injects them.
A run does not stop at ``stop_at`` before its faults were injected and recovered from.
``summary.json`` lists every event with its wall time and env step: ``killed``,
``restarted`` (for the replay: the transitions it restored and ``lost``, those added after
its last checkpoint), ``actor_lost``, ``actor_rejoined``; its ``replay.lost`` is the sum over
every kill (each shard's in ``replay.shards``), and ``replay.foreign_updates`` counts the
priority updates a restarted replay dropped because they came from a batch of the process before.

About 470 lines, past the ~400 aim: the driver (start, poll, evaluate, inject faults,
rejoin, stop) is one loop whose steps share the run's state; the processes it drives,
the outputs, the replicas and the replay shards live in their own modules.
"""

from __future__ import annotations

import asyncio
import csv
import logging
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from beamrl.errors import BeamError, NodeDown
from beamrl.node import Node
from beamrl.rl.apex.config import ApexConfig, apex_config, replay_address, replay_names, shard_of
from beamrl.rl.apex.outputs import METRICS, plot
from beamrl.rl.apex.replicas import LearnerReplicas, group_address
from beamrl.rl.apex.shards import kill_target, replay_children, replay_stats, replay_summary
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

__all__ = ["KILL_TARGETS", "actor_spec", "parse_kill_at", "train_apex"]

log = logging.getLogger("beamrl.rl.apex")
KILL_TARGETS = ("actor-node", "learner", "replay")
FINAL_EVAL_EPISODES = 20
_POLL_S = 0.5


@dataclass
class _Actor:
    index: int
    node: str
    steps: int = 0  #: env steps of earlier incarnations plus this one's
    base: int = 0  #: env steps of earlier incarnations
    up: bool = False
    version: int = -1
    steps_per_s: float = 0.0


@dataclass
class _Run:
    cfg: ApexConfig
    started: float
    events: list[dict[str, Any]] = field(default_factory=list)
    actors: list[_Actor] = field(default_factory=list)

    def env_steps(self) -> int:
        return sum(a.steps for a in self.actors)

    def event(self, kind: str, **info: Any) -> dict[str, Any]:
        item = {"event": kind, "wall_s": round(time.monotonic() - self.started, 3), "env_steps": self.env_steps()}
        item.update(info)
        self.events.append(item)
        say(f"* {kind}: {', '.join(f'{k}={v}' for k, v in info.items())}")
        return item


def actor_spec(env_id: str, cfg: ApexConfig, index: int, count: int, seed: int, learner_node: str) -> dict[str, Any]:
    """Actor ``index``'s child spec, as data a remote ``workers`` supervisor starts (it feeds its replay shard)."""
    shard = replay_names(cfg)[shard_of(index, cfg.replay_shards)]
    return {
        "start": "beamrl.rl.apex.actor:ApexActor",
        "args": [env_id, cfg.to_data(), index, count, seed, (shard, learner_node), ("learner", learner_node)],
        "name": f"apex-actor-{index}",
        "restart": "permanent",
    }


def parse_kill_at(items: list[str] | None) -> list[StepKill]:
    """``["20000:actor-node:1"]`` -> ``[StepKill(20000, "actor-node", 1)]``; anything else is a ValueError.

    TARGET may also be ``replay-K``: shard K of a sharded replay (checked against the run's
    ``replay_shards`` when it starts); plain ``replay`` is shard 0 there.
    """
    shards = [item for item in items or [] if re.fullmatch(r"\d+:replay-\d+", item)]
    kills = parse_step_kills([item for item in items or [] if item not in shards], KILL_TARGETS)
    kills += [StepKill(int(at), target) for at, _, target in (item.partition(":") for item in shards)]
    return sorted(kills)


async def train_apex(
    env_id: str,
    steps: int,
    *,
    nodes: int = 2,
    attach: list[str] | None = None,
    attach_learners: list[str] | None = None,
    seed: int = 0,
    out: str | os.PathLike[str] = "runs/apex",
    overrides: dict[str, Any] | None = None,
    kill_at: Sequence[tuple[int, str] | tuple[int, str, int]] | None = None,
    stop_at: float | None = None,
    listen: str | None = None,
    keys: str | None = None,
    name: str = "learner",
    observers: Sequence[Observer] = (),
) -> dict[str, Any]:
    """Train Ape-X DQN; write ``metrics.csv``, ``summary.json``, ``model.safetensors``, ``curve.png``."""
    cfg = apex_config(env_id, overrides)
    attach = list(attach or [])
    if nodes < 0 or nodes + len(attach) < 1:
        raise ValueError("apex-dqn needs at least one actor node: --nodes K (K >= 1) or --attach ADDR")
    if cfg.replay_shards > nodes + len(attach):
        raise ValueError(
            f"replay_shards={cfg.replay_shards} needs at least as many actors (one per actor node): "
            f"this run has {nodes + len(attach)}; give --nodes K with K >= {cfg.replay_shards}"
        )
    named = [StepKill(*kill) for kill in kill_at or []]
    named = [kill._replace(target=kill_target(kill.target, cfg)) for kill in named]
    kills = check_step_kills(named, (*KILL_TARGETS, *replay_names(cfg)), nodes)
    if cfg.learners > 1 and any(k.target == "learner" for k in kills):
        raise ValueError(
            "--kill-at STEP:learner needs one learner: a replica group cannot take back one restarted replica"
        )
    attach_learners = list(attach_learners or [])
    if len(attach_learners) > cfg.learners - 1:
        raise ValueError(
            f"--attach-learner: {len(attach_learners)} replica node(s) given, but learners={cfg.learners} leaves room"
            f" for {cfg.learners - 1} besides replica 0 (the learner node's): give --set"
            f" learners={len(attach_learners) + 1} or fewer --attach-learner"
        )
    group = None  # where the replicas meet, checked before anything starts
    if cfg.learners > 1:
        group = group_address(listen or "tcp://127.0.0.1:0", attach_learners, cfg.group_port)
    out_dir = Path(out)
    _prepare(out_dir)
    run = _Run(cfg, time.monotonic())
    async with (
        Node(name, listen=listen or "tcp://127.0.0.1:0", keys=keys) as node,
        RunWatch(node, observers, run.events) as watch,  # the observers are up before the tree starts
    ):
        learner_cfg = cfg.learner_overrides()
        replicas = None
        if group is not None:
            replicas = LearnerReplicas(node, cfg, env_id, seed, out_dir, group, attach_learners)
        learner = child(
            "beamrl.rl.deep.learner:Learner", "dqn", env_id, learner_cfg, seed, str(out_dir / "learner"), name="learner"
        )
        if replicas is not None:  # replica 0 of G (see beamrl.rl.apex.replicas)
            learner = replicas.learner_child(str(out_dir / "learner"))
        start_apex = node.start_supervisor(
            [
                recorder_child(
                    {"algo": "apex-dqn", "env_id": env_id, "steps": steps, "absent": ["eval_success", "epsilon"]}
                ),
                *replay_children(cfg, seed, out_dir),
                learner,
                child(
                    "beamrl.rl.apex.loop:LearnerLoop",
                    replay_address(cfg),
                    "learner",
                    cfg.batch_size,
                    cfg.prioritized,
                    cfg.lr_decay_updates,
                    name="learner-loop",
                ),
            ],
            strategy="one_for_one",
            max_restarts=10,
            max_seconds=60.0,
            name="apex",
        )
        try:
            await (start_apex if replicas is None else replicas.start(start_apex))
        except BaseException:
            if replicas is not None:
                await replicas.release(timeout=5.0)
                await asyncio.to_thread(replicas.close)
            raise
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
            run.actors = [_Actor(i, n) for i, n in enumerate(names)]
            for actor in run.actors:
                await _start_actor(node, run, actor, env_id, seed, name)
            reached = await _drive(node, run, watch, env_id, steps, kills, stop_at, started_nodes, out_dir, seed, name)
            held = await replicas.hold() if replicas is not None else None  # while the actors still feed the replay
            for actor in run.actors:
                try:
                    await node.terminate_child(("workers", actor.node), f"apex-actor-{actor.index}", timeout=10)
                except BeamError as exc:
                    log.info("leaving actor %d on %r: %s", actor.index, actor.node, exc)
            await node.call("learner-loop", ["pause"], timeout=30.0)
            final_version, params = await node.call("learner", ["get_params", None], timeout=30.0)
            selected = "last"
            if reached is not None:  # the model that reached the target, not the few updates after it
                final_version, params, selected = reached["learner_version"], reached.pop("params"), "reached stop_at"
            spec = await node.call("learner", ["spec"])
            final_replay = await replay_stats(node, cfg, quiet=False)
            assert final_replay is not None  # not quiet: a shard away raised
            loop_stats = await node.call("learner-loop", ["stats"])
            learner_stats = await node.call("learner", ["stats"])
            restarts = {c.name: c.restarts for c in await node.which_children("apex") if c.name != "recorder"}
            if held is not None and replicas is not None:
                held["loop_updates"] = [(await node.call("learner-loop", ["stats"]))["updates"]]
                held["loop_updates"] += await replicas.loop_updates()
                held["nodes"], held["group"] = list(replicas.names), replicas.group
                await replicas.release()
            await watch.close()  # the pages and event files get the last rows while the recorder is up
            await node.stop("apex", timeout=60.0)
        finally:
            if started_nodes is not None:
                await asyncio.to_thread(started_nodes.close)
            if replicas is not None:
                await replicas.release()
                await asyncio.to_thread(replicas.close)
    wall = time.monotonic() - run.started
    meta = {"spec": spec, "algo": "apex-dqn", "env_id": env_id, "version": final_version, "selected": selected}
    save_params(out_dir / "model.safetensors", params, meta)
    write_json(out_dir / "model.json", meta)
    returns = await asyncio.to_thread(evaluate, NumpyPolicy(spec, params), env_id, FINAL_EVAL_EPISODES)
    limiter = final_replay.get("rate_limiter") or {}
    summary = {
        "algo": "apex-dqn",
        "env_id": env_id,
        "seed": seed,
        "steps": steps,
        "env_steps": run.env_steps(),
        "actor_nodes": [a.node for a in run.actors],
        "hyper": cfg.to_data(),
        "eval_mean_return": float(np.mean(returns)),
        "eval_returns": returns,
        "eval_episodes": FINAL_EVAL_EPISODES,
        "judge": judge_env(env_id, {})[1],
        "stop_at": stop_at,
        "time_to_target": reached,
        "model_selected": selected,
        "model_version": final_version,
        "learner_updates": int(learner_stats["updates"]),
        "learners": {"replicas": cfg.learners, **(held or {})},
        "replay": replay_summary(final_replay, loop_stats),
        "samples_per_insert": limiter.get("samples_per_insert_actual"),
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
    for stale in ("learner", "replay", *(p.name for p in sorted(out_dir.glob("replay-*")))):
        if (out_dir / stale).exists():
            raise ValueError(f"{out_dir} holds an earlier run ({stale}/): use another --out")


async def _start_actor(node: Node, run: _Run, actor: _Actor, env_id: str, seed: int, learner: str) -> bool:
    spec = actor_spec(env_id, run.cfg, actor.index, len(run.actors), seed, learner)
    try:
        await node.start_child(("workers", actor.node), spec, timeout=30.0)
    except BeamError as exc:
        log.warning("actor %d on %r did not start: %s", actor.index, actor.node, exc)
        return False
    actor.up = True
    return True


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
    """Poll, write metrics rows, evaluate, inject faults; return when and where ``stop_at`` was reached."""
    cfg = run.cfg
    next_eval = cfg.eval_every
    last = (time.monotonic(), 0, 0, 0)  # time, total inserted, sampled, learner version
    faults = Faults(kills, started_nodes, out_dir, run.event)
    reached: dict[str, Any] | None = None
    with (out_dir / "metrics.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, METRICS, extrasaction="ignore")
        writer.writeheader()
        while run.env_steps() < steps and reached is None:
            await asyncio.sleep(_POLL_S)
            now = time.monotonic()
            wall = round(now - run.started, 3)
            replay = await replay_stats(node, cfg)
            loop = await quiet_call(node, "learner-loop", ["stats"])
            version = loop["version"] if loop else last[3]
            rows: list[dict[str, Any]] = []  # this poll's, for the recorder
            gauges: dict[str, Any] = {}
            for actor in run.actors:
                for ret, length in await _poll_actor(node, run, actor, writer, wall, version):
                    rows.append({"step": run.env_steps(), "episode_return": ret, "episode_length": length})
                if actor.up:
                    gauges[f"param_lag/actor-{actor.index}"] = max(0, version - actor.version)
            if replay is not None:
                limiter = replay.get("rate_limiter") or {}
                inserted, sampled = replay["total_added"], limiter.get("samples", 0)
                dt = now - last[0]
                rates = {
                    "inserts_per_s": (inserted - last[1]) / dt,
                    "samples_per_s": (sampled - last[2]) / dt,
                    "learner_steps_per_s": (version - last[3]) / dt,
                }
                last = (now, inserted, sampled, version)
                gauges |= {"replay_size": replay["len"], "inserts_per_s": rates["inserts_per_s"]}
                gauges |= {"samples_per_s": rates["samples_per_s"]}
                writer.writerow(
                    {"kind": "rates", "wall_s": wall, "env_steps": run.env_steps(), "learner_version": version} | rates
                )
            f.flush()
            # faults
            await faults.step(node, run.env_steps())
            await _rejoin(node, run, env_id, seed, learner, started_nodes)
            # evaluation
            if run.env_steps() >= next_eval:
                while next_eval <= run.env_steps():
                    next_eval += cfg.eval_every
                got = await quiet_call(node, "learner", ["get_params", None])
                spec = await quiet_call(node, "learner", ["spec"])
                if got is not None and spec is not None:
                    policy = NumpyPolicy(spec, got[1])
                    mean = float(np.mean(await asyncio.to_thread(evaluate, policy, env_id, cfg.eval_episodes)))
                    writer.writerow(
                        {"kind": "eval", "wall_s": round(time.monotonic() - run.started, 3)}
                        | {"env_steps": run.env_steps(), "eval_mean_return": mean, "learner_version": got[0]}
                    )
                    say(f"  {run.env_steps():>8} env steps, learner version {got[0]}: greedy return {mean:.1f}")
                    rows.append({"step": run.env_steps(), "eval_mean_return": mean})
                    settled = faults.settled((a.node, a.up) for a in run.actors)
                    if stop_at is not None and mean >= stop_at and settled:
                        reached = {
                            "wall_s": time.monotonic() - run.started,
                            "env_steps": run.env_steps(),
                            "learner_version": got[0],
                            "eval_mean_return": mean,
                            "params": got[1],
                        }
            learner_stats = await quiet_call(node, "learner", ["stats"])
            gauges["loss"] = None if learner_stats is None else learner_stats.get("loss")
            done = run.env_steps() >= steps or reached is not None
            await watch.report(rows, run.env_steps(), gauges, done)
    await faults.wait_back(node)  # a kill late in the run still gets its restarted event
    return reached


async def _poll_actor(
    node: Node, run: _Run, actor: _Actor, writer: Any, wall: float, version: int
) -> list[tuple[float, int]]:
    """Read an actor's progress and write its rows; returns its new episodes (return, length)."""
    if not actor.up:
        return []
    try:
        p = await node.call((f"apex-actor-{actor.index}", actor.node), ["progress"], timeout=5.0)
    except BeamError as exc:
        actor.up = False
        actor.base = actor.steps
        reason = "node down" if isinstance(exc, NodeDown) or actor.node not in node.nodes() else type(exc).__name__
        run.event("actor_lost", actor=actor.index, node=actor.node, reason=reason)
        return []
    actor.steps = actor.base + int(p["steps"])
    actor.version, actor.steps_per_s = int(p["version"]), float(p["steps_per_s"])
    for ret, length in p["episodes"]:
        writer.writerow(
            {"kind": "episode", "wall_s": wall, "env_steps": run.env_steps(), "actor": actor.index}
            | {"episode_return": ret, "episode_length": length}
        )
    writer.writerow(
        {"kind": "actor", "wall_s": wall, "env_steps": run.env_steps(), "actor": actor.index}
        | {"actor_steps_per_s": actor.steps_per_s, "actor_env_steps": actor.steps}
        | {"param_lag": max(0, version - actor.version)}
        | {"learner_version": version}
    )
    return [(float(ret), int(length)) for ret, length in p["episodes"]]


async def _rejoin(node: Node, run: _Run, env_id: str, seed: int, learner: str, started: ActorNodes | None) -> None:
    """Start the actor again on a node that is back (its actor gets the current parameters)."""
    for actor in run.actors:
        if actor.up or actor.node not in node.nodes():
            continue
        try:
            await node.call(("workers", actor.node), ["count_children"], timeout=2.0)
        except BeamError:
            continue  # its tree is still starting
        if await _start_actor(node, run, actor, env_id, seed, learner):
            p = await quiet_call(node, (f"apex-actor-{actor.index}", actor.node), ["progress"])
            got = None if p is None else p["version"]
            run.event("actor_rejoined", actor=actor.index, node=actor.node, params_version=got)
