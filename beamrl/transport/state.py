"""The state every part of the ZeroMQ transport shares: peers, dials, sockets, the loop.

``Peer`` is an up peer and the one path its traffic uses; ``Conn`` one of our DEALERs
(a dial in progress, then maybe a peer's path). ``TransportState`` declares the fields
``ZmqTransport`` sets up and the operations its parts call on each other, so that
``membership``, ``receiving``, ``dialling`` and ``zmq_transport`` each hold one concern.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq
from zmq.auth.asyncio import AsyncioAuthenticator

from beamrl.ratelog import RateLimitedLog
from beamrl.transport.base import PeerInfo, TransportHandler
from beamrl.transport.cookie import NonceBook
from beamrl.transport.curve import AllowList
from beamrl.transport.framing import ack
from beamrl.transport.gate import Gate

log = logging.getLogger("beamrl.transport")


class Peer:
    """An up peer and the one path its traffic uses."""

    __slots__ = (
        "acked",
        "burst",
        "conn",
        "info",
        "last_seen",
        "name",
        "outbox",
        "outbox_bytes",
        "rid",
        "rx",
        "rx_acked",
        "seen",
        "sock",
        "window",
    )

    def __init__(self, info: PeerInfo, sock: zmq.Socket, rid: bytes | None, conn: Conn | None):
        self.info = info
        self.name = info.name
        self.sock = sock
        self.rid = rid  # routing id on our ROUTER, or None when the path is our DEALER
        self.conn = conn
        self.seen = True
        self.last_seen = time.monotonic()
        self.burst = False  # a message went out in this loop iteration: queue the next ones
        self.outbox: list[bytes] = []  # small bodies waiting to go out as one batch
        self.outbox_bytes = 0
        # flow control in bytes: what we may still send it (set when it comes up), what it
        # acknowledged; what we took in from it, and what of that we acknowledged
        self.window = 0
        self.acked = 0
        self.rx = 0
        self.rx_acked = 0


class Conn:
    """One outgoing DEALER: a dial in progress, then (maybe) a peer's path."""

    __slots__ = ("address", "closed", "expect", "fd", "nonce", "result", "sock")

    def __init__(self, sock: zmq.Socket, address: str, expect: str | None):
        self.sock = sock
        self.fd: int = sock.getsockopt(zmq.FD)  # type: ignore[assignment]
        self.address = address
        self.expect = expect
        self.nonce = b""  # our hello's nonce: the welcome's MAC must cover it
        self.result: asyncio.Future[tuple[str, Any]] = asyncio.get_running_loop().create_future()
        self.closed = False


class TransportState:
    """Fields of a ``ZmqTransport`` and the operations its parts share (set up in its ``__init__``)."""

    name: str
    creation: int
    listen: str | None
    address: str | None
    hidden: bool
    heartbeat_interval: float
    heartbeat_timeout: float
    hwm: int
    max_send_bytes: int
    _ack_every: int
    max_message_bytes: int
    handshake_timeout: float
    _cookie: bytes | None
    _nonces: NonceBook
    _gate: Gate
    _keys_dir: Path | None
    _public: bytes | None
    _secret: bytes | None
    _trusted: dict[str, bytes]
    _allow: AllowList | None  # the ZAP callback's allow-list (CURVE only)
    _keys_signature: tuple[tuple[str, int, int], ...]
    _keys_checked: float
    _handler: TransportHandler | None
    _loop: asyncio.AbstractEventLoop | None
    _ctx: zmq.Context | None
    _auth: AsyncioAuthenticator | None
    _router: zmq.Socket | None
    _peers: dict[str, Peer]
    _by_rid: dict[bytes, Peer]
    _by_address: dict[str, str]
    _configured: set[str]  # addresses connect() was asked for: redialled until back
    _conns: set[Conn]
    _dialing: dict[str, int]  # expected name -> dials in progress
    _up_waiters: dict[str, list[asyncio.Future[None]]]
    _tasks: set[asyncio.Task[Any]]
    _reconnecting: set[str]
    _draining: zmq.Socket | None
    _kicked: set[int]
    _router_kicked: bool
    _kick_scheduled: bool
    _bursting: list[Peer]  # peers with burst set (and maybe an outbox)
    _retry_scheduled: bool
    _closing: bool
    _started: bool
    _warn: RateLimitedLog

    # implemented by the parts (membership, receiving, dialling, zmq_transport)
    def _lose(self, p: Peer, reason: str, reconnect: bool = True) -> None:
        raise NotImplementedError

    def _up(self, p: Peer) -> None:
        raise NotImplementedError

    def _flush(self, p: Peer) -> None:
        raise NotImplementedError

    def _send_control(self, p: Peer, payload: bytes) -> bool:
        raise NotImplementedError

    def _watch_keys(self) -> None:
        raise NotImplementedError

    def _switch_path(self, p: Peer, conn: Conn) -> None:
        raise NotImplementedError

    def _ack(self, p: Peer) -> None:
        """Tell ``p`` how many data bytes we took in from it (its send window reopens)."""
        p.rx_acked = p.rx
        self._send_control(p, ack(p.rx))

    def _on_ack(self, p: Peer | None, msg: dict[str, Any]) -> None:
        """``p`` took in ``rx`` data bytes from us in all: the window reopens by the difference."""
        rx = msg.get("rx")
        if p is not None and type(rx) is int and rx > p.acked:
            p.seen = True
            p.window = min(p.window + rx - p.acked, self.max_send_bytes)
            p.acked = rx

    def _reply_router(self, rid: bytes, payload: bytes) -> bool:
        raise NotImplementedError

    def _on_hello(self, rid: bytes, msg: dict[str, Any], payload: zmq.Frame) -> None:
        raise NotImplementedError

    def _on_welcome(self, conn: Conn, msg: dict[str, Any]) -> None:
        raise NotImplementedError

    def _kick(self, sock: zmq.Socket) -> None:
        raise NotImplementedError

    def _kick_conn(self, conn: Conn) -> None:
        raise NotImplementedError

    def _drain_conn(self, conn: Conn) -> None:
        raise NotImplementedError

    async def _dial_any(self, address: str, expect: str | None, timeout: float) -> tuple[str, list[Any]]:
        raise NotImplementedError

    async def _mesh(self, peers: list[Any], deadline: float) -> None:
        raise NotImplementedError

    def _close_conn(self, conn: Conn, linger: int = 0) -> None:
        raise NotImplementedError

    # -- helpers

    def _spawn(self, coro: Any) -> None:
        t = asyncio.ensure_future(coro)
        self._tasks.add(t)
        t.add_done_callback(self._task_done)

    def _task_done(self, t: asyncio.Task[Any]) -> None:
        self._tasks.discard(t)
        if not t.cancelled() and t.exception() is not None:
            log.error("%s: transport task failed", self.name, exc_info=t.exception())

    def _loop_call(self, fn: Callable[..., None], *args: Any) -> None:
        if self._loop is not None and not self._closing:
            self._loop.call_soon(fn, *args)
