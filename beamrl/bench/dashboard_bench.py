"""``beamrl bench dashboard``: what watching a run costs the run.

Env steps/s of the same Q-learning run on FrozenLake-v1 (one node, fixed seed),
back to back, without a dashboard and with one serving the run from the learner's
node while a page is open: a separate OS process holds the page's WebSocket and
reads (and JSON-decodes) every update, as a browser tab does, without drawing.
Runs alternate (off, on, on, off, ...) so a machine that gets busier over time
burdens both sides alike; the row reports the median of each side and the ratio.
The issue's budget: at most 5 % slower with the page open.

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


def _steps_per_second(episodes: int, watched: bool) -> float:
    spec = RunSpec("q-learning", "FrozenLake-v1", episodes=episodes, seed=0)
    with tempfile.TemporaryDirectory(prefix="beamrl-bench-dashboard-") as out:
        summary = run_on_uvloop(
            train(spec, out, progress=False, final_episodes=100, observers=[_page_open] if watched else [])
        )
    return float(summary["steps_per_second"])


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
    """Median env steps/s without and with the page open, their ratio, and the update latency."""
    episodes, pairs = (3_000, 2) if quick else (8_000, 4)
    off: list[float] = []
    on: list[float] = []
    for i in range(pairs):
        for watched in (False, True) if i % 2 == 0 else (True, False):
            (on if watched else off).append(_steps_per_second(episodes, watched))
    base, seen = statistics.median(off), statistics.median(on)
    slower = 1.0 - seen / base
    return [
        {
            "name": "training env steps/s, no dashboard",
            "value": base,
            "unit": "steps/s",
            "note": f"median of {pairs} runs of {episodes:,} episodes",
        },
        {
            "name": "training env steps/s, dashboard with a page open",
            "value": seen,
            "unit": "steps/s",
            "note": f"{slower * 100:+.1f} % slower" if slower >= 0 else f"{-slower * 100:.1f} % faster (noise)",
            "target": "<= 5 % slower",
        },
        _latency_row(5 if quick else 20),
    ]


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
