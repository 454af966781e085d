"""``beamrl bench apex``: Ape-X's throughput on this machine, each figure beside a floor from the same run.

Rows:

- the floor: one actor's loop without any messaging (``ApexActing.run_plain``: numpy
  Q-network + vector env + n-step windows and priorities, batches dropped), here;
- one actor node (a ``beamrl node start`` process) acting for the learner node, which
  takes its casts into the replay and answers its parameter pulls, with the learner
  loop off: the actor's steps/s against the same loop run in that process with no
  messaging (``["plain_rate", 1.0]``), in alternating one-second windows so that both see
  the machine alike (the cost of messaging alone);
- the learner loop alone (``LearnerLoop`` between a replay and a learner that both answer
  at once, batches of 512 CartPole rows): the loop's own cost per batch (sample request,
  learn request, priority cast), which a real learner's update hides behind;
- ``beamrl train apex-dqn`` with 1 and with 2 actor nodes, and with 2 actor nodes feeding
  2 replay shards (``replay_shards=2``: one actor per shard; learning on: batch 512, the
  limiter's 8 samples per insert gating the learner but the actors not pausing, so they
  run free as the paper's; no periodic evaluation): env steps/s over all actors and per
  actor, learner updates (batches)/s, replay inserts/s and samples/s (medians of the half-second polls after the first
  quarter of the run). On a 2-core machine the learner and the actors share the cores,
  so these rows show how the load splits, not how a cluster scales.
"""

from __future__ import annotations

import asyncio
import csv
import itertools
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from beamrl.bench.report import Row
from beamrl.gen_server import GenServer
from beamrl.node import Node
from beamrl.node import run as run_on_uvloop
from beamrl.rl.apex.acting import ApexActing
from beamrl.rl.apex.config import ApexConfig, apex_config
from beamrl.rl.apex.loop import LearnerLoop
from beamrl.rl.apex.run import actor_spec, train_apex
from beamrl.rl.training.actors import ActorNodes, wait_for_actor_trees
from beamrl.supervisor import child

ENV = "CartPole-v1"


def _random_params(cfg: ApexConfig, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    sizes = [4, *cfg.hidden, 2]
    params = {}
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        params[f"q.body.{2 * i}.weight"] = (rng.normal(size=(b, a)) / np.sqrt(a)).astype(np.float32)
        params[f"q.body.{2 * i}.bias"] = np.zeros(b, np.float32)
    return params


def plain_loop_rate(cfg: ApexConfig, seconds: float) -> float:
    """Env steps/s of one actor's loop with no messaging at all."""
    acting = ApexActing(ENV, cfg, {"kind": "q", "activation": cfg.activation}, seed=0, epsilon=0.4)
    acting.set_params(_random_params(cfg))
    acting.run_plain(2_000)  # warm-up
    t0, s0 = time.perf_counter(), acting.steps
    while time.perf_counter() - t0 < seconds:
        acting.run_plain(1_000)
    return (acting.steps - s0) / (time.perf_counter() - t0)


async def _messaging_only(cfg: ApexConfig, seconds: float, out: Path) -> tuple[float, float]:
    """Steps/s of one remote actor whose casts and pulls reach the learner node (no learning), and
    of the same loop without messaging in that actor's process, alternating 1 s windows (medians)."""
    async with Node("bench-learner", listen="tcp://127.0.0.1:0") as node:
        await node.start_supervisor(
            [
                child("beamrl.rl.replay_server:ReplayServer", cfg.buffer_size, prioritized=True, name="replay"),
                child("beamrl.rl.deep.learner:Learner", "dqn", ENV, cfg.learner_overrides(), 0, name="learner"),
            ],
            name="apex",
        )
        nodes = ActorNodes(1, node.address or "", "bench-learner", out)
        try:
            await wait_for_actor_trees(node, nodes.names, nodes)
            await node.start_child(("workers", nodes.names[0]), actor_spec(ENV, cfg, 0, 1, 0, "bench-learner"))
            actor = ("apex-actor-0", nodes.names[0])
            await asyncio.sleep(1.0)  # warm-up
            messaging, plain = [], []
            for _ in range(max(1, int(seconds))):  # alternate, so both see the machine alike
                p0 = await node.call(actor, ["progress"])
                t0 = time.perf_counter()
                await asyncio.sleep(1.0)
                p1 = await node.call(actor, ["progress"])
                messaging.append((p1["steps"] - p0["steps"]) / (time.perf_counter() - t0))
                plain.append(await node.call(actor, ["plain_rate", 1.0], timeout=10.0))
        finally:
            await asyncio.to_thread(nodes.close)
    return statistics.median(messaging), statistics.median(plain)


class _InstantReplay(GenServer):
    """Answers every ``sample`` at once with the same batch of ``size`` CartPole rows; ignores priorities."""

    async def init(self, size: int) -> None:
        self.batch = {
            "state": np.zeros((size, 4), np.float32),
            "action": np.zeros(size, np.int64),
            "reward": np.ones(size, np.float32),
            "next_state": np.zeros((size, 4), np.float32),
            "terminated": np.zeros(size, np.bool_),
            "truncated": np.zeros(size, np.bool_),
            "discount": np.full(size, 0.99, np.float32),
            "indices": np.arange(size, dtype=np.int64),
            "weights": np.ones(size, np.float32),
        }

    async def handle_call(self, request: Any, from_: Any) -> Any:
        return dict(self.batch)

    async def handle_cast(self, request: Any) -> None:
        return None  # the priorities the loop sends back


class _InstantLearner(GenServer):
    """Answers every ``learn`` at once: the next version and a |TD error| per row."""

    async def init(self) -> None:
        self.version = 0

    async def handle_call(self, request: Any, from_: Any) -> Any:
        self.version += 1
        return {"version": self.version, "td": np.ones(len(request[1]["indices"]), np.float32)}


async def loop_overhead(batch_size: int, seconds: float) -> float:
    """Batches/s of a ``LearnerLoop`` between an instant replay and an instant learner."""
    async with Node("bench-loop") as node:
        await node.start(_InstantReplay, batch_size, name="replay")
        await node.start(_InstantLearner, name="learner")
        await node.start(LearnerLoop, "replay", "learner", batch_size, name="loop")
        await asyncio.sleep(0.5)  # warm-up
        u0, t0 = (await node.call("loop", ["stats"]))["updates"], time.perf_counter()
        await asyncio.sleep(seconds)
        u1, t1 = (await node.call("loop", ["stats"]))["updates"], time.perf_counter()
        await node.call("loop", ["pause"])
    return float((u1 - u0) / (t1 - t0))


def _medians(metrics: Path) -> dict[str, float]:
    with metrics.open() as f:
        rows = list(csv.DictReader(f))
    end = max(float(r["wall_s"]) for r in rows)
    start = min(float(r["wall_s"]) for r in rows if r["kind"] == "rates") + end / 4
    rates = [r for r in rows if r["kind"] == "rates" and float(r["wall_s"]) >= start]
    actors = [r for r in rows if r["kind"] == "actor" and float(r["wall_s"]) >= start and float(r["actor_steps_per_s"])]
    out = {k: statistics.median(float(r[k]) for r in rates) for k in ("inserts_per_s", "samples_per_s")}
    out["learner_steps_per_s"] = statistics.median(float(r["learner_steps_per_s"]) for r in rates)
    per_actor: dict[str, list[float]] = {}
    for r in actors:
        per_actor.setdefault(r["actor"], []).append(float(r["actor_steps_per_s"]))
    medians = [statistics.median(v) for v in per_actor.values()]
    out["actor_steps_per_s"] = statistics.median(medians)
    out["env_steps_per_s"] = sum(medians)
    return out


#: the paper's batch and a ratio that lets the actors run: a throughput measurement, not CartPole's
#: learning defaults (batch 64 at 32 samples per insert, where the learner sets the pace)
BENCH_CONFIG = {
    "batch_size": 512,
    "samples_per_insert": 8.0,
    "error_buffer": 4_096.0,
    "min_replay": 2_000,
    "throttle": False,
}


def run(quick: bool = False) -> list[Row]:
    cfg = apex_config(ENV, BENCH_CONFIG)
    seconds = 2.0 if quick else 5.0
    steps = 60_000 if quick else 150_000
    floor = plain_loop_rate(cfg, seconds)
    rows: list[Row] = [{"name": "one actor's loop, no messaging (floor)", "value": floor, "unit": "steps/s"}]
    rows.append(
        {
            "name": "learner loop alone (instant replay + learner)",
            "value": run_on_uvloop(loop_overhead(cfg.batch_size, seconds)),
            "unit": "batches/s",
            "note": f"the loop's own cost per batch of {cfg.batch_size}: sample, learn, priorities",
        }
    )
    with tempfile.TemporaryDirectory(prefix="beamrl-bench-apex-") as tmp:
        messaging, in_node_floor = run_on_uvloop(_messaging_only(cfg, seconds, Path(tmp)))
        rows.append(
            {
                "name": "  the same loop in an actor node's process (floor)",
                "value": in_node_floor,
                "unit": "steps/s",
            }
        )
        rows.append(
            {
                "name": "one actor node, casts + pulls, learning off",
                "value": messaging,
                "unit": "steps/s",
                "ratio_vs_floor": messaging / in_node_floor,
                "target": ">= 0.8x",
                "note": "against the floor in its own process, alternating 1 s windows",
            }
        )
        for nodes, shards in ((1, 1), (2, 1), (2, 2)):
            out = Path(tmp) / f"run{nodes}-{shards}"
            overrides = {**BENCH_CONFIG, "eval_every": 10 * steps, "replay_shards": shards}
            run_on_uvloop(train_apex(ENV, steps, nodes=nodes, out=out, overrides=overrides))
            m = _medians(out / "metrics.csv")
            label = f"{nodes} actor node{'s' if nodes > 1 else ''}"
            label += f", {shards} shards" if shards > 1 else ""  # replay shards (the name column is 52 wide)
            rows += [
                {
                    "name": f"apex-dqn, {label}: env steps/s" + (" (all actors)" if shards == 1 else ""),
                    "value": m["env_steps_per_s"],
                    "unit": "steps/s",
                },
                {
                    "name": "  per actor",
                    "value": m["actor_steps_per_s"],
                    "unit": "steps/s",
                    "ratio_vs_floor": m["actor_steps_per_s"] / floor,
                    "note": "the learner and the other actors share the 2 cores",
                },
                {"name": "  learner updates (batches of 512)", "value": m["learner_steps_per_s"], "unit": "batches/s"},
                {"name": "  replay inserts", "value": m["inserts_per_s"], "unit": "transitions/s"},
                {"name": "  replay samples", "value": m["samples_per_s"], "unit": "transitions/s"},
            ]
    return rows
