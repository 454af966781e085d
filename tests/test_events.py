"""The node's event log and per-process message counters (what the dashboard reads through ``$node``)."""

from __future__ import annotations

from typing import Any

import pytest

from beamrl import GenServer, Node, child
from beamrl.events import EventLog
from beamrl.node_server import NAME, NodeServer
from beamrl.testing import Counter, eventually


def test_the_log_keeps_the_newest_events_in_order() -> None:
    log = EventLog("n", capacity=3)
    for i in range(5):
        log.record("fault", f"event {i}", episode=i)
    assert [e["text"] for e in log.since(0)] == ["event 2", "event 3", "event 4"]
    assert [e["seq"] for e in log.since(3)] == [4, 5]
    assert log.since(5) == []
    assert log.last_seq == 5 and len(log) == 3
    assert log.since(0)[0]["node"] == "n" and log.since(0)[0]["episode"] == 2


def test_a_log_needs_room() -> None:
    with pytest.raises(ValueError, match="capacity"):
        EventLog("n", capacity=0)


async def test_crashes_restarts_and_kills_are_logged(node: Node) -> None:
    await node.start_supervisor([child(Counter, 0, name="c")], name="sup")
    before = node.events.last_seq
    with pytest.raises(Exception, match="boom"):
        await node.call("c", ["crash", "boom"])
    await eventually(lambda: any(e["kind"] == "restart" for e in node.events.since(before)), what="restart event")
    crash, restart = node.events.since(before)[:2]
    assert crash["kind"] == "crash" and crash["name"] == "c"
    assert crash["exc_type"] == "RuntimeError" and crash["exc_message"] == "boom"
    assert restart["name"] == "c" and restart["restarts"] == 1 and restart["pid"] == node.whereis("c")
    mark = node.events.last_seq
    node.kill("c")
    await eventually(lambda: len(node.events.since(mark)) >= 2, what="kill and restart events")
    killed = node.events.since(mark)[0]
    assert killed["kind"] == "exit" and "killed" in killed["text"]


async def test_normal_exits_are_not_events(node: Node) -> None:
    pid = await node.start(Counter, 0)
    mark = node.events.last_seq
    await node.stop(pid)
    assert node.events.since(mark) == []


class Echo(GenServer):
    async def handle_call(self, request: Any, from_: Any) -> Any:
        return request

    async def handle_cast(self, request: Any) -> None:
        pass


async def test_handled_messages_are_counted(node: Node) -> None:
    pid = await node.start(Echo)
    for i in range(5):
        await node.call(pid, i)
    node.cast(pid, "x")
    await node.call(pid, "sync")
    info = node.process_info(pid)
    assert info is not None and info["handled"] == 7


async def test_node_server_snapshot_shows_every_process_and_new_events(node: Node) -> None:
    await node.start(NodeServer, name=NAME)
    await node.start_supervisor([child(Counter, 0, name="c1"), child(Counter, 0, name="c2")], name="sup")
    loose = await node.start(Echo, name="loose")
    snap = await node.call(NAME, ["snapshot", 0])
    assert snap["node"] == node.name
    tree, alone = snap["tree"]
    assert tree["name"] == "sup" and [c["name"] for c in tree["children"]] == ["c1", "c2"]
    assert alone["pid"] == loose and alone["children"] == []
    assert [e["pid"] for e in snap["loose"]] == [node.whereis(NAME)]  # $node is outside every tree
    assert all("handled" in c for c in tree["children"])
    seq = snap["seq"]
    with pytest.raises(Exception, match="bad"):
        await node.call("c1", ["crash", "bad"])
    await eventually(lambda: node.events.last_seq >= seq + 2, what="crash and restart")
    later = await node.call(NAME, ["events", seq])
    assert [e["kind"] for e in later["events"]][:2] == ["crash", "restart"]
    assert later["seq"] == node.events.last_seq


async def test_peers_going_up_and_down_are_logged() -> None:
    async with Node("ev-a", listen="tcp://127.0.0.1:0", heartbeat_timeout=1.0) as a:
        async with Node("ev-b", listen="tcp://127.0.0.1:0") as b:
            await b.connect(a.address)
            await eventually(lambda: any(e["kind"] == "node_up" for e in a.events.since(0)), what="node_up")
        await eventually(lambda: any(e["kind"] == "node_down" for e in a.events.since(0)), what="node_down")
        down = next(e for e in a.events.since(0) if e["kind"] == "node_down")
        assert down["peer"] == "ev-b"
