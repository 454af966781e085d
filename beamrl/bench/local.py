"""``beamrl bench local``: the in-process runtime against floors measured in the same run.

Rows: the bare asyncio Queue+Future echo (the floor), beamrl ``call`` round
trips between two processes on one node, ``cast`` throughput, supervisor
restart latency (crash to the new pid answering a call), and pykka's ``ask``
when pykka is installed.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
from typing import Any

from beamrl.gen_server import GenServer
from beamrl.node import Node
from beamrl.node import run as run_on_uvloop
from beamrl.supervisor import child

Row = dict[str, Any]


def _row(name: str, value: float, unit: str, target: str = "", note: str = "") -> Row:
    return {"name": name, "value": value, "unit": unit, "target": target, "note": note}


async def bare_echo_floor(n: int) -> float:
    """Round trips/s of the thinnest asyncio request/reply: a Queue of (message, Future)."""
    queue: asyncio.Queue[tuple[Any, asyncio.Future[Any]]] = asyncio.Queue()

    async def server() -> None:
        while True:
            message, fut = await queue.get()
            fut.set_result(message)

    task = asyncio.get_running_loop().create_task(server())
    loop = asyncio.get_running_loop()
    try:
        start = time.perf_counter()
        for i in range(n):
            fut = loop.create_future()
            queue.put_nowait((i, fut))
            await fut
        return n / (time.perf_counter() - start)
    finally:
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass


class _Echo(GenServer):
    async def init(self) -> None:
        self.casts = 0

    async def handle_call(self, request: Any, from_: Any) -> Any:
        if request == "count":
            return self.casts
        return request

    async def handle_cast(self, request: Any) -> None:
        self.casts += 1


class _Client(GenServer):
    """Drives the benchmark from inside a process, as real process code would."""

    async def handle_call(self, request: Any, from_: Any) -> Any:
        kind, target, n = request
        node = self.node
        start = time.perf_counter()
        if kind == "call":
            for i in range(n):
                await node.call(target, i)
        else:
            for i in range(n):
                node.cast(target, i)
            await node.call(target, "count", timeout=60)
        return n / (time.perf_counter() - start)


class _Crashy(GenServer):
    async def handle_call(self, request: Any, from_: Any) -> Any:
        return "up"

    async def handle_cast(self, request: Any) -> None:
        raise RuntimeError("benchmark crash")


async def beamrl_rates(n_calls: int, n_casts: int) -> tuple[float, float]:
    """(call round trips/s, casts/s) between two processes on one node."""
    async with Node("bench") as node:
        echo = await node.start(_Echo)
        client = await node.start(_Client)
        assert echo is not None and client is not None
        calls = await node.call(client, ("call", echo, n_calls), timeout=120)
        casts = await node.call(client, ("cast", echo, n_casts), timeout=120)
        return calls, casts


async def restart_latency(rounds: int) -> float:
    """Median seconds from a child's crash to its replacement answering a call."""
    beamrl_log = logging.getLogger("beamrl")
    level = beamrl_log.level
    beamrl_log.setLevel(logging.CRITICAL)  # a crash report per round would measure logging
    try:
        async with Node("bench-restart") as node:
            sup = await node.start_supervisor(
                [child(_Crashy, name="crashy")], max_restarts=rounds + 1, max_seconds=3600
            )
            samples = []
            for _ in range(rounds):
                old = node.whereis("crashy")
                start = time.perf_counter()
                node.cast("crashy", "crash")
                while True:
                    pid = node.whereis("crashy")
                    if pid is not None and pid != old:
                        break
                    await asyncio.sleep(0)
                await node.call(pid, "ping")
                samples.append(time.perf_counter() - start)
            await node.stop(sup)
            return statistics.median(samples)
    finally:
        beamrl_log.setLevel(level)


def pykka_ask_rate(n: int) -> float | None:
    """pykka ThreadingActor ``ask`` round trips/s, None when pykka is not installed."""
    try:
        import pykka
    except ImportError:
        return None

    class Echo(pykka.ThreadingActor):
        def on_receive(self, message: Any) -> Any:
            return message

    ref = Echo.start()
    try:
        start = time.perf_counter()
        for i in range(n):
            ref.ask(i)
        return n / (time.perf_counter() - start)
    finally:
        ref.stop()


async def _measure(quick: bool) -> list[Row]:
    n = 20_000 if quick else 100_000
    floor = max([await bare_echo_floor(n) for _ in range(3)])
    best_call, best_cast = 0.0, 0.0
    for _ in range(3):
        calls, casts = await beamrl_rates(n, n * 3)
        best_call, best_cast = max(best_call, calls), max(best_cast, casts)
    restart = await restart_latency(200 if quick else 1000)
    rows = [
        _row("asyncio Queue+Future echo (floor)", floor, "round trips/s"),
        _row(
            "beamrl call, process to process",
            best_call,
            "round trips/s",
            ">= 50,000/s and >= floor/2.5",
            f"floor/call = {floor / best_call:.2f}x",
        ),
        _row("beamrl cast, process to process", best_cast, "messages/s", ">= 300,000/s"),
        _row(
            "supervisor restart, crash to answering call",
            restart * 1e3,
            "ms (median)",
            "<= 1 ms",
        ),
    ]
    pykka_rate = pykka_ask_rate(n // 4)
    if pykka_rate is not None:
        note = f"beamrl call = {best_call / pykka_rate:.1f}x"
        rows.append(_row("pykka ThreadingActor ask", pykka_rate, "round trips/s", "", note))
    return rows


def run(quick: bool = False) -> list[Row]:
    """Measure everything on uvloop (when installed) and return the rows."""
    rows: list[Row] = run_on_uvloop(_measure(quick))
    return rows
