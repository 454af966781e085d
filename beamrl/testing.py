"""Helpers for testing code built on beamrl (and for beamrl's own tests).

- ``NodeProcess``: run ``beamrl node start`` as a child OS process (``beamrl.launch``).
- ``eventually(predicate)``: poll until something holds, with a deadline, no sleeps to wait.
- ``Host``: where the processes under test run, this node or a peer node in another OS
  process, so one behaviour test proves the behaviour in-process and across the wire::

      @pytest.fixture(params=["local", "remote"])
      async def host(request, node) -> Host: ...        # see tests/conftest.py

      async def test_counter(host: Host) -> None:
          pid = await host.start(Counter, 5, name="counter")   # classes by "module:Class"
          assert await host.node.call(host.at("counter"), ["add", 2]) == 7

  A remote host is a peer running ``Spawner`` (``SPAWNER_TREE``); the classes it starts
  must be importable there (module level, on its ``PYTHONPATH``).
- The fakes beamrl's tests share: ``Counter``, ``Journal``, ``SlowToDie``, ``FailsToStart``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import beamrl
from beamrl.child_spec import ChildSpec
from beamrl.errors import Rejected
from beamrl.gen_server import GenServer, NoReply, Stop
from beamrl.launch import NodeProcess
from beamrl.node import Node
from beamrl.pid import Pid
from beamrl.process import Process
from beamrl.reprs import short_repr
from beamrl.supervisor import Supervisor
from beamrl.tree import resolve_class
from beamrl.trust import for_a_peer

__all__ = [
    "SPAWNER_TREE",
    "Counter",
    "FailsToStart",
    "Host",
    "Journal",
    "NodeProcess",
    "SlowToDie",
    "Spawner",
    "eventually",
]


async def eventually(predicate: Callable[[], Any], timeout: float = 3.0, what: str = "condition") -> Any:
    """Poll ``predicate`` (a function, maybe async) until it returns something truthy.

    Returns that value; raises ``AssertionError`` naming ``what`` after ``timeout`` s.
    """
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


# ------------------------------------------------------------------ hosts
#: the tree a remote host's peer runs: a registered ``Spawner``
SPAWNER_TREE = """
name = "testing"
[[children]]
start = "beamrl.testing:Spawner"
name = "spawner"
"""


class Spawner(GenServer):
    """Starts processes for a remote ``Host`` and forgets them when told.

    Requests: ``["start", "module:Class", args, kwargs, name]`` -> ``["ok", pid]`` or
    ``["error", exception]`` (so a failing ``init`` reaches the caller as itself);
    ``["whereis", name]``; ``["process_info", pid]``; ``["reset"]`` kills all it started.
    """

    async def init(self) -> None:
        self.started: list[Pid] = []

    async def handle_call(self, request: Any, from_: Any) -> Any:
        node = self.node
        match request:
            case ["start", str(path), list(args), dict(kwargs), name]:
                try:
                    cls = resolve_class(path, node.allowed_modules)  # a peer's tests: --allow-module tests
                    with for_a_peer(from_.pid.node != node.name):
                        pid = await node.start(cls, *args, name=name, **kwargs)
                except Exception as exc:  # the start's own error, handed to the remote caller
                    return ["error", exc]
                if pid is not None:  # None: its init answered Ignore
                    self.started.append(pid)
                return ["ok", pid]
            case ["whereis", str(name)]:
                return node.whereis(name)
            case ["process_info", pid]:
                return node.process_info(pid)
            case ["reset"]:
                for pid in reversed(self.started):
                    if node.process_info(pid) is not None:
                        await node.stop(pid, "shutdown", timeout=1.0)
                self.started.clear()
                return None
        raise Rejected(f"spawner does not understand {short_repr(request)}")


def _as_data(value: Any) -> Any:
    """Child specs (in lists too) as mappings, which travel and which supervisors accept."""
    if isinstance(value, ChildSpec):
        return _spec_data(value)
    if type(value) is list:
        return [_as_data(v) for v in value]
    return value


def _spec_data(spec: ChildSpec) -> dict[str, Any]:
    data: dict[str, Any] = {"restart": spec.restart}
    if spec.name is not None:
        data["name"] = spec.name
    data["shutdown"] = "infinity" if spec.shutdown is None else spec.shutdown
    if spec.start is Supervisor:
        (children, *_) = spec.args or ([],)
        data["children"] = [_spec_data(c) for c in children]
        data.update(spec.kwargs)
        return data
    data["start"] = spec.label()
    data["args"] = [_as_data(a) for a in spec.args]
    data["kwargs"] = dict(spec.kwargs)
    return data


class Host:
    """Where processes under test run: ``node`` itself, or the peer node named ``peer``.

    ``node`` is always the test's own node (the caller); ``at(name)`` addresses a name
    on the host. A remote host must have been connected and run ``Spawner``.
    """

    def __init__(self, node: Node, peer: str | None = None) -> None:
        self.node = node
        self.peer = peer

    @property
    def remote(self) -> bool:
        return self.peer is not None

    def at(self, name: str) -> Any:
        """``name`` on the host: itself locally, ``(name, peer)`` on a remote host."""
        return name if self.peer is None else (name, self.peer)

    async def start(self, cls: type[Process] | str, *args: Any, name: str | None = None, **kwargs: Any) -> Pid | None:
        """``node.start`` on the host; child specs among ``args`` travel as mappings."""
        if self.peer is None:
            return await self.node.start(cls, *args, name=name, **kwargs)
        path = cls if isinstance(cls, str) else f"{cls.__module__}:{cls.__qualname__}"
        request = ["start", path, _as_data(list(args)), {k: _as_data(v) for k, v in kwargs.items()}, name]
        status, value = await self.node.call(self.at("spawner"), request)
        if status == "error":
            raise value
        pid: Pid | None = value
        return pid

    async def start_supervisor(self, children: list[Any], *, name: str | None = None, **flags: Any) -> Pid:
        pid = await self.start(Supervisor, children, name=name, **flags)
        assert pid is not None  # Supervisor.init never answers Ignore
        return pid

    async def start_child(self, sup: Any, spec: ChildSpec) -> Pid | None:
        return await self.node.start_child(sup, _spec_data(spec) if self.remote else spec)

    async def whereis(self, name: str) -> Pid | None:
        if self.peer is None:
            return self.node.whereis(name)
        pid: Pid | None = await self.node.call(self.at("spawner"), ["whereis", name])
        return pid

    async def process_info(self, pid: Pid) -> dict[str, Any] | None:
        if self.peer is None:
            return self.node.process_info(pid)
        info: dict[str, Any] | None = await self.node.call(self.at("spawner"), ["process_info", pid])
        return info

    async def reset(self) -> None:
        """Stop what a remote host started (a local host goes with its node)."""
        if self.peer is not None:
            await self.node.call(self.at("spawner"), ["reset"], timeout=30.0)


# ------------------------------------------------------------------ fakes
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
        raise Rejected(f"unknown request {short_repr(request)}")

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
        raise Rejected(f"unknown request {short_repr(request)}")


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
