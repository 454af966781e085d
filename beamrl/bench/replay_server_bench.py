"""ReplayServer rows of ``beamrl bench replay``: a replay memory as a process, local and remote.

For a memory of ``capacity`` CartPole transitions (state ``float32[4]``, int64 action)
held by a ``ReplayServer``, measures what a learner sees:

- sampled transitions/s for batches of 512 through a remote call (the server runs in
  a second OS process, ``NodeProcess``, on loopback), uniform and prioritized (each
  prioritized batch followed by a cast of 512 new priorities, as a learner does), one
  call at a time and with 4 calls in flight;
- the same through a local call (server and learner on one node);
- the floor: ``ReplayMemory.get_batch(512)`` called directly, no process, no codec;
- actors' ``add_batch`` casts (10,000 rows each) into the remote server, transitions/s.

Ratios put each figure beside its floor. Run alone::

    python -m beamrl.bench.replay_server_bench [--quick] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import numpy as np

from beamrl.bench.replay_bench import _columns
from beamrl.launch import NodeProcess
from beamrl.node import Node
from beamrl.node import run as run_on_uvloop
from beamrl.rl.replay import ReplayMemory
from beamrl.rl.replay_server import ReplayServer

Row = dict[str, Any]

BATCH = 512
ADD_ROWS = 10_000
IN_FLIGHT = 4

SERVER_TREE = """
[[children]]
start = "beamrl.rl.replay_server:ReplayServer"
name = "uniform"
args = [{capacity}]
kwargs = {{ seed = 0 }}

[[children]]
start = "beamrl.rl.replay_server:ReplayServer"
name = "prioritized"
args = [{capacity}]
kwargs = {{ prioritized = true, seed = 0 }}
"""


async def _fill(node: Node, target: Any, capacity: int) -> float:
    """Cast ``add_batch`` until ``capacity`` rows are in; transitions/s (ends on a call)."""
    rng = np.random.default_rng(0)
    batches = [_columns(rng, ADD_ROWS) for _ in range(4)]
    t0 = time.perf_counter()
    for i in range(capacity // ADD_ROWS):
        node.cast(target, ["add_batch", batches[i % len(batches)], None])
        if i % 8 == 7:  # bound what is queued: wait for the server every 8 batches
            await node.call(target, ["len"], timeout=60)
    held = await node.call(target, ["len"], timeout=60)
    elapsed = time.perf_counter() - t0
    assert held == capacity // ADD_ROWS * ADD_ROWS, held
    return held / elapsed


async def _sample_rate(node: Node, target: Any, calls: int, *, update: bool, in_flight: int = 1) -> float:
    """Sampled transitions/s for ``calls`` batches of 512 (``in_flight`` learners' calls at once)."""
    prios = np.random.default_rng(1).random(BATCH) * 3

    async def learner(k: int) -> None:
        for _ in range(k):
            batch = await node.call(target, ["sample", BATCH])
            if update:
                node.cast(target, ["update_priorities", batch["indices"], prios])

    await learner(10)  # warm up
    per = calls // in_flight
    t0 = time.perf_counter()
    await asyncio.gather(*(learner(per) for _ in range(in_flight)))
    if update:
        await node.call(target, ["len"])  # the casts have been handled
    return per * in_flight * BATCH / (time.perf_counter() - t0)


async def _measure(node: Node, targets: dict[str, Any], capacity: int, calls: int, remote: bool) -> dict[str, float]:
    out: dict[str, float] = {}
    out["add_uniform"] = await _fill(node, targets["uniform"], capacity)
    out["add_prio"] = await _fill(node, targets["prioritized"], capacity)
    out["uniform"] = await _sample_rate(node, targets["uniform"], calls, update=False)
    out["prio"] = await _sample_rate(node, targets["prioritized"], calls, update=True)
    if remote:
        out["uniform_pipelined"] = await _sample_rate(
            node, targets["uniform"], calls, update=False, in_flight=IN_FLIGHT
        )
    return out


async def _local(capacity: int, calls: int) -> dict[str, float]:
    async with Node("bench-replay") as node:
        await node.start(ReplayServer, capacity, seed=0, name="uniform")
        await node.start(ReplayServer, capacity, prioritized=True, seed=0, name="prioritized")
        return await _measure(node, {"uniform": "uniform", "prioritized": "prioritized"}, capacity, calls, False)


async def _remote(address: str, capacity: int, calls: int) -> dict[str, float]:
    async with Node("bench-replay-client") as node:
        peer = await node.connect(address, timeout=30)
        targets = {"uniform": ("uniform", peer), "prioritized": ("prioritized", peer)}
        return await _measure(node, targets, capacity, calls, True)


def _direct(capacity: int, calls: int) -> dict[str, float]:
    """The floor: ``get_batch(512)`` (and ``update_priorities``) on a local object."""
    rng = np.random.default_rng(0)
    out: dict[str, float] = {}
    prios = rng.random(BATCH) * 3
    for key, prioritized in (("uniform", False), ("prio", True)):
        memory = ReplayMemory(capacity, prioritized=prioritized, seed=0)
        for _ in range(capacity // ADD_ROWS):
            memory.add_batch(_columns(rng, ADD_ROWS))
        t0 = time.perf_counter()
        for _ in range(calls):
            batch = memory.get_batch(BATCH)
            if prioritized:
                memory.update_priorities(batch["indices"], prios)
        out[key] = calls * BATCH / (time.perf_counter() - t0)
    return out


def _row(name: str, value: float, unit: str, target: str | None = None, note: str = "") -> Row:
    return {"name": name, "value": round(value, 3), "unit": unit, "target": target, "note": note}


def run(quick: bool = False) -> list[Row]:
    """The ReplayServer rows: capacity 1,000,000 (100,000 when ``quick``)."""
    capacity = 100_000 if quick else 1_000_000
    calls = 400 if quick else 2_000
    direct = _direct(capacity, calls)
    local = run_on_uvloop(_local(capacity, calls))
    with NodeProcess("bench-replay-server", tree_text=SERVER_TREE.format(capacity=capacity)) as server:
        remote = run_on_uvloop(_remote(server.address, capacity, calls))
    shape = f"capacity {capacity:,}, CartPole float32[4]"
    tps = "transitions/s"
    return [
        _row("ReplayServer sample(512), remote call", remote["uniform"], tps, None, f"uniform, {shape}"),
        _row(
            f"ReplayServer sample(512), remote, {IN_FLIGHT} in flight",
            remote["uniform_pipelined"],
            tps,
            None,
            f"uniform, {IN_FLIGHT} concurrent learner calls",
        ),
        _row(
            "ReplayServer prio sample(512)+update cast, remote",
            remote["prio"],
            tps,
            None,
            f"prioritized, {shape}",
        ),
        _row("ReplayServer sample(512), local call", local["uniform"], tps, None, "uniform, same node"),
        _row("ReplayServer prio sample(512)+update cast, local", local["prio"], tps, None, "prioritized"),
        _row("floor: ReplayMemory.get_batch(512), direct", direct["uniform"], tps, None, "no process, no codec"),
        _row("floor: prio get_batch(512)+update_priorities", direct["prio"], tps, None, "no process, no codec"),
        _row(
            "ReplayServer sample(512), remote vs local",
            remote["uniform"] / local["uniform"],
            "x",
            None,
            "uniform; 1.0 would mean the network costs nothing",
        ),
        _row(
            "ReplayServer sample(512), remote vs direct",
            remote["uniform"] / direct["uniform"],
            "x",
            None,
            "uniform; the share of the floor a remote learner gets",
        ),
        _row(
            "ReplayServer prio sample+update, remote vs direct",
            remote["prio"] / direct["prio"],
            "x",
            None,
            "prioritized",
        ),
        _row(
            "ReplayServer add_batch cast (10,000 rows), remote",
            remote["add_uniform"],
            tps,
            None,
            f"uniform; prioritized {remote['add_prio']:,.0f}/s; local {local['add_uniform']:,.0f}/s",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="capacity 100,000 and fewer calls")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args()
    rows = run(quick=args.quick)
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    for r in rows:
        value = f"{r['value']:,.3f}" if r["unit"] == "x" else f"{r['value']:,.0f}"
        print(f"{r['name']:<52} {value:>14} {r['unit']:<14} {r['note']}")


if __name__ == "__main__":
    main()
