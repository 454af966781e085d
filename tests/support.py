"""Process classes and helpers the runtime tests share (importable as ``tests.support:Class``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import beamrl
from beamrl import GenServer, NoReply, Rejected, Stop


async def eventually(predicate: Callable[[], Any], timeout: float = 3.0, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy, or fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        await asyncio.sleep(0.002)


class Counter(GenServer):
    """A counter that can also crash, reject, stop, defer and record what happened to it."""

    async def init(self, start: int = 0, journal: str | None = None) -> None:
        if start == "boom":
            raise ValueError("bad start value")
        self.n = start
        self.journal = journal
        self.seen: list[Any] = []
        self.deferred: list[Any] = []
        self._log("init")

    def _log(self, event: str) -> None:
        if self.journal is not None:
            beamrl.cast(self.journal, ["log", self.name, event])

    async def handle_call(self, request: Any, from_: Any) -> Any:
        match request:
            case ["add", k]:
                self.n += k
                return self.n
            case ["get"]:
                return self.n
            case ["seen"]:
                return list(self.seen)
            case ["crash", message]:
                raise RuntimeError(message)
            case ["reject", message]:
                raise Rejected(message)
            case ["stop", reason, value]:
                return Stop(reason, reply=value)
            case ["defer"]:
                self.deferred.append(from_)
                return NoReply
            case ["release", value]:
                for waiting in self.deferred:
                    beamrl.reply(waiting, value)
                released = len(self.deferred)
                self.deferred.clear()
                return released
            case ["call_self"]:
                return await beamrl.call(self.pid, ["get"])
            case ["call", target, inner]:
                return await beamrl.call(target, inner)
            case ["sleep", seconds]:
                await asyncio.sleep(seconds)
                return "slept"
            case ["pid"]:
                return self.pid
        raise Rejected(f"unknown request {request!r}")

    async def handle_cast(self, request: Any) -> Any:
        match request:
            case ["add", k]:
                self.n += k
            case ["crash", message]:
                raise RuntimeError(message)
            case ["stop", reason]:
                return Stop(reason)
            case ["record", value]:
                self.seen.append(value)
        return None

    async def handle_info(self, message: Any) -> Any:
        self.seen.append(message)
        return None

    async def terminate(self, reason: Any) -> None:
        self._log(f"terminate:{reason if isinstance(reason, str) else type(reason).__name__}")


class Journal(GenServer):
    """Collects ``["log", who, event]`` casts in arrival order."""

    async def init(self) -> None:
        self.entries: list[tuple[Any, str]] = []

    async def handle_cast(self, request: Any) -> Any:
        match request:
            case ["log", who, event]:
                self.entries.append((who, event))
        return None

    async def handle_call(self, request: Any, from_: Any) -> Any:
        match request:
            case ["entries"]:
                return list(self.entries)
            case ["clear"]:
                self.entries.clear()
                return None
        raise Rejected(f"unknown request {request!r}")


class SlowToDie(GenServer):
    """Its terminate takes ``delay`` seconds: shows shutdown timeouts."""

    async def init(self, delay: float, journal: str | None = None) -> None:
        self.delay = delay
        self.journal = journal

    async def terminate(self, reason: Any) -> None:
        if self.journal is not None:
            beamrl.cast(self.journal, ["log", self.name, "terminating"])
        await asyncio.sleep(self.delay)
        if self.journal is not None:
            beamrl.cast(self.journal, ["log", self.name, "terminated"])


class FailsToStart(GenServer):
    """Its init always raises."""

    async def init(self) -> None:
        raise RuntimeError("no luck today")
