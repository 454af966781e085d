"""Unauthenticated connections cannot exhaust a node: deadline, cap, pruning, redial policy."""

from __future__ import annotations

import asyncio
from typing import Any

import msgpack
import pytest
import zmq

from beamrl.testing import eventually
from beamrl.transport import handshake, membership
from beamrl.transport.cookie import load_cookie
from tests.security.test_wire_auth import _dealer, _dropped
from tests.transport.test_zmq_transport import started


async def test_a_connection_that_never_says_hello_is_dropped() -> None:
    a, _ = await started("a", handshake_timeout=0.5, heartbeat_interval=0.1, heartbeat_timeout=1.0)
    ctx = zmq.Context()
    sock, monitor = _dealer(ctx, a.address or "")
    try:
        # ZMTP greeting done, then silence: dropped after the deadline
        assert await _dropped(monitor)
        # a bare TCP connection that never finishes ZMTP's greeting: closed by ZeroMQ
        port = int((a.address or "").rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            async with asyncio.timeout(10.0):
                while await reader.read(4096):
                    pass  # the server's greeting, then end of file
        finally:
            writer.close()
        # (not ``pending == 0``: on a shared machine a stranger's node may be dialling this port)
        assert a._gate.dropped >= 1
    finally:
        sock.close(linger=0)
        monitor.close(linger=0)
        ctx.term()
        await a.close()


async def test_connections_waiting_for_their_hello_are_capped() -> None:
    a, ra = await started("a", max_pending=4, handshake_timeout=60.0)
    b, _ = await started("b", listen=None)
    ctx = zmq.Context()
    socks: list[zmq.Socket] = []
    try:
        for _ in range(12):
            socks += _dealer(ctx, a.address or "")
        await eventually(lambda: a._gate.dropped >= 8, timeout=10.0, what="the oldest to be dropped")
        assert a._gate.pending <= 4
        assert await b.connect(a.address or "") == "a"  # a real peer still gets in
        assert [p for p, _ in ra.up] == ["b"]
    finally:
        for s in socks:
            s.close(linger=0)
        ctx.term()
        await b.close()
        await a.close()


async def test_departed_peers_leave_no_trace_and_are_not_redialled() -> None:
    a, _ = await started("a")
    try:
        for i in range(10):
            c, _ = await started(f"c{i}")  # announces its own listen address in its hello
            assert await c.connect(a.address or "") == "a"
            await eventually(lambda c=c: c.name in a.peers())
            await c.close()
            await eventually(lambda c=c: c.name not in a.peers())
        assert a._by_address == {}
        # c dialled a: a does not dial the address c announced
        assert a._reconnecting == set()
    finally:
        await a.close()


async def test_a_welcome_listing_a_thousand_peers_is_capped() -> None:
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    b, _ = await started("b", listen=None)
    dials: list[str] = []
    dial_any = b._dial_any

    async def counting(address: str, expect: str | None, timeout: float) -> Any:
        dials.append(address)
        return await dial_any(address, expect, timeout if len(dials) == 1 else 0.2)

    b._dial_any = counting  # type: ignore[method-assign]

    async def answer() -> None:
        frames = await eventually(lambda: router.poll(0) and router.recv_multipart(), timeout=10.0)
        nonce = msgpack.unpackb(frames[3])["nonce"]
        peers = [[f"n{i}", f"tcp://127.0.0.1:{1 + i}"] for i in range(1100)]
        welcome = handshake.welcome("a", 1, None, False, peers, load_cookie(), nonce)
        raw = msgpack.unpackb(welcome)
        raw["peers"] = peers  # a hostile node sends them all, signed
        raw["auth"] = handshake.cookies.mac(load_cookie(), "welcome", nonce, *handshake._fields(raw), repr(peers))
        router.send_multipart([frames[0], b"", b"C", msgpack.packb(raw)])

    try:
        task = asyncio.ensure_future(answer())
        assert await b.connect(f"tcp://127.0.0.1:{port}", timeout=3.0) == "a"
        await task
        assert len(dials) == 1 + handshake.MAX_WELCOME_PEERS
    finally:
        router.close(linger=0)
        ctx.term()
        await b.close()


def test_a_welcome_announces_at_most_the_cap() -> None:
    peers = [[f"n{i}", f"tcp://127.0.0.1:{i}"] for i in range(500)]
    msg = msgpack.unpackb(handshake.welcome("a", 1, None, False, peers))
    assert len(msg["peers"]) == handshake.MAX_WELCOME_PEERS
    assert len(handshake.parse_peers(peers)) == handshake.MAX_WELCOME_PEERS


async def test_a_configured_address_is_redialled_a_learned_one_for_a_while(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(membership, "MESH_REDIAL", 0.5)
    a, _ = await started("a")
    b, _ = await started("b")
    c, _ = await started("c", listen=None)
    try:
        await b.connect(a.address or "")
        assert await c.connect(a.address or "") == "a"  # configured; b is learned from a's welcome
        await eventually(lambda: set(c.peers()) == {"a", "b"}, what="c to join the mesh")
        await b.close()
        await a.close()
        await eventually(lambda: c._reconnecting == {"a"}, timeout=10.0, what="c to give up on b only")
        assert c.peers() == []
    finally:
        await c.close()
        await b.close()
        await a.close()
