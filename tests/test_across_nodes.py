"""The runtime's behaviours, once with the peer process on the same node and once on another OS process.

The remote peer is a real ``beamrl node start`` process running ``tests/trees/peer.toml``;
processes are started there through its ``dyn`` DynamicSupervisor, with child specs
that travel as plain data.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator
from typing import Any

import numpy as np
import pytest

import beamrl
from beamrl import CallTimeout, Down, Exit, GenServer, Node, NoProc, ProcessCrashed, Rejected
from beamrl.testing import NodeProcess
from beamrl.tree import resolve_class
from tests import start_peer

_names = itertools.count()


@pytest.fixture(scope="module")
def peer_node() -> Iterator[NodeProcess]:
    peer = start_peer("peer", tree="tests/trees/peer.toml")
    yield peer
    assert peer.terminate() == 0, "".join(peer.output)


class Where:
    """Starts test processes locally or on the peer node and names them accordingly."""

    def __init__(self, node: Node, remote: str | None) -> None:
        self.node = node
        self.remote = remote

    def unique(self, base: str) -> str:
        return f"{base}{next(_names)}"

    async def start(self, path: str, *args: Any, name: str | None = None) -> Any:
        if self.remote is None:
            return await self.node.start(resolve_class(path), *args, name=name)
        spec = {"start": path, "args": list(args), "name": name, "restart": "temporary"}
        return await self.node.start_child(("dyn", self.remote), spec)

    def at(self, name: str) -> Any:
        return name if self.remote is None else (name, self.remote)


@pytest.fixture(params=["local", "remote"])
async def where(request: pytest.FixtureRequest) -> AsyncIterator[Where]:
    async with Node(f"tester{next(_names)}") as node:
        remote = None
        if request.param == "remote":
            peer: NodeProcess = request.getfixturevalue("peer_node")
            remote = await node.connect(peer.address)
        yield Where(node, remote)


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


async def test_call_cast_send_and_order(where: Where) -> None:
    node = where.node
    name = where.unique("counter")
    pid = await where.start("beamrl.testing:Counter", 1, name=name)
    assert pid.node == (where.remote or node.name)
    assert await node.call(where.at(name), ["add", 2]) == 3
    for i in range(200):
        node.cast(pid, ["record", i])
    node.send(pid, "info after casts")
    seen = await node.call(pid, ["seen"])
    assert seen[:200] == list(range(200))
    assert seen[200] == "info after casts"
    assert await node.proxy(where.at(name)).add(1) == 4


async def test_unknown_names_and_dead_pids_raise_noproc(where: Where) -> None:
    with pytest.raises(NoProc):
        await where.node.call(where.at("nobody-here"), ["get"])
    pid = await where.start("beamrl.testing:Counter", 0)
    await where.node.stop(pid)
    with pytest.raises(NoProc):
        await where.node.call(pid, ["get"])
    where.node.cast(pid, ["add", 1])  # never raises


async def test_a_crash_reaches_the_caller_as_process_crashed(where: Where) -> None:
    pid = await where.start("beamrl.testing:Counter", 0)
    with pytest.raises(ProcessCrashed, match="far away") as info:
        await where.node.call(pid, ["crash", "far away"])
    assert info.value.exc_type == "RuntimeError"
    assert info.value.exc_message == "far away"


async def test_rejected_is_reraised_and_the_server_lives(where: Where) -> None:
    pid = await where.start("beamrl.testing:Counter", 9)
    with pytest.raises(Rejected, match="no thanks"):
        await where.node.call(pid, ["reject", "no thanks"])
    assert await where.node.call(pid, ["get"]) == 9


async def test_timeouts_and_late_replies(where: Where) -> None:
    pid = await where.start("beamrl.testing:Counter", 0)
    with pytest.raises(CallTimeout):
        await where.node.call(pid, ["defer"], timeout=0.1)
    assert await where.node.call(pid, ["release", "too late"]) == 1
    assert await where.node.call(pid, ["get"]) == 0


async def test_deferred_replies(where: Where) -> None:
    pid = await where.start("beamrl.testing:Counter", 0)
    waiting = asyncio.ensure_future(where.node.call(pid, ["defer"]))
    released = 0
    for _ in range(1000):  # until the deferred call has arrived and been released
        released = await where.node.call(pid, ["release", "later"])
        if released:
            break
    assert released == 1
    assert await waiting == "later"


async def test_monitor_sees_the_exit_reason(where: Where) -> None:
    node = where.node
    a = await where.start("beamrl.testing:Counter", 0)
    b = await where.start("beamrl.testing:Counter", 0)
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


async def test_links_deliver_exits_to_trapping_processes(where: Where) -> None:
    node = where.node
    trapper = await node.start(Trapper, node.self_pid)
    target = await where.start("beamrl.testing:Counter", 0)
    await node.call(trapper, ["link", target])
    await node.stop(target, "shutdown")
    assert await node.receive(timeout=5) == Exit(target, "shutdown")


async def test_a_linked_crash_kills_a_local_non_trapping_process(where: Where) -> None:
    node = where.node

    class Follower(GenServer):
        async def handle_call(self, request: Any, from_: Any) -> Any:
            beamrl.link(request[1])

    follower = await node.start(Follower)
    leader = await where.start("beamrl.testing:Counter", 0)
    await node.call(follower, ["link", leader])
    ref = node.monitor(follower)
    node.cast(leader, ["crash", "together"])
    down = await node.receive(timeout=5)
    assert down.ref == ref and isinstance(down.reason, RuntimeError)


async def test_graceful_stop_runs_terminate(where: Where) -> None:
    node = where.node
    journal = where.unique("journal")
    await where.start("beamrl.testing:Journal", name=journal)
    name = where.unique("stoppable")
    pid = await where.start("beamrl.testing:Counter", 0, journal, name=name)
    await node.stop(pid, "shutdown")
    assert (name, "terminate:shutdown") in await node.call(where.at(journal), ["entries"])


async def test_numpy_arrays_travel_whole(where: Where) -> None:
    pid = await where.start("beamrl.testing:Counter", 0)
    array = np.arange(1_000_000, dtype=np.float32).reshape(1000, 1000)
    where.node.send(pid, {"obs": array, "step": np.int64(3)})
    [got] = await where.node.call(pid, ["seen"])
    assert got["step"] == 3 and isinstance(got["step"], np.integer)
    np.testing.assert_array_equal(got["obs"], array)
    assert got["obs"].dtype == np.float32
