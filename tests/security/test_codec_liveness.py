"""Liveness during long decodes (issue 10 item 2): a big message cannot stall a node.

Before, a 17 MB message held the receiving node's event loop past the 3 s heartbeat and
its peers declared it down. Bodies beyond what is cheap are now decoded by a worker
thread, in order per peer. Here a wire type whose decoding blocks until the test says
so stands in for a decode that takes long: the node must keep serving meanwhile.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest

from beamrl import Node, codec
from beamrl.errors import CodecError
from beamrl.inbound import INLINE_BYTES, Inbound
from beamrl.testing import Counter, eventually


class Stall:
    """Decoding one blocks its decoder until ``RELEASE`` is set (at most 10 s)."""

    started = threading.Event()
    release = threading.Event()
    outcome: dict[str, Any] = {}


def _stall_from_data(data: Any) -> Stall:
    Stall.started.set()
    Stall.outcome["released"] = Stall.release.wait(10)
    Stall.outcome["thread"] = threading.current_thread()
    return Stall()


codec.register(119, Stall, lambda s: 0, _stall_from_data)


async def test_a_long_decode_runs_off_the_loop_and_keeps_each_peers_order() -> None:
    Stall.started.clear()
    Stall.release.clear()
    Stall.outcome.clear()
    try:
        async with Node("slowrx", listen="tcp://127.0.0.1:0") as a, Node("sender") as b:
            await a.start(Counter, name="sink")
            await b.connect(a.address)
            sink = ("sink", "slowrx")
            b.cast(sink, ["record", "before"])
            b.cast(sink, ["record", [Stall(), bytes(INLINE_BYTES + 1)]])
            b.cast(sink, ["record", "after"])
            await eventually(Stall.started.is_set, timeout=15, what="the big message's decode to start")
            # the decode is blocked now; the node still serves, and holds back what followed it
            assert await a.call("sink", ["seen"], timeout=5) == ["before"]
            assert "slowrx" in b.nodes() and "sender" in a.nodes()
            Stall.release.set()
            seen = await eventually(lambda: a.call("sink", ["seen"]), what="all three casts")
            while len(seen) < 3:
                seen = await a.call("sink", ["seen"])
            assert seen[0] == "before" and seen[2] == "after"
            assert isinstance(seen[1][0], Stall) and seen[1][1] == bytes(INLINE_BYTES + 1)
            assert Stall.outcome == {"released": True, "thread": Stall.outcome["thread"]}
            assert Stall.outcome["thread"] is not threading.main_thread()
    finally:
        Stall.release.set()


def frames_of(value: Any) -> list[Any]:
    return [bytes(f) for f in codec.encode(value)]


@pytest.fixture
def log() -> list[Any]:
    return []


def inbound_into(log: list[Any], **options: Any) -> Inbound:
    return Inbound(
        codec.decode,
        lambda peer, value: log.append((peer, value)),
        lambda peer, frames, exc: log.append((peer, "undecodable", str(exc))),
        lambda peer, reason: log.append((peer, "down", reason)),
        **options,
    )


async def test_each_peer_keeps_its_order_and_its_down_comes_last(log: list[Any]) -> None:
    inbound = inbound_into(log, inline_bytes=64)
    try:
        inbound.message("a", frames_of(["small", 1]))  # decoded at once
        inbound.message("a", frames_of(["big", bytes(200)]))  # to the worker
        inbound.message("a", frames_of(["small", 2]))  # behind the big one
        inbound.message("b", frames_of(["other", 1]))  # another peer is not held back
        inbound.message("a", [b"\xc1"])  # garbage: reported in its turn
        inbound.peer_down("a", "noconnection")
        assert log == [("a", ["small", 1]), ("b", ["other", 1])]
        assert inbound.pending("a") == 4
        await eventually(lambda: len(log) == 6, what="the queued messages")
        assert log[2:5] == [("a", ["big", bytes(200)]), ("a", ["small", 2]), log[4]]
        assert log[4][:2] == ("a", "undecodable") and log[5] == ("a", "down", "noconnection")
        assert inbound.pending("a") == 0 and inbound.queued_bytes == 0
        inbound.peer_down("b", "closed")  # nothing queued: at once
        assert log[6] == ("b", "down", "closed")
    finally:
        inbound.close()


async def test_what_waits_for_the_worker_is_bounded(log: list[Any]) -> None:
    inbound = inbound_into(log, inline_bytes=0, max_queued_bytes=100)
    try:
        Stall.release.clear()
        Stall.started.clear()
        inbound.message("a", frames_of([Stall(), bytes(50)]))  # holds the worker
        inbound.message("a", frames_of(bytes(60)))  # over the bound: dropped, said why
        assert log == [("a", "undecodable", log[0][2])]
        assert "waiting to be decoded" in log[0][2]
        Stall.release.set()
        await eventually(lambda: len(log) == 2, what="the held message")
        assert isinstance(log[1][1][0], Stall)
    finally:
        Stall.release.set()
        inbound.close()


async def test_a_refused_message_from_the_worker_is_reported(log: list[Any]) -> None:
    inbound = inbound_into(log, inline_bytes=0)
    try:
        inbound.message("a", frames_of([[]] * 40_000))
        await eventually(lambda: log, what="the refusal")
        assert log[0][:2] == ("a", "undecodable") and "objects" in log[0][2]
        with pytest.raises(CodecError):
            codec.decode(frames_of([[]] * 40_000))
    finally:
        inbound.close()


async def test_a_peers_decode_bomb_is_dropped_with_a_warning_and_the_node_keeps_serving(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with Node("bombed", listen="tcp://127.0.0.1:0") as a, Node("bomber") as b:
        await a.start(Counter, name="sink")
        await b.connect(a.address)
        sink = ("sink", "bombed")
        with caplog.at_level(logging.WARNING, logger="beamrl.dist"):
            b.cast(sink, ["record", [[]] * 300_000])  # 300 KB: to the worker
            b.cast(sink, ["record", [[]] * 20_000])  # 20 KB: decoded on the loop
            assert await b.call(sink, ["add", 1]) == 1  # answered after both were refused
        assert await b.call(sink, ["seen"]) == []
        refusals = [r.getMessage() for r in caplog.records if "objects" in r.getMessage()]
        assert refusals and "bomber" in refusals[0]
        assert "bombed" in b.nodes()


async def test_a_call_refused_for_its_size_fails_at_the_caller_at_once() -> None:
    async with Node("strict", listen="tcp://127.0.0.1:0") as a, Node("caller") as b:
        await a.start(Counter, name="sink")
        await b.connect(a.address)
        for copies in (300_000, 20_000):  # decoded by the worker, then on the loop
            with pytest.raises(CodecError, match=r"node 'strict' refused the call: .* objects"):
                await b.call(("sink", "strict"), ["add", [[]] * copies], timeout=60)
        assert await b.call(("sink", "strict"), ["add", 2]) == 2


def test_the_head_of_a_message_reads_without_the_rest() -> None:
    body = codec.packb(["call", 7, "caller", "target", [[]] * 100_000])
    assert codec.unpack_head(body, 3) == ["call", 7, "caller"]
    with pytest.raises(CodecError, match="fewer than 3 items"):
        codec.unpack_head(codec.packb([1, 2]), 3)
    for garbage in (b"", b"\xc1", codec.packb("call"), codec.packb(["call", "x" * 5000, 1])):
        with pytest.raises(CodecError):
            codec.unpack_head(garbage, 3)
