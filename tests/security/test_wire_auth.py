"""Node authentication on plaintext transports: the cookie, and what a hello without it gets."""

from __future__ import annotations

import asyncio
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import msgpack
import pytest
import zmq
from hypothesis import given, settings
from hypothesis import strategies as st
from zmq.utils.monitor import recv_monitor_message

import beamrl
from beamrl import Node
from beamrl.errors import NodeDown
from beamrl.node_config import config_from_mapping
from beamrl.testing import eventually
from beamrl.transport import handshake
from beamrl.transport.cookie import CookieError, NonceBook, default_cookie_path, load_cookie, new_nonce
from beamrl.transport.framing import PROTOCOL_VERSION, unpack_control
from beamrl.tree import TreeError
from tests import start_peer
from tests.transport.test_zmq_transport import started


def _write_cookie(path: Path, secret: bytes) -> Path:
    path.write_bytes(secret)
    path.chmod(0o600)
    return path


def test_the_cookie_is_created_once_readable_by_its_user_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    path = default_cookie_path()
    assert path == tmp_path / "config" / "beamrl" / "cookie"
    first = load_cookie()
    assert len(first) == 64
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_cookie() == first  # read back, not replaced


def test_nodes_starting_together_agree_on_one_new_cookie(tmp_path: Path) -> None:
    path = tmp_path / "fresh" / "cookie"
    with ThreadPoolExecutor(8) as pool:
        cookies = list(pool.map(lambda _: load_cookie(path), range(32)))
    assert len(set(cookies)) == 1
    assert [p.name for p in path.parent.iterdir()] == ["cookie"]  # no temporary file left


def test_a_cookie_others_can_read_or_an_empty_one_is_refused(tmp_path: Path) -> None:
    loose = tmp_path / "loose"
    loose.write_bytes(b"secret")
    loose.chmod(0o644)
    with pytest.raises(CookieError, match=r"readable by other users .*chmod 600"):
        load_cookie(loose)
    empty = _write_cookie(tmp_path / "empty", b"  \n")
    with pytest.raises(CookieError, match="is empty"):
        load_cookie(empty)
    with pytest.raises(CookieError, match="does not exist"):
        load_cookie(tmp_path / "absent", create=False)


def _dealer(ctx: zmq.Context, address: str) -> tuple[zmq.Socket, zmq.Socket]:
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RECONNECT_IVL, -1)  # a dropped connection stays dropped
    monitor = sock.get_monitor_socket(zmq.EVENT_DISCONNECTED)
    sock.connect(address)
    return sock, monitor


async def _dropped(monitor: zmq.Socket) -> bool:
    """True once the DEALER's connection was closed by the other side."""

    def gone() -> bool:
        return bool(monitor.poll(0)) and recv_monitor_message(monitor)["event"] == zmq.EVENT_DISCONNECTED

    await eventually(gone, timeout=10.0, what="the connection to be dropped")
    return True


async def test_a_hello_without_the_right_cookie_gets_nothing_and_is_dropped() -> None:
    a, ra = await started("a")
    ctx = zmq.Context()
    socks: list[zmq.Socket] = []
    try:
        assert a.address is not None
        fields = {"t": "hello", "v": PROTOCOL_VERSION, "name": "b", "creation": 1, "address": None, "hidden": False}
        wrong = handshake.hello("b", 1, None, False, b"not the cookie", new_nonce())
        forged = msgpack.packb({**fields, "nonce": new_nonce(), "ts": 1.0, "auth": b"\0" * 32})
        for payload in (msgpack.packb(fields), wrong, forged):
            sock, monitor = _dealer(ctx, a.address)
            socks += [sock, monitor]
            sock.send_multipart([b"", b"C", payload])
            assert await _dropped(monitor)
            assert sock.poll(0) == 0  # not a reject, not a reset: nothing
        assert ra.up == [] and a.peers() == []
        assert a._gate.dropped >= 3
    finally:
        for s in socks:
            s.close(linger=0)
        ctx.term()
        await a.close()


async def test_data_or_a_ping_from_a_stranger_gets_nothing() -> None:
    a, ra = await started("a")
    ctx = zmq.Context()
    sock, monitor = _dealer(ctx, a.address or "")
    try:
        sock.send_multipart([b"data without a hello"])
        sock.send_multipart([b"", b"C", msgpack.packb({"t": "ping"})])
        sock.send_multipart([b"", b"C", handshake.hello("b", 1, None, False, load_cookie(), new_nonce())])
        # in order on one connection: a reset for the data or the ping would come first
        first = await eventually(lambda: sock.poll(0) and sock.recv_multipart(), timeout=10.0)
        assert msgpack.unpackb(first[2])["t"] == "welcome"
        assert ra.msgs == {}
    finally:
        sock.close(linger=0)
        monitor.close(linger=0)
        ctx.term()
        await a.close()


async def test_a_recorded_hello_cannot_be_replayed() -> None:
    a, ra = await started("a")
    ctx = zmq.Context()
    socks: list[zmq.Socket] = []
    try:
        assert a.address is not None
        recorded = handshake.hello("b", 1, None, False, load_cookie(), new_nonce())
        first, first_monitor = _dealer(ctx, a.address)
        socks += [first, first_monitor]
        first.send_multipart([b"", b"C", recorded])
        reply = await eventually(lambda: first.poll(0) and first.recv_multipart(), timeout=10.0)
        assert msgpack.unpackb(reply[2])["t"] == "welcome"
        replay, monitor = _dealer(ctx, a.address)
        socks += [replay, monitor]
        replay.send_multipart([b"", b"C", recorded])
        assert await _dropped(monitor)
        assert replay.poll(0) == 0
        assert [p for p, _ in ra.up] == ["b"]
    finally:
        for s in socks:
            s.close(linger=0)
        ctx.term()
        await a.close()


async def test_a_listener_without_the_cookie_is_not_trusted() -> None:
    """A welcome must prove the cookie too: a squatter on the port cannot pose as a node."""
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    b, rb = await started("b", listen=None)

    async def answer() -> None:
        frames = await eventually(lambda: router.poll(0) and router.recv_multipart(), timeout=10.0)
        welcome = {"t": "welcome", "v": PROTOCOL_VERSION, "name": "a", "creation": 1, "address": None}
        router.send_multipart([frames[0], b"", b"C", msgpack.packb({**welcome, "hidden": False, "peers": []})])

    try:
        task = asyncio.ensure_future(answer())
        with pytest.raises(NodeDown, match="did not prove it knows this node's cookie"):
            await b.connect(f"tcp://127.0.0.1:{port}", timeout=10.0)
        await task
        assert rb.up == []
    finally:
        router.close(linger=0)
        ctx.term()
        await b.close()


async def test_nodes_with_different_cookies_do_not_talk(tmp_path: Path) -> None:
    mine = _write_cookie(tmp_path / "mine", b"one secret")
    theirs = _write_cookie(tmp_path / "theirs", b"another secret")
    async with (
        Node("a", listen="tcp://127.0.0.1:0", cookie_file=mine) as a,
        Node("b", cookie_file=theirs) as b,
        Node("c", cookie=b"one secret") as c,
    ):
        assert a.address is not None
        with pytest.raises(NodeDown, match="no handshake"):
            await b.connect(a.address, timeout=1.0)
        assert await c.connect(a.address) == "a"


async def test_sessions_read_the_cookie_nodes_write(tmp_path: Path) -> None:
    """``beamrl.connect`` with no options reaches a node started with no options."""
    other = _write_cookie(tmp_path / "other", b"a cookie of its own")
    with start_peer("cookie-default") as peer, start_peer("cookie-other", "--cookie-file", str(other)) as apart:
        with beamrl.connect(peer.address) as s:
            assert s.peer == "cookie-default" and s.registered() == []
        with pytest.raises(NodeDown):
            beamrl.connect(apart.address, timeout=1.0)
        with beamrl.connect(apart.address, cookie_file=other) as s:
            assert s.peer == "cookie-other"


def test_the_suite_does_not_touch_the_users_cookie() -> None:
    assert os.environ["XDG_CONFIG_HOME"] == os.environ["BEAMRL_TEST_CONFIG_HOME"]


def test_a_nonce_is_accepted_once_and_only_near_the_listeners_clock() -> None:
    now = [1000.0]
    book = NonceBook(window=120.0, clock=lambda: now[0])
    assert book.fresh(b"n1", 990.0)
    assert not book.fresh(b"n1", 990.0)  # replayed
    assert not book.fresh(b"n2", 700.0)  # too old
    assert not book.fresh(b"n3", 1300.0)  # from the future
    now[0] = 1500.0
    assert book.fresh(b"n4", 1499.0)
    assert len(book._seen) == 1  # what is too old to be replayed is forgotten


def test_a_role_file_can_name_the_cookie_file() -> None:
    config = config_from_mapping({"name": "n", "cookie_file": "/etc/beamrl/cookie"}, "role.toml")
    assert config.cookie_file == "/etc/beamrl/cookie"
    with pytest.raises(TreeError, match="cookie_file: expected a string"):
        config_from_mapping({"cookie_file": 3}, "role.toml")


_SECRET = b"the cookie of this property"
_SIGNED = handshake.hello("b", 7, "tcp://127.0.0.1:9", False, _SECRET, b"n" * 16)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.integers(0, len(_SIGNED) * 8 - 1), min_size=1, max_size=4), st.booleans())
def test_a_tampered_hello_never_passes_for_the_original(bits: list[int], truncate: bool) -> None:
    """Flip bits anywhere (or cut the frame): what still proves the cookie says what was signed."""
    raw = bytearray(_SIGNED)
    for bit in bits:
        raw[bit // 8] ^= 1 << (bit % 8)
    if truncate:
        raw = raw[: bits[0] // 8]
    msg = unpack_control(bytes(raw))
    if msg is None:
        return
    proof = handshake.hello_auth(_SECRET, msg)
    if proof is not None:  # only a flip that left every signed field as it was
        original = msgpack.unpackb(_SIGNED)
        assert [msg.get(k) for k in ("v", "name", "creation", "address", "hidden", "nonce", "ts")] == [
            original[k] for k in ("v", "name", "creation", "address", "hidden", "nonce", "ts")
        ]
    assert handshake.hello_auth(b"another cookie", msg) is None
