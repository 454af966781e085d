"""Messages, signals and data between a caller and processes on its own node or on another OS process.

``host`` (tests/conftest.py) is the test's own node or a real ``beamrl node start`` peer;
the caller is always the test's node, so links, monitors and exits here cross the wire
in the remote case.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import numpy as np
import pytest

import beamrl
from beamrl import CallTimeout, Down, Exit, GenServer, NoProc, ProcessCrashed, Rejected
from beamrl.testing import Host

_names = itertools.count()


def unique(base: str) -> str:
    return f"{base}{next(_names)}"


class Trapper(GenServer):
    """Local helper: traps exits, links or monitors on request, forwards what it gets."""

    async def init(self, notify: Any) -> None:
        self.trap_exit = True
        self.notify = notify

    async def handle_call(self, request: Any, from_: Any) -> Any:
        match request:
            case ["link", target]:
                beamrl.link(target)
            case ["monitor", target]:
                return beamrl.monitor(target)
        return None

    async def handle_info(self, message: Any) -> None:
        beamrl.send(self.notify, message)


async def test_call_cast_send_and_order(host: Host) -> None:
    node = host.node
    name = unique("counter")
    pid = await host.start("beamrl.testing:Counter", 1, name=name)
    assert pid.node == (host.peer or node.name)
    assert await node.call(host.at(name), ["add", 2]) == 3
    for i in range(200):
        node.cast(pid, ["record", i])
    node.send(pid, "info after casts")
    seen = await node.call(pid, ["seen"])
    assert seen[:200] == list(range(200))
    assert seen[200] == "info after casts"
    assert await node.proxy(host.at(name)).add(1) == 4


async def test_unknown_names_and_dead_pids_raise_noproc(host: Host) -> None:
    with pytest.raises(NoProc):
        await host.node.call(host.at("nobody-here"), ["get"])
    pid = await host.start("beamrl.testing:Counter", 0)
    await host.node.stop(pid)
    with pytest.raises(NoProc):
        await host.node.call(pid, ["get"])
    host.node.cast(pid, ["add", 1])  # never raises


async def test_a_crash_reaches_the_caller_as_process_crashed(host: Host) -> None:
    pid = await host.start("beamrl.testing:Counter", 0)
    with pytest.raises(ProcessCrashed, match="far away") as info:
        await host.node.call(pid, ["crash", "far away"])
    assert info.value.exc_type == "RuntimeError"
    assert info.value.exc_message == "far away"


async def test_rejected_is_reraised_and_the_server_lives(host: Host) -> None:
    pid = await host.start("beamrl.testing:Counter", 9)
    with pytest.raises(Rejected, match="no thanks"):
        await host.node.call(pid, ["reject", "no thanks"])
    assert await host.node.call(pid, ["get"]) == 9


async def test_timeouts_and_late_replies(host: Host) -> None:
    pid = await host.start("beamrl.testing:Counter", 0)
    with pytest.raises(CallTimeout):
        await host.node.call(pid, ["defer"], timeout=0.1)
    assert await host.node.call(pid, ["release", "too late"]) == 1
    assert await host.node.call(pid, ["get"]) == 0


async def test_deferred_replies(host: Host) -> None:
    pid = await host.start("beamrl.testing:Counter", 0)
    waiting = asyncio.ensure_future(host.node.call(pid, ["defer"]))
    released = 0
    for _ in range(1000):  # until the deferred call has arrived and been released
        released = await host.node.call(pid, ["release", "later"])
        if released:
            break
    assert released == 1
    assert await waiting == "later"


async def test_monitor_sees_the_exit_reason(host: Host) -> None:
    node = host.node
    a = await host.start("beamrl.testing:Counter", 0)
    b = await host.start("beamrl.testing:Counter", 0)
    ra = node.monitor(a)
    rb = node.monitor(b)
    node.cast(a, ["crash", "monitored"])
    down = await node.receive(timeout=5)
    assert isinstance(down, Down) and down.ref == ra and down.pid == a
    assert isinstance(down.reason, RuntimeError) and str(down.reason) == "monitored"
    node.kill(b)
    down = await node.receive(timeout=5)
    assert (down.ref, down.reason) == (rb, "killed")
    dead = node.monitor(b)
    assert await node.receive(timeout=5) == Down(dead, b, "noproc")


async def test_links_deliver_exits_to_trapping_processes(host: Host) -> None:
    node = host.node
    trapper = await node.start(Trapper, node.self_pid)
    target = await host.start("beamrl.testing:Counter", 0)
    await node.call(trapper, ["link", target])
    await node.stop(target, "shutdown")
    assert await node.receive(timeout=5) == Exit(target, "shutdown")


async def test_a_linked_crash_kills_a_local_non_trapping_process(host: Host) -> None:
    node = host.node

    class Follower(GenServer):
        async def handle_call(self, request: Any, from_: Any) -> Any:
            beamrl.link(request[1])

    follower = await node.start(Follower)
    leader = await host.start("beamrl.testing:Counter", 0)
    await node.call(follower, ["link", leader])
    ref = node.monitor(follower)
    node.cast(leader, ["crash", "together"])
    down = await node.receive(timeout=5)
    assert down.ref == ref and isinstance(down.reason, RuntimeError)


async def test_graceful_stop_runs_terminate(host: Host) -> None:
    node = host.node
    journal = unique("journal")
    await host.start("beamrl.testing:Journal", name=journal)
    name = unique("stoppable")
    pid = await host.start("beamrl.testing:Counter", 0, journal, name=name)
    await node.stop(pid, "shutdown")
    assert (name, "terminate:shutdown") in await node.call(host.at(journal), ["entries"])


async def test_numpy_arrays_travel_whole(host: Host) -> None:
    pid = await host.start("beamrl.testing:Counter", 0)
    array = np.arange(1_000_000, dtype=np.float32).reshape(1000, 1000)
    host.node.send(pid, {"obs": array, "step": np.int64(3)})
    [got] = await host.node.call(pid, ["seen"])
    assert got["step"] == 3 and isinstance(got["step"], np.integer)
    np.testing.assert_array_equal(got["obs"], array)
    assert got["obs"].dtype == np.float32
