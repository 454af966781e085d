"""``beamrl bench dashboard``: what watching a run costs the run.

Env steps/s of the same Q-learning run on FrozenLake-v1 (one node, fixed seed),
back to back, without a dashboard and with one serving the run from the learner's
node while a page is open: a separate OS process holds the page's WebSocket and
reads (and JSON-decodes) every update, as a browser tab does, without drawing.
Runs go in pairs, back to back (off then on, on then off, alternating), so a
machine whose load changes burdens both halves of a pair alike; the cost is the
median over pairs of each pair's slowdown. The issue's budget: at most 5 % slower
with the page open. Beside it, the learner process's CPU time per env step, on
against off, which a busy machine disturbs less than wall-clock rates (the page's
own process is not counted: a browser tab's CPU is the viewer's).

A second row: how long a crash takes to reach an open page (from the crash to the
WebSocket message that carries its event), over repeated crashes; budget 1 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from beamrl.child_spec import child
from beamrl.dashboard.server import Dashboard
from beamrl.errors import ProcessCrashed
from beamrl.gen_server import GenServer
from beamrl.node import Node
from beamrl.node import run as run_on_uvloop
from beamrl.rl.training import RunSpec, train

_PAGE = """
import asyncio, json, sys
import aiohttp

async def main(url):
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        n = 0
        async for msg in ws:
            json.loads(msg.data)
            n += 1
            if n == 1:
                print("open", flush=True)

asyncio.run(main(sys.argv[1]))
"""


@contextlib.asynccontextmanager
async def _page_open(node: Node) -> AsyncIterator[Dashboard]:
    async with Dashboard(node, port=0) as dash:
        page = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _PAGE, f"ws://127.0.0.1:{dash.port}/ws", stdout=asyncio.subprocess.PIPE
        )
        try:
            assert page.stdout is not None
            line = await asyncio.wait_for(page.stdout.readline(), 30)
            if line.strip() != b"open":
                raise RuntimeError("the benchmark's page process could not open the dashboard's WebSocket")
            yield dash
        finally:
            if page.returncode is None:
                page.terminate()
            await page.wait()


def _measure(episodes: int, watched: bool) -> tuple[float, float]:
    """(env steps/s, CPU seconds of this process per env step) of one run."""
    spec = RunSpec("q-learning", "FrozenLake-v1", episodes=episodes, seed=0)
    with tempfile.TemporaryDirectory(prefix="beamrl-bench-dashboard-") as out:
        cpu = time.process_time()
        summary = run_on_uvloop(
            train(spec, out, progress=False, final_episodes=100, observers=[_page_open] if watched else [])
        )
        cpu = time.process_time() - cpu
    return float(summary["steps_per_second"]), cpu / max(1, int(summary["steps"]))


class _Fragile(GenServer):
    async def handle_call(self, request: Any, from_: Any) -> Any:
        raise RuntimeError(f"crash {request}")


async def event_latencies(crashes: int) -> list[float]:
    """Seconds from a crash (at a random moment) to the page's WebSocket message carrying it."""
    latencies = []
    pause = random.Random(0)
    async with Node("bench-dashboard") as node:
        await node.start_supervisor(
            [child(_Fragile, name="fragile")], max_restarts=crashes + 1, max_seconds=60.0, name="sup"
        )
        async with (
            Dashboard(node, port=0) as dash,
            aiohttp.ClientSession() as http,
            http.ws_connect(f"ws://127.0.0.1:{dash.port}/ws") as ws,
        ):
            await ws.receive()  # the hello
            for i in range(crashes):
                await asyncio.sleep(pause.uniform(0.0, dash.period))
                crashed = time.monotonic()
                with contextlib.suppress(ProcessCrashed):
                    await node.call("fragile", i)
                while True:
                    update = json.loads((await ws.receive()).data)
                    if any(e.get("exc_message") == f"crash {i}" for e in update["events"]):
                        break
                latencies.append(time.monotonic() - crashed)
    return latencies


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Env steps/s without and with the page open (paired), CPU per step, and the update latency."""
    episodes, pairs = (2_000, 3) if quick else (5_000, 6)
    off: list[tuple[float, float]] = []
    on: list[tuple[float, float]] = []
    for i in range(pairs):
        for watched in (False, True) if i % 2 == 0 else (True, False):
            (on if watched else off).append(_measure(episodes, watched))
    slower = statistics.median(1.0 - o[0] / f[0] for f, o in zip(off, on, strict=True))
    cpu_more = statistics.median(o[1] / f[1] - 1.0 for f, o in zip(off, on, strict=True))
    return [
        {
            "name": "training env steps/s, no dashboard",
            "value": statistics.median(f[0] for f in off),
            "unit": "steps/s",
            "note": f"median of {pairs} runs of {episodes:,} episodes",
        },
        {
            "name": "training env steps/s, dashboard with a page open",
            "value": statistics.median(o[0] for o in on),
            "unit": "steps/s",
            "note": f"{_signed(slower)} slower, median over {pairs} back-to-back pairs",
            "target": "<= 5 % slower",
        },
        {
            "name": "  learner CPU per env step, page open vs none",
            "value": statistics.median(o[1] for o in on) * 1e6,
            "unit": "µs/step",
            "note": f"{_signed(cpu_more)} more CPU, median over the same pairs",
        },
        _latency_row(5 if quick else 20),
    ]


def _signed(fraction: float) -> str:
    return f"{fraction * 100:+.1f} %"


def _latency_row(crashes: int) -> dict[str, Any]:
    quiet = logging.getLogger("beamrl")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # the crashes are the point: no crash reports
    try:
        latencies = sorted(run_on_uvloop(event_latencies(crashes)))
    finally:
        quiet.setLevel(level)
    return {
        "name": "a crash's event reaching an open page",
        "value": statistics.median(latencies) * 1000,
        "unit": "ms (median)",
        "note": f"max {latencies[-1] * 1000:.0f} ms over {crashes} crashes; the page is updated every 0.5 s",
        "target": "<= 1 s",
    }
