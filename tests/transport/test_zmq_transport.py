"""ZmqTransport: data, order, membership, failure detection, back-pressure, CURVE, junk."""

from __future__ import annotations

import asyncio
import functools
import os
import time
from collections import defaultdict
from pathlib import Path

import msgpack
import pytest
import zmq

from beamrl import Pid, codec
from beamrl.errors import Backpressure, NodeDown
from beamrl.testing import NodeProcess, eventually
from beamrl.transport import PeerInfo, ZmqTransport, generate_keys, handshake
from beamrl.transport.cookie import load_cookie, new_nonce
from tests import start_peer

LOCAL = "tcp://127.0.0.1:*"


class Rec:
    """A TransportHandler that records everything."""

    def __init__(self) -> None:
        self.msgs: dict[str, list[list[bytes]]] = defaultdict(list)
        self.up: list[tuple[str, PeerInfo]] = []
        self.down: list[tuple[str, str]] = []

    def on_message(self, peer: str, frames: list) -> None:
        self.msgs[peer].append([bytes(f) for f in frames])

    def on_peer_up(self, peer: str, info: PeerInfo) -> None:
        self.up.append((peer, info))

    def on_peer_down(self, peer: str, reason: str) -> None:
        self.down.append((peer, reason))


# peers in other OS processes take a while to start on a loaded machine
until = functools.partial(eventually, timeout=10.0)


async def started(name: str, creation: int = 1, **kw) -> tuple[ZmqTransport, Rec]:
    kw.setdefault("listen", LOCAL)
    t = ZmqTransport(name, creation, **kw)
    r = Rec()
    await t.start(r)
    return t, r


async def test_data_both_ways_in_order() -> None:
    a, ra = await started("a")
    b, rb = await started("b")
    try:
        assert a.address is not None
        assert a.address.startswith("tcp://127.0.0.1:")
        assert await b.connect(a.address) == "a"
        assert await b.connect(a.address) == "a"  # idempotent
        await until(lambda: "b" in a.peers())
        assert ra.up[0][1] == PeerInfo("b", 1, b.address)
        n = 10_000
        for i in range(n):  # a sends over its ROUTER, b over its DEALER
            a.send("b", [b"x%d" % i, b"tail"])
            b.send("a", [b"y%d" % i])
            if i % 1000 == 999:
                floor = i - 500
                await until(lambda f=floor: len(rb.msgs["a"]) >= f and len(ra.msgs["b"]) >= f)
        await until(lambda: len(rb.msgs["a"]) == n and len(ra.msgs["b"]) == n)
        assert rb.msgs["a"] == [[b"x%d" % i, b"tail"] for i in range(n)]
        assert ra.msgs["b"] == [[b"y%d" % i] for i in range(n)]
        with pytest.raises(NodeDown, match="'nobody' is not connected"):
            a.send("nobody", [b"x"])
    finally:
        await b.close()
        await a.close()


async def test_client_only_node_is_reachable() -> None:
    a, ra = await started("a")
    c, rc = await started("repl", listen=None)
    try:
        assert c.address is None
        assert a.address is not None
        await c.connect(a.address)
        await until(lambda: "repl" in a.peers())
        assert ra.up[0][1].address is None
        a.send("repl", [b"hello"])
        await until(lambda: rc.msgs["a"] == [[b"hello"]])
    finally:
        await c.close()
        await a.close()


async def test_membership_full_mesh() -> None:
    a, ra = await started("a")
    b, _rb = await started("b")
    c, rc = await started("c")
    try:
        assert b.address is not None
        await a.connect(b.address)
        await c.connect(b.address)
        await until(lambda: sorted(c.peers()) == ["a", "b"], what="c sees a and b")
        await until(lambda: sorted(a.peers()) == ["b", "c"], what="a sees b and c")
        assert sorted(b.peers()) == ["a", "c"]
        assert {p for p, _ in ra.up} == {"b", "c"}
        c.send("a", [b"from c"])
        a.send("c", [b"from a"])
        await until(lambda: ra.msgs["c"] == [[b"from c"]] and rc.msgs["a"] == [[b"from a"]])
    finally:
        for t in (c, b, a):
            await t.close()


async def test_simultaneous_connect_keeps_one_path() -> None:
    a, ra = await started("a")
    b, rb = await started("b")
    try:
        assert a.address is not None
        assert b.address is not None
        n1, n2 = await asyncio.gather(a.connect(b.address + "#b"), b.connect(a.address + "#a"))
        assert (n1, n2) == ("b", "a")
        await until(lambda: a.peers() == ["b"] and b.peers() == ["a"])
        a.send("b", [])
        b.send("a", [b"", b"empty first frame"])
        await until(
            lambda: rb.msgs["a"] == [[]] and ra.msgs["b"] == [[b"", b"empty first frame"]],
            what="escaped messages",
        )
        rb.msgs["a"].clear()
        ra.msgs["b"].clear()
        for i in range(200):
            a.send("b", [b"%d" % i])
            b.send("a", [b"%d" % i])
        await until(lambda: len(rb.msgs["a"]) == 200 and len(ra.msgs["b"]) == 200)
        assert rb.msgs["a"] == [[b"%d" % i] for i in range(200)]
        assert ra.msgs["b"] == [[b"%d" % i] for i in range(200)]
        assert len(ra.up) == 1
        assert len(rb.up) == 1
    finally:
        await b.close()
        await a.close()


def _ask(t: ZmqTransport, peer: str, ref: int) -> None:
    """Ask a node's ``$node`` server which nodes it sees, as a real call message would."""
    t.send(peer, codec.encode(["call", ref, Pid(t.name, 0, t.creation), "$node", ["nodes"]]))


def _answered(rec: Rec, peer: str) -> list[int]:
    """The refs of the calls ``peer`` answered."""
    return [m[1] for m in map(codec.decode, rec.msgs[peer]) if m[0] == "reply" and m[2] is True]


def _node_process(name: str, *args: str, listen: str = "tcp://127.0.0.1:0") -> NodeProcess:
    return start_peer(name, *args, listen=listen, heartbeat_timeout=1.0)


async def test_peer_killed_then_restarted() -> None:
    a, ra = await started("a", heartbeat_interval=0.2, heartbeat_timeout=1.0)
    peer = await asyncio.to_thread(_node_process, "p")
    peer2 = None
    try:
        assert await a.connect(peer.address) == "p"
        _ask(a, "p", 1)
        await until(lambda: _answered(ra, "p") == [1], what="an answer")
        peer.kill()
        t0 = time.monotonic()
        await until(lambda: ("p", "noconnection") in ra.down, timeout=1.0 + 2.0, what="peer down")
        assert time.monotonic() - t0 < 1.0 + 1.5
        with pytest.raises(NodeDown):
            a.send("p", [b"lost"])
        peer2 = await asyncio.to_thread(_node_process, "p", listen=peer.address)  # same port
        assert peer2.address == peer.address
        await until(lambda: len(ra.up) == 2, timeout=15, what="peer up again")
        assert ra.up[1][1].creation != ra.up[0][1].creation  # a new incarnation
        _ask(a, "p", 2)
        await until(lambda: _answered(ra, "p") == [1, 2], what="an answer after the restart")
    finally:
        await a.close()
        for p in (peer, peer2):
            if p is not None:
                p.kill()


async def test_restarted_peer_that_dials_us_comes_back() -> None:
    a, ra = await started("a", heartbeat_interval=0.2, heartbeat_timeout=1.0)
    assert a.address is not None
    peer = await asyncio.to_thread(_node_process, "p", "--join", a.address)
    peer2 = None
    try:
        await until(lambda: "p" in a.peers(), what="p joined")
        peer.kill()
        peer2 = await asyncio.to_thread(_node_process, "p", "--join", a.address)
        await until(lambda: len(ra.up) == 2, timeout=15, what="p up again")
        assert ("p", "noconnection") in ra.down
        assert ra.up[1][1].creation != ra.up[0][1].creation
        _ask(a, "p", 3)
        await until(lambda: _answered(ra, "p") == [3], what="an answer from the new p")
    finally:
        await a.close()
        for p in (peer, peer2):
            if p is not None:
                p.kill()


async def test_backpressure_instead_of_hang() -> None:
    a, _ra = await started("a", hwm=10)
    b, _rb = await started("b", hwm=10)
    try:
        assert a.address is not None
        await b.connect(a.address)
        await until(lambda: "b" in a.peers())
        big = b"x" * 65536
        # b never gets the loop while this runs, so nothing reads: queues must fill

        def flood() -> None:
            for _ in range(100_000):
                a.send("b", [big])

        with pytest.raises(Backpressure, match=r"'b'.*hwm=10"):
            flood()
    finally:
        await b.close()
        await a.close()


def test_non_loopback_listen_needs_keys() -> None:
    with pytest.raises(ValueError, match="without CURVE keys"):
        ZmqTransport("a", 1, listen="tcp://0.0.0.0:0")
    ZmqTransport("a", 1, listen="tcp://0.0.0.0:0", insecure=True)  # explicit opt-out


def test_missing_key_file_message(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"a\.key_secret.*beamrl keys generate"):
        ZmqTransport("a", 1, listen=LOCAL, keys=tmp_path)


def test_generate_keys_refuses_overwrite(tmp_path: Path) -> None:
    generate_keys(tmp_path, "a")
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        generate_keys(tmp_path, "a")
    generate_keys(tmp_path, "a", overwrite=True)


async def test_curve_trusted_and_untrusted(tmp_path: Path) -> None:
    assert zmq.has("curve")
    cluster, stranger = tmp_path / "cluster", tmp_path / "stranger"
    for n in ("a", "b"):
        generate_keys(cluster, n)
    generate_keys(stranger, "x")
    (stranger / "a.key").write_bytes((cluster / "a.key").read_bytes())  # x trusts a
    a, ra = await started("a", keys=cluster)
    b, _rb = await started("b", keys=cluster)
    x, _rx = await started("x", keys=stranger)
    try:
        assert a.address is not None
        assert await b.connect(a.address) == "a"  # no suffix: tries every trusted key
        b.send("a", [b"secret"])
        await until(lambda: ra.msgs["b"] == [[b"secret"]])
        with pytest.raises(NodeDown, match="no handshake"):
            await x.connect(a.address, timeout=1.0)
        assert "x" not in a.peers()
        assert "x" not in ra.msgs
        c, _ = await started("c")  # no keys at all against a CURVE server
        try:
            with pytest.raises(NodeDown, match="pass keys=DIR"):
                await c.connect(a.address, timeout=0.5)
        finally:
            await c.close()
    finally:
        for t in (x, b, a):
            await t.close()


async def _relay(target_port: int, record: bytearray):
    async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            while data := await r.read(65536):
                record.extend(data)
                w.write(data)
                await w.drain()
        except ConnectionError:
            pass
        finally:
            w.close()

    tasks: set[asyncio.Task] = set()

    async def handle(cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        sr, sw = await asyncio.open_connection("127.0.0.1", target_port)
        t1 = asyncio.ensure_future(pipe(cr, sw))
        t2 = asyncio.ensure_future(pipe(sr, cw))
        tasks.update((t1, t2))

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], tasks


@pytest.mark.parametrize("curve", [False, True])
async def test_traffic_is_encrypted_with_curve(tmp_path: Path, curve: bool) -> None:
    keys = None
    if curve:
        for n in ("a", "b"):
            generate_keys(tmp_path, n)
        keys = tmp_path
    a, ra = await started("a", keys=keys)
    b, rb = await started("b", keys=keys, listen=None)
    record = bytearray()
    assert a.address is not None
    port = int(a.address.rsplit(":", 1)[1])
    server, relay_port, tasks = await _relay(port, record)
    marker = b"MARKER-7f3a9c-plaintext"
    try:
        await b.connect(f"tcp://127.0.0.1:{relay_port}#a" if curve else f"tcp://127.0.0.1:{relay_port}")
        b.send("a", [marker])
        a.send("b", [marker + b"-back"])
        await until(lambda: ra.msgs["b"] == [[marker]] and rb.msgs["a"] == [[marker + b"-back"]])
        assert (marker in record) is (not curve)
    finally:
        await b.close()
        await a.close()
        server.close()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


async def test_junk_is_dropped_and_service_continues() -> None:
    a, ra = await started("a")
    assert a.address is not None
    ctx = zmq.Context()
    raw = ctx.socket(zmq.DEALER)
    raw.setsockopt(zmq.LINGER, 0)
    raw.setsockopt(zmq.ROUTING_ID, b"b")  # pretends to be b, never says hello
    raw.connect(a.address)
    port = int(a.address.rsplit(":", 1)[1])
    b = None
    try:
        junk = [
            [b"data before handshake"],
            [b"", b"D", b"escaped data before handshake"],
            [b"", b"C", b"\xc1\xc1 not msgpack"],
            [b"", b"C", b"\x81\xa1t\xa4nope"],  # {"t": "nope"}
            [b"", b"C", b"\x80"],  # {}
            [b"", b"C", b"\x82\xa1t\xa5hello\xa1v\x63"],  # truncated hello, wrong version
            [b"", b"Z", b"?"],
            [b""],
            [b"", b"C", b"x" * 100_000],
            [b"", b"C", b"\x81\xa1t\xa5hello"],  # hello without fields
        ]
        for m in junk:
            raw.send_multipart(m)
        _, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(os.urandom(4096) + b"GET / HTTP/1.1\r\n\r\n")
        await w.drain()
        w.close()
        b, rb = await started("b")
        await b.connect(a.address)
        b.send("a", [b"real"])
        a.send("b", [b"real back"])
        await until(lambda: ra.msgs["b"] == [[b"real"]] and rb.msgs["a"] == [[b"real back"]])
        assert list(ra.msgs) == ["b"]
        assert [p for p, _ in ra.up] == ["b"]
    finally:
        raw.close(linger=0)
        ctx.term()
        if b is not None:
            await b.close()
        await a.close()


def _raw_dealer(ctx: zmq.Context, address: str, routing_id: bytes | None = None) -> zmq.Socket:
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    if routing_id is not None:
        sock.setsockopt(zmq.ROUTING_ID, routing_id)
    sock.connect(address)
    return sock


async def _replies(sock: zmq.Socket, n: int, timeout: float = 5.0) -> list[dict]:
    """The next ``n`` control messages the transport sends to a raw DEALER."""
    out: list[dict] = []
    deadline = time.monotonic() + timeout
    while len(out) < n:
        if time.monotonic() > deadline:
            raise AssertionError(f"expected {n} replies, got {out}")
        try:
            frames = sock.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            await asyncio.sleep(0.01)
            continue
        assert frames[:2] == [b"", b"C"], frames
        msg = msgpack.unpackb(frames[2])
        if msg["t"] != "ping":
            out.append(msg)
    return out


async def test_raw_dealer_with_a_live_peers_routing_id_cannot_hijack_it() -> None:
    a, ra = await started("a")
    b, rb = await started("b")
    ctx = zmq.Context()
    raws: list[zmq.Socket] = []
    try:
        assert a.address is not None
        await b.connect(a.address)
        await until(lambda: "b" in a.peers())
        live_rid = a._peers["b"].rid  # white box: the id the ROUTER gave b's connection
        assert live_rid is not None and live_rid != b"b"
        cookie = load_cookie()  # an impostor that knows the cookie, the worst case

        def hello(creation: int) -> bytes:
            return handshake.hello("b", creation, None, False, cookie, new_nonce())

        # the routing id b used to have (its name) and the one it has now
        raws += [_raw_dealer(ctx, a.address, rid) for rid in (b"b", live_rid, None)]
        for raw in raws:
            raw.send_multipart([b"pretend to be b"])
            raw.send_multipart([b"", b"C", hello(1)])
            raw.send_multipart([b"", b"C", hello(99)])
        for raw in (raws[0], raws[2]):  # the live-id one is ignored by ZeroMQ: no reply
            replies = await _replies(raw, 2)  # data before a hello: nothing (a stranger)
            assert [r["t"] for r in replies] == ["reject", "reject"]
            assert all("already connected" in r["reason"] for r in replies)
        for i in range(100):
            a.send("b", [b"a%d" % i])
            b.send("a", [b"b%d" % i])
        await until(lambda: len(rb.msgs["a"]) == 100 and len(ra.msgs["b"]) == 100, what="traffic after the attempt")
        assert ra.msgs["b"] == [[b"b%d" % i] for i in range(100)]  # no junk passed as b's
        assert rb.msgs["a"] == [[b"a%d" % i] for i in range(100)]
        assert ra.down == []
        assert [p for p, _ in ra.up] == ["b"]
        assert a._peers["b"].rid == live_rid
        for raw in raws:
            raw.close(linger=0)
        a.send("b", [b"after the impostors left"])
        b.send("a", [b"still here"])
        await until(lambda: rb.msgs["a"][-1] == [b"after the impostors left"] and ra.msgs["b"][-1] == [b"still here"])
        assert ra.down == []
    finally:
        for raw in raws:
            raw.close(linger=0)
        ctx.term()
        await b.close()
        await a.close()


async def test_a_live_name_is_refused_until_its_owner_leaves() -> None:
    a, ra = await started("a")
    b, _rb = await started("b", listen=None)
    b2, rb2 = await started("b", creation=2, listen=None)
    try:
        assert a.address is not None
        await b.connect(a.address)
        with pytest.raises(NodeDown, match="'b' is already connected"):
            await b2.connect(a.address, timeout=1.0)
        assert a.peer_info("b") == PeerInfo("b", 1, None)
        assert ra.down == []
        await b.close()  # says bye: the name is free
        await until(lambda: ("b", "closed") in ra.down)
        assert await b2.connect(a.address) == "a"
        a.send("b", [b"to the new b"])
        await until(lambda: rb2.msgs["a"] == [[b"to the new b"]])
        assert a.peer_info("b") == PeerInfo("b", 2, None)
    finally:
        await b2.close()
        await a.close()


async def test_curve_name_must_match_the_clients_key(tmp_path: Path) -> None:
    cluster, forger = tmp_path / "cluster", tmp_path / "forger"
    for n in ("a", "b", "c"):
        generate_keys(cluster, n)
    # c, a trusted node, keeps its own key pair under the name "b"
    forger.mkdir()
    (forger / "a.key").write_bytes((cluster / "a.key").read_bytes())
    (forger / "b.key_secret").write_bytes((cluster / "c.key_secret").read_bytes())
    (forger / "d.key_secret").write_bytes((cluster / "c.key_secret").read_bytes())
    a, ra = await started("a", keys=cluster)
    b, _rb = await started("b", keys=cluster, listen=None)
    try:
        assert a.address is not None
        await b.connect(a.address + "#a")
        for name in ("b", "d"):  # a live name, a free name without a key
            fake, _ = await started(name, creation=7, keys=forger, listen=None)
            try:
                with pytest.raises(NodeDown, match=rf"CURVE key of this connection is not {name}\.key"):
                    await fake.connect(a.address + "#a", timeout=1.0)
            finally:
                await fake.close()
        assert a.peer_info("b") == PeerInfo("b", 1, None)
        assert ra.down == []
        # the real key under a new creation is a restart: it replaces the old link at once
        b2, rb2 = await started("b", creation=2, keys=cluster, listen=None)
        try:
            await b2.connect(a.address + "#a")
            assert ra.down == [("b", "noconnection")]
            assert a.peer_info("b") == PeerInfo("b", 2, None)
            a.send("b", [b"hi"])
            await until(lambda: rb2.msgs["a"] == [[b"hi"]])
        finally:
            await b2.close()
    finally:
        await b.close()
        await a.close()


async def test_a_burst_is_batched_and_keeps_its_order() -> None:
    a, ra = await started("a")
    b, rb = await started("b")
    try:
        assert a.address is not None
        await b.connect(a.address)
        await until(lambda: "b" in a.peers())
        big = b"z" * (100 << 10)  # too big for a batch: it must wait for what is queued before it
        expected: list[list[bytes]] = []
        for i in range(3_000):  # one loop iteration: one direct send, then batches
            if i % 500 == 250:
                msg = [big, b"tail %d" % i]
            elif i % 700 == 350:
                msg = [b"", b"escaped %d" % i]
            else:
                msg = [b"m%d" % i]
            expected.append(msg)
            a.send("b", msg)  # over a's ROUTER
            b.send("a", msg)  # over b's DEALER
        await until(lambda: len(rb.msgs["a"]) == len(expected) and len(ra.msgs["b"]) == len(expected))
        assert rb.msgs["a"] == expected
        assert ra.msgs["b"] == expected
    finally:
        await b.close()
        await a.close()


async def test_small_messages_to_a_stalled_peer_end_in_backpressure() -> None:
    a, _ra = await started("a", hwm=10)
    b, _rb = await started("b", hwm=10)
    try:
        assert a.address is not None
        await b.connect(a.address)
        await until(lambda: "b" in a.peers())

        def flood() -> None:  # b never gets the loop: batches pile up until the hwm
            for _ in range(10_000_000):
                a.send("b", [b"x" * 1000])

        with pytest.raises(Backpressure, match=r"'b'.*hwm=10"):
            flood()
    finally:
        await b.close()
        await a.close()


async def test_malformed_batches_are_dropped_and_service_continues() -> None:
    a, ra = await started("a")
    b, rb = await started("b")
    ctx = zmq.Context()
    raw = ctx.socket(zmq.DEALER)
    raw.setsockopt(zmq.LINGER, 0)
    try:
        assert a.address is not None
        raw.connect(a.address)
        for m in ([b"", b"B", msgpack.packb([b"before handshake"])], [b"", b"B"], [b"", b"B", b"\xc1"]):
            raw.send_multipart(m)
        await b.connect(a.address)
        await until(lambda: "b" in a.peers())
        # white box: junk batches on b's own connection, then real data
        bad = [
            msgpack.packb({"not": "a list"}),
            msgpack.packb([b"ok", 7]),  # a non-bin item is dropped, the bin one delivered
            msgpack.packb([b"ok", "a str"]),  # strings are refused while unpacking: all dropped
            msgpack.packb([b"x"] * 257),  # longer than any sender makes
            b"\x92\xc4\x01",  # truncated
        ]
        for payload in bad:
            b._peers["a"].sock.send_multipart([b"", b"B", payload])
        b.send("a", [b"real"])
        a.send("b", [b"real back"])
        await until(lambda: ra.msgs["b"][-1:] == [[b"real"]] and rb.msgs["a"] == [[b"real back"]])
        assert ra.msgs["b"] == [[b"ok"], [b"real"]]
    finally:
        raw.close(linger=0)
        ctx.term()
        await b.close()
        await a.close()
