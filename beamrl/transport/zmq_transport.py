"""ZeroMQ transport between nodes: ROUTER in, one DEALER per dialled peer, CURVE, heartbeats.

The framing (data, batches, control messages) is in ``framing``, the handshake's
messages and decisions in ``handshake``, CURVE and the listen policy in ``curve``.
``ZmqTransport`` (here: set-up and the send path) is assembled from ``receiving`` (drain
loops, control dispatch), ``dialling`` (our DEALERs, the mesh), ``accepting`` (hello and
welcome), ``membership`` (peers up and down, heartbeat, reconnect) and ``keywatch`` (reloading
CURVE keys), which share the fields declared in ``state``; ``gate`` drops connections
that do not authenticate in time, ``cookie`` holds the shared secret of plaintext nodes.

Flow control: the receiver acknowledges the data bytes it took in (``ack``), and
``send`` raises ``Backpressure`` once ``max_send_bytes`` are unacknowledged.

A burst (many sends to one peer in one event-loop iteration) goes out as its first
message, then batches of up to 256 small messages, each one ZeroMQ message: per-message
ZeroMQ and Python costs are paid once per batch, on both sides, with no added latency
for a lone message.

Handshake: the dialling side sends ``hello`` {v, name, creation, address, hidden} over
its DEALER; the listening side answers ``welcome`` {v, name, creation, address,
peers=[[name, address], ...]} over the same connection, so a client-only node (no
``listen``) is reachable too.  Without CURVE both carry a MAC proving the cookie (see
``cookie``); a hello without a valid one gets nothing back and its connection is
dropped.  The dialler then connects to every peer in ``peers`` (full mesh).  Exactly
one connection carries a pair's traffic: if both sides dial each other at once, the
connection dialled by the node with the smaller name wins, and a dial that arrives
once the pair already has a path is refused as ``duplicate``.  ``reset`` says "I don't
know you on this connection": the receiver drops the peer and redials, which heals
one-sided views after a partition.

Identity: a routing id is never a name.  DEALERs set no routing id (the ROUTER assigns a
fresh one per connection) and ``ROUTER_HANDOVER`` stays off, so a client that picks a
routing id cannot take over another connection; a routing id maps to a peer only after
that connection's handshake completed.  A ``hello`` claiming the name of a peer that is
up over another connection is refused unless that connection is gone (the ROUTER reports
it unreachable; otherwise the heartbeat drops it within ``heartbeat_timeout`` and the
claimant's redial then succeeds).  A restarted peer (new ``creation``) that we reach over
our own DEALER is noticed by that DEALER (the new process answers ``reset``) and redialled
at once.  With CURVE the name in ``hello`` must be the one whose key file holds the
client's public key, so such a hello is authenticated and replaces the old path at once
(no trusted node can claim another's name).  Without CURVE, any holder of the cookie can
claim a name that is not up; a claim of a live name is refused with a message saying
so, and the holder is told (``contested``).

CURVE (``keys=DIR``): the ROUTER is a CURVE server whose ZAP handler accepts only the
public keys in ``DIR/*.key``; DEALERs are CURVE clients.  A client must know the server's
public key.  ``connect("tcp://host:port#NAME")`` uses ``DIR/NAME.key``; plain
``connect("tcp://host:port")`` tries every trusted key at once and keeps the one whose
handshake completes *and* whose peer announces the key file's name.  Mesh and reconnect
dials know the peer's name, so they use its key directly.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import zmq
import zmq.backend
from zmq.auth.asyncio import AsyncioAuthenticator

from beamrl.errors import Backpressure, NodeDown
from beamrl.ratelog import RateLimitedLog
from beamrl.transport.accepting import Accepting
from beamrl.transport.base import Frame, TransportHandler, TransportOptions
from beamrl.transport.cookie import NonceBook, load_cookie
from beamrl.transport.curve import ZAP_DOMAIN, AllowList, check_listen, make_server
from beamrl.transport.dialling import Dialler
from beamrl.transport.framing import (
    BYE,
    CTRL,
    DATA,
    ESC,
    MANY,
    MANY_BYTES,
    MANY_MAX,
    MAX_NAME,
    PROTOCOL_VERSION,
    SMALL,
    nbytes,
    pack_many,
)
from beamrl.transport.gate import Gate
from beamrl.transport.keys import keys_signature, load_keypair, trusted_keys
from beamrl.transport.keywatch import KeyWatch
from beamrl.transport.membership import Membership
from beamrl.transport.receiving import Receiver
from beamrl.transport.state import Conn, Peer

__all__ = ["PROTOCOL_VERSION", "ZmqTransport"]

log = logging.getLogger("beamrl.transport")

_ZERO_COPY = 64 << 10  # frames from this size are handed to ZeroMQ without a copy
# the Cython method itself: pyzmq's Python-level ``Socket.send`` only adds DRAFT
# routing_id/group handling, and costs as much again as the send for a small frame
_zsend: Callable[..., Any] = zmq.backend.Socket.send
_NOBLOCK = zmq.NOBLOCK
_MORE = zmq.SNDMORE | zmq.NOBLOCK


class ZmqTransport(Receiver, Dialler, Accepting, Membership, KeyWatch):
    """Node-to-node transport over ZeroMQ ROUTER/DEALER; see the module docstring.

    ``send`` never blocks: it raises :class:`~beamrl.errors.NodeDown` for a peer that is
    not connected and :class:`~beamrl.errors.Backpressure` when ``max_send_bytes`` bytes
    sent to the peer are not acknowledged yet (a batch counts its bytes; the receiver
    acknowledges every ``max_send_bytes / 4`` bytes it takes in, and at each heartbeat),
    or when the peer's high-water mark (``hwm`` ZeroMQ messages) is reached.  A batch that
    ZeroMQ refused stays queued (at most one batch per peer) and is retried shortly;
    sends behind it wait in that queue, and raise Backpressure once it is full.
    """

    def __init__(
        self,
        name: str,
        creation: int,
        *,
        listen: str | None = None,
        keys: str | Path | None = None,
        insecure: bool = False,
        heartbeat_interval: float = 0.5,
        heartbeat_timeout: float = 3.0,
        hwm: int = 10_000,
        max_send_bytes: int = 64 << 20,
        max_message_bytes: int = 256 << 20,
        hidden: bool = False,
        cookie: bytes | None = None,
        cookie_file: str | Path | None = None,
        handshake_timeout: float = 5.0,
        max_pending: int = 64,
    ) -> None:
        if not name or len(name.encode()) > MAX_NAME:
            raise ValueError(f"node name must be 1..{MAX_NAME} bytes, got {name!r}")
        check_listen(name, listen, keys is not None, insecure)
        if heartbeat_timeout <= heartbeat_interval:
            raise ValueError("heartbeat_timeout must be longer than heartbeat_interval")
        self.name = name
        self.creation = creation
        self.listen = listen
        self.address: str | None = None
        self.hidden = hidden
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_timeout = heartbeat_timeout
        self.hwm = hwm
        if max_send_bytes < MANY_BYTES:
            raise ValueError(f"max_send_bytes must be at least {MANY_BYTES} (one batch), got {max_send_bytes}")
        self.max_send_bytes = max_send_bytes
        self._ack_every = max_send_bytes // 4
        self.max_message_bytes = max_message_bytes
        if handshake_timeout <= 0 or max_pending < 1:
            raise ValueError("handshake_timeout must be positive and max_pending at least 1")
        self.handshake_timeout = handshake_timeout
        self._keys_dir = Path(keys) if keys is not None else None
        # plaintext nodes authenticate with the cookie; CURVE nodes with their keys
        self._cookie: bytes | None = None
        if self._keys_dir is None:
            self._cookie = cookie if cookie is not None else load_cookie(cookie_file)
            if not isinstance(self._cookie, bytes) or not self._cookie:
                raise ValueError("cookie must be non-empty bytes")
        self._nonces = NonceBook()
        self._public: bytes | None = None
        self._secret: bytes | None = None
        self._trusted: dict[str, bytes] = {}
        self._allow: AllowList | None = None
        self._keys_signature: tuple[tuple[str, int, int], ...] = ()
        self._keys_checked = 0.0
        if self._keys_dir is not None:
            self._public, self._secret = load_keypair(self._keys_dir, name)
            self._keys_signature = keys_signature(self._keys_dir)
            self._trusted = trusted_keys(self._keys_dir)
        self._handler: TransportHandler | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ctx: zmq.Context | None = None
        self._auth: AsyncioAuthenticator | None = None
        self._router: zmq.Socket | None = None
        self._peers: dict[str, Peer] = {}
        self._by_rid: dict[bytes, Peer] = {}
        self._by_address: dict[str, str] = {}
        self._configured: set[str] = set()
        self._conns: set[Conn] = set()
        self._dialing: dict[str, int] = {}  # expected name -> dials in progress
        self._up_waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reconnecting: set[str] = set()
        self._draining: zmq.Socket | None = None
        self._kicked: set[int] = set()
        self._router_kicked = False
        self._kick_scheduled = False
        self._bursting: list[Peer] = []  # peers with burst set (and maybe an outbox)
        self._retry_scheduled = False
        self._closing = False
        self._started = False
        self._warn = RateLimitedLog(log)
        self._gate = Gate(name, handshake_timeout, max_pending, self._warn)

    @classmethod
    def with_options(cls, name: str, creation: int, options: TransportOptions) -> ZmqTransport:
        """A transport for node ``name`` configured by ``options``."""
        return cls(name, creation, **dataclasses.asdict(options))

    # ------------------------------------------------------------------ lifecycle

    async def start(self, handler: TransportHandler) -> None:
        """Bind (when ``listen`` is set), start the heartbeat, begin delivering to ``handler``."""
        if self._started:
            raise RuntimeError("transport already started")
        self._started = True
        self._handler = handler
        self._loop = asyncio.get_running_loop()
        self._ctx = zmq.Context()
        if self._keys_dir is not None:
            zap_log = logging.getLogger("beamrl.transport.zap")
            self._auth = AsyncioAuthenticator(self._ctx, log=zap_log)
            self._auth.start()
            self._allow = AllowList(set(self._trusted.values()), self.name, self._warn)
            self._auth.configure_curve_callback(ZAP_DOMAIN, self._allow)
        if self.listen is not None:
            r = self._socket(zmq.ROUTER)
            r.setsockopt(zmq.ROUTER_MANDATORY, 1)
            # never ROUTER_HANDOVER: it lets any client take over a live routing id
            if self._secret is not None and self._public is not None:
                make_server(r, self._public, self._secret)
            self._gate.watch(r, self._loop)  # before bind: no connection escapes it
            try:
                r.bind(self.listen)
            except zmq.ZMQError as e:
                self._gate.close(r)
                r.close(linger=0)
                await self._teardown()
                raise OSError(f"cannot listen on {self.listen!r}: {e}") from e
            self._router = r
            self.address = r.getsockopt_string(zmq.LAST_ENDPOINT)
            self._gate.listening(self.address)
            self._loop.add_reader(r.getsockopt(zmq.FD), self._drain_router)  # type: ignore[arg-type]
            self._kick(r)
        self._spawn(self._heartbeat())

    async def close(self) -> None:
        """Say goodbye to peers, stop every task, close every socket (short linger)."""
        if self._closing:
            return
        self._closing = True
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for p in list(self._peers.values()):
            try:
                self._flush(p)  # what was sent goes before the goodbye
            except (Backpressure, NodeDown):
                pass
            self._send_control(p, BYE)
        self._peers.clear()
        self._by_rid.clear()
        for waiters in self._up_waiters.values():
            for w in waiters:
                if not w.done():
                    w.set_exception(NodeDown("transport closed"))
        self._up_waiters.clear()
        for c in list(self._conns):
            self._close_conn(c, linger=100)
        self._gate.close(self._router)
        if self._router is not None and self._loop is not None:
            self._loop.remove_reader(self._router.getsockopt(zmq.FD))  # type: ignore[arg-type]
            self._router.close(linger=100)
            self._router = None
        await self._teardown()

    async def _teardown(self) -> None:
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
            await asyncio.sleep(0)  # let the cancelled ZAP task finish
        if self._ctx is not None:
            ctx, self._ctx = self._ctx, None
            await asyncio.to_thread(ctx.term)

    async def __aenter__(self) -> ZmqTransport:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ public API

    def send(self, peer: str, frames: Sequence[Frame]) -> None:
        """Queue ``frames`` for ``peer`` without blocking (see class docstring for errors).

        The first message of a loop iteration goes to ZeroMQ at once (no added latency);
        small one-frame messages that follow it in the same iteration are collected and
        go out as one batch when the iteration ends (or when the batch is full), so a
        burst costs one ZeroMQ message per batch, not one per message.
        """
        p = self._peers.get(peer)
        if p is None:
            raise NodeDown(f"node {peer!r} is not connected to {self.name!r}")
        body = frames[0] if len(frames) == 1 else None
        size = len(body) if type(body) is bytes else nbytes(frames)
        if size > p.window:
            raise Backpressure(
                f"send to node {peer!r} refused: {self.max_send_bytes - p.window} bytes sent to it are not "
                f"acknowledged yet (max_send_bytes={self.max_send_bytes}); it is slow or stopped: "
                "slow down or retry later"
            )
        if p.burst:
            if type(body) is bytes and 0 < size < SMALL:
                if len(p.outbox) >= MANY_MAX or p.outbox_bytes >= MANY_BYTES:
                    self._flush(p)
                p.outbox.append(body)
                p.outbox_bytes += size
                p.window -= size
                return
            if p.outbox:
                self._flush(p)  # keeps the order: what was queued goes first
            self._send_data(p, frames)
            p.window -= size
            return
        self._send_data(p, frames)
        p.window -= size
        p.burst = True
        self._bursting.append(p)
        if not self._kick_scheduled:
            self._kick_scheduled = True
            self._loop.call_soon(self._kick_all)  # type: ignore[union-attr]

    def _send_data(self, p: Peer, frames: Sequence[Frame]) -> None:
        """One data message to ``p`` now; raises Backpressure or NodeDown."""
        sock = p.sock
        try:
            if p.rid is not None:
                _zsend(sock, p.rid, _MORE)
            last = len(frames) - 1
            if last < 0 or not frames[0]:  # rare: escape so it can't pass for a tag
                _zsend(sock, ESC, _MORE)
                _zsend(sock, DATA, _MORE if last >= 0 else _NOBLOCK)
            for i, f in enumerate(frames):
                _zsend(sock, f, _MORE if i < last else _NOBLOCK, len(f) < _ZERO_COPY)
        except zmq.ZMQError as e:
            raise self._send_error(p, e) from None

    def _flush(self, p: Peer) -> None:
        """Send ``p``'s outbox as one message; on Backpressure or NodeDown it is kept."""
        out = p.outbox
        if len(out) == 1:
            self._send_data(p, out)
        elif out:
            sock = p.sock
            try:
                if p.rid is not None:
                    _zsend(sock, p.rid, _MORE)
                _zsend(sock, ESC, _MORE)
                _zsend(sock, MANY, _MORE)
                payload = pack_many(out)
                _zsend(sock, payload, _NOBLOCK)
            except zmq.ZMQError as e:
                raise self._send_error(p, e) from None
            p.window -= len(payload) - p.outbox_bytes  # the bodies were counted when queued
        p.outbox = []
        p.outbox_bytes = 0

    def _send_error(self, p: Peer, e: zmq.ZMQError) -> Exception:
        if e.errno == zmq.EAGAIN:
            return Backpressure(
                f"send to node {p.name!r} refused: its queue is full (high-water mark "
                f"hwm={self.hwm} messages reached); slow down or retry later"
            )
        if e.errno == zmq.EHOSTUNREACH:
            self._loop_call(self._lose, p, "noconnection")
            return NodeDown(f"node {p.name!r} is not reachable (connection lost)")
        return e

    async def connect(self, address: str, timeout: float = 5.0) -> str:
        """Handshake with the node at ``address`` (``tcp://host:port[#NAME]``); return its name.

        Idempotent: an address already connected returns at once.  Then connects to
        every non-hidden peer that node knows (full mesh) before returning.  Raises
        :class:`~beamrl.errors.NodeDown` if no handshake completes within ``timeout``.
        """
        if not self._started or self._closing:
            raise RuntimeError("transport is not running (call start() first)")
        addr, _, expect = address.partition("#")
        known = self._by_address.get(addr)
        if known is not None and known in self._peers and (not expect or expect == known):
            return known
        deadline = time.monotonic() + timeout
        name, peers = await self._dial_any(addr, expect or None, timeout)
        self._configured.add(addr)
        await self._mesh(peers, deadline)
        return name

    def _reply_router(self, rid: bytes, payload: bytes) -> bool:
        r = self._router
        if r is None:
            return False
        try:
            r.send_multipart([rid, ESC, CTRL, payload], _NOBLOCK)
        except zmq.ZMQError:
            return False
        if r is not self._draining:
            self._kick(r)
        return True

    def _send_control(self, p: Peer, payload: bytes) -> bool:
        try:
            if p.rid is not None:
                p.sock.send_multipart([p.rid, ESC, CTRL, payload], _NOBLOCK)
            else:
                p.sock.send_multipart([ESC, CTRL, payload], _NOBLOCK)
        except zmq.ZMQError as e:
            if e.errno == zmq.EHOSTUNREACH and not self._closing:
                self._loop_call(self._lose, p, "noconnection")
            return False
        if p.sock is not self._draining and not self._closing:
            if p.conn is None:
                self._kick(p.sock)
            else:
                self._kick_conn(p.conn)
        return True
