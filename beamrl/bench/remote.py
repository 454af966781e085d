"""``beamrl bench remote``: two nodes in two OS processes on loopback, beside raw pyzmq floors.

Rows: the raw pyzmq ROUTER/DEALER msgpack echo and PUSH/PULL floors (measured by
the same command), then beamrl sequential ``call`` round trips, pipelined calls
(many outstanding), ``cast`` throughput and a 4 MB float32 array through a call.

Last, the CPU one remote cast costs, sender and receiver together: two nodes in this
one process on loopback, ``time.process_time`` over 50,000 casts (the best of 5). Rates
swing with whatever else the machine runs; CPU time per message barely does, so this
is the row to compare across commits on a busy machine.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import numpy as np

from beamrl.bench import zmq_floor
from beamrl.gen_server import GenServer
from beamrl.launch import NodeProcess
from beamrl.node import Node
from beamrl.node import run as run_on_uvloop

Row = dict[str, Any]


class Sink(GenServer):
    """Echoes calls (arrays come back as their shape only) and counts casts."""

    async def init(self) -> None:
        self.casts = 0

    async def handle_call(self, request: Any, from_: Any) -> Any:
        if isinstance(request, np.ndarray):
            return request.nbytes
        if request == "casts":
            return self.casts
        return request

    async def handle_cast(self, request: Any) -> None:
        self.casts += 1


SERVER_TREE = """
[[children]]
start = "beamrl.bench.remote:Sink"
name = "sink"
"""


async def _measure(address: str, quick: bool) -> dict[str, float]:
    n = 2_000 if quick else 10_000
    async with Node("bench-client") as node:
        await node.connect(address)
        sink = ("sink", "bench-server")
        for i in range(200):  # warm up
            await node.call(sink, i)
        start = time.perf_counter()
        for i in range(n):
            await node.call(sink, i)
        sequential = n / (time.perf_counter() - start)

        async def worker(count: int) -> None:
            for i in range(count):
                await node.call(sink, i)

        workers, per = 64, (n * 4) // 64
        start = time.perf_counter()
        await asyncio.gather(*(worker(per) for _ in range(workers)))
        pipelined = workers * per / (time.perf_counter() - start)

        casts = n * 10
        before = await node.call(sink, "casts")
        start = time.perf_counter()
        for i in range(casts):
            node.cast(sink, i)
            if i % 5_000 == 4_999:
                await asyncio.sleep(0)  # let the transport flush, as a process's loop would
        # casts and this call share one link, so the call is answered after every cast landed
        assert await node.call(sink, "casts", timeout=60) - before == casts
        cast_rate = casts / (time.perf_counter() - start)

        array = np.random.default_rng(0).random(1 << 20, dtype=np.float32)  # 4 MiB
        await node.call(sink, array)
        rounds = 20 if quick else 100
        start = time.perf_counter()
        for _ in range(rounds):
            await node.call(sink, array, timeout=30)
        array_rate = rounds * array.nbytes / (time.perf_counter() - start)
    return {"sequential": sequential, "pipelined": pipelined, "cast": cast_rate, "array": array_rate}


async def cast_cpu(casts: int = 50_000, repeats: int = 5) -> float:
    """CPU seconds per remote cast, sender and receiver nodes both in this process (best of ``repeats``)."""
    async with Node("bench-cpu-server", listen="tcp://127.0.0.1:0") as server, Node("bench-cpu-client") as client:
        await server.start(Sink, name="sink")
        assert server.address is not None
        await client.connect(server.address)
        sink = ("sink", "bench-cpu-server")
        for i in range(200):  # warm up
            await client.call(sink, i)
        best = float("inf")
        for _ in range(repeats):
            before = await client.call(sink, "casts")
            start = time.process_time()
            for i in range(casts):
                client.cast(sink, i)
                if i % 5_000 == 4_999:
                    await asyncio.sleep(0)
            assert await client.call(sink, "casts", timeout=60) - before == casts
            best = min(best, (time.process_time() - start) / casts)
    return best


def run(quick: bool = False) -> list[Row]:
    """Start the server node in a child process, measure, and return the rows."""
    raw_echo = zmq_floor.measure_raw_echo(2_000 if quick else 5_000)
    raw_push = zmq_floor.measure_raw_push_pull(100_000 if quick else 300_000)
    with NodeProcess("bench-server", tree_text=SERVER_TREE) as server:
        got: dict[str, float] = run_on_uvloop(_measure(server.address, quick))
    cpu = run_on_uvloop(cast_cpu(20_000 if quick else 50_000))
    return [
        {"name": "raw pyzmq ROUTER/DEALER msgpack echo (floor)", "value": raw_echo, "unit": "round trips/s"},
        {"name": "raw pyzmq PUSH/PULL (floor)", "value": raw_push, "unit": "messages/s"},
        {
            "name": "beamrl remote call, sequential",
            "value": got["sequential"],
            "unit": "round trips/s",
            "target": ">= 0.8x echo floor",
            "note": f"{got['sequential'] / raw_echo:.2f}x echo floor",
        },
        {
            "name": "beamrl remote call, 64 outstanding",
            "value": got["pipelined"],
            "unit": "calls/s",
            "target": ">= 50,000/s",
        },
        {
            "name": "beamrl remote cast",
            "value": got["cast"],
            "unit": "messages/s",
            "target": ">= 200,000/s",
            "note": f"{got['cast'] / raw_push:.2f}x PUSH/PULL floor",
        },
        {
            "name": "beamrl remote call carrying 4 MB float32",
            "value": got["array"] / 1e9,
            "unit": "GB/s",
            "target": ">= 1 GB/s",
        },
        {
            "name": "CPU per remote cast, both nodes in one process",
            "value": cpu * 1e6,
            "unit": "us",
            "note": "sender + receiver; steady under load, compare across commits",
        },
    ]


if __name__ == "__main__":
    from beamrl.bench.report import format_rows  # the script form only

    print(format_rows(run(quick="--quick" in sys.argv)))
