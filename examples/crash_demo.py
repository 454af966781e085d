"""A supervision tree that crashes and heals, printed as it happens.

    python examples/crash_demo.py            # or: beamrl node start --tree supervisors/crash_demo.toml

A ``Sensor`` counts ticks; a ``Flaky`` worker reads it and crashes every few
ticks; a ``Reporter`` monitors the worker and prints each crash and the new pid
the supervisor started. The sensor keeps its count through the crashes: only
the crashed process restarts (one_for_one). The node logs the first crash report
in full (with its traceback), then one line per crash: they crash on purpose.

Smoke expect: sensor kept counting through the crashes
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import beamrl
from beamrl import Down, GenServer, Node, child
from beamrl.process import format_reason

T0 = time.monotonic()


def say(text: str) -> None:
    print(f"[{time.monotonic() - T0:5.2f}s] {text}", flush=True)


class OneLinePerRepeatedCrash(logging.Filter):
    """The first crash report of an injected fault in full, then one line per crash."""

    def __init__(self) -> None:
        super().__init__()
        self.reported = False

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 4 and "(injected fault)" in str(args[2]):
            if self.reported:
                record.msg = "process %s%s crashed: %s (as above; the first report has the traceback)"
                record.args = args[:3]
            self.reported = True
        return True


def quiet_repeated_crashes() -> None:
    """Install ``OneLinePerRepeatedCrash`` on beamrl's log, once."""
    beamrl_log = logging.getLogger("beamrl")
    if not any(isinstance(f, OneLinePerRepeatedCrash) for f in beamrl_log.filters):
        beamrl_log.addFilter(OneLinePerRepeatedCrash())


class Sensor(GenServer):
    """Counts ticks, like a reading that survives its readers' crashes."""

    async def init(self, period: float = 0.1) -> None:
        self.ticks = 0
        self.period = period
        beamrl.send_after(period, self.pid, "tick")

    async def handle_info(self, message: Any) -> None:
        if message == "tick":
            self.ticks += 1
            beamrl.send_after(self.period, self.pid, "tick")

    async def handle_call(self, request: Any, from_: Any) -> Any:
        return self.ticks


class Flaky(GenServer):
    """Polls the sensor and crashes on every ``every``-th reading."""

    async def init(self, every: int = 4, period: float = 0.15) -> None:
        quiet_repeated_crashes()
        self.every = every
        self.period = period
        self.readings = 0
        say(f"flaky worker up as {self.pid}")
        beamrl.send_after(period, self.pid, "read")

    async def handle_info(self, message: Any) -> None:
        if message == "read":
            ticks = await beamrl.call("sensor", ["ticks"])
            self.readings += 1
            if self.readings % self.every == 0:
                raise RuntimeError(f"sensor reading {ticks} looked wrong (injected fault)")
            beamrl.send_after(self.period, self.pid, "read")

    async def handle_call(self, request: Any, from_: Any) -> Any:
        return self.readings


class Reporter(GenServer):
    """Monitors the worker and tells the story of each crash and restart."""

    async def init(self, watch: str = "flaky", supervisor: str = "demo") -> None:
        self.watch = watch
        self.supervisor = supervisor
        self.ref = beamrl.monitor(watch)

    async def handle_info(self, message: Any) -> None:
        if isinstance(message, Down):
            say(f"{self.watch} {message.pid} went down: {format_reason(message.reason)}")
            # The supervisor got the exit before us: by the time it answers, the restart is done.
            children = await beamrl.call(self.supervisor, ["which_children"])
            restarted = next(c for c in children if c.id == self.watch)
            say(f"supervisor restarted {self.watch} as {restarted.pid} (restart #{restarted.restarts})")
            self.ref = beamrl.monitor(self.watch)


TREE = [
    child(Sensor, name="sensor"),
    child(Flaky, name="flaky"),
    child(Reporter, name="reporter"),
]


async def main(seconds: float = 2.5) -> None:
    logging.getLogger("beamrl").setLevel(logging.CRITICAL)  # the reporter tells the story instead
    async with Node("demo") as node:
        sup = await node.start_supervisor(TREE, strategy="one_for_one", max_restarts=10, max_seconds=5, name="demo")
        say(f"tree up: supervisor {sup}")
        await asyncio.sleep(seconds)
        for c in await node.which_children(sup):
            say(f"  {c.id:<9} pid={c.pid}  restarts={c.restarts}")
        say(f"sensor kept counting through the crashes: {await node.call('sensor', ['ticks'])} ticks")


if __name__ == "__main__":
    beamrl.run(main())
