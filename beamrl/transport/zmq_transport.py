"""ZeroMQ transport between nodes: ROUTER in, one DEALER per dialled peer, CURVE, heartbeats.

The framing (data, batches, control messages) is in ``framing``, the handshake's
messages and decisions in ``handshake``, CURVE and the listen policy in ``curve``.
This module is the one class that owns the sockets, so it is longer than ~400 lines:
the send path, the drain loops, dialling, membership and liveness all share the same
socket and peer tables on the hot path, and splitting the class would only pass that
state around.

A burst (many sends to one peer in one event-loop iteration) goes out as its first
message, then batches of up to 256 small messages, each one ZeroMQ message: per-message
ZeroMQ and Python costs are paid once per batch, on both sides, with no added latency
for a lone message.

Handshake: the dialling side sends ``hello`` {v, name, creation, address, hidden} over
its DEALER; the listening side answers ``welcome`` {v, name, creation, address,
peers=[[name, address], ...]} over the same connection, so a client-only node (no
``listen``) is reachable too.  The dialler then connects to every peer in ``peers``
(full mesh).  Exactly one connection carries a pair's traffic: if both sides dial each
other at once, the connection dialled by the node with the smaller name wins, and a dial
that arrives once the pair already has a path is refused as ``duplicate``.  ``reset``
says "I don't know you on this connection": the receiver drops the peer and redials,
which heals one-sided views after a partition.

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
(no trusted node can claim another's name).  Without CURVE, names are not authenticated:
anyone who can reach the port can claim a name that is not up.

CURVE (``keys=DIR``): the ROUTER is a CURVE server whose ZAP handler accepts only the
public keys in ``DIR/*.key``; DEALERs are CURVE clients.  A client must know the server's
public key.  ``connect("tcp://host:port#NAME")`` uses ``DIR/NAME.key``; plain
``connect("tcp://host:port")`` tries every trusted key at once and keeps the one whose
handshake completes *and* whose peer announces the key file's name.  Mesh and reconnect
dials know the peer's name, so they use its key directly.

Receiving does not go through ``zmq.asyncio`` futures: each socket's FD is registered
with ``loop.add_reader`` and drained with non-blocking ``recv`` calls (bounded
batches; after any send the socket's ``EVENTS`` are re-checked because ZeroMQ's FD is
edge-triggered).  This halves per-message overhead compared with awaiting
``recv_multipart`` futures.
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
from beamrl.transport import handshake
from beamrl.transport.base import Frame, PeerInfo, TransportHandler, TransportOptions
from beamrl.transport.curve import ZAP_DOMAIN, AllowList, check_listen, curve_user, make_client, make_server
from beamrl.transport.framing import (
    BYE,
    CTRL,
    DATA,
    ESC,
    MANY,
    MANY_BYTES,
    MANY_MAX,
    MAX_NAME,
    PING,
    PROTOCOL_VERSION,
    RESET,
    SMALL,
    pack_many,
    unpack_control,
    unpack_many,
)
from beamrl.transport.handshake import dial_candidates
from beamrl.transport.keys import load_keypair, trusted_keys

__all__ = ["PROTOCOL_VERSION", "ZmqTransport"]

log = logging.getLogger("beamrl.transport")

_BATCH = 256  # messages drained per reader callback before yielding to the loop
_ZERO_COPY = 64 << 10  # frames from this size are handed to ZeroMQ without a copy
# the Cython method itself: pyzmq's Python-level ``Socket.send`` only adds DRAFT
# routing_id/group handling, and costs as much again as the send for a small frame
_zsend: Callable[..., Any] = zmq.backend.Socket.send
_NOBLOCK = zmq.NOBLOCK
_MORE = zmq.SNDMORE | zmq.NOBLOCK
_POLLIN = zmq.POLLIN
_EVENTS = zmq.EVENTS
_RCVMORE = zmq.RCVMORE


class _Peer:
    """An up peer and the one path its traffic uses."""

    __slots__ = ("burst", "conn", "info", "last_seen", "name", "outbox", "outbox_bytes", "rid", "seen", "sock")

    def __init__(self, info: PeerInfo, sock: zmq.Socket, rid: bytes | None, conn: _Conn | None):
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


class _Conn:
    """One outgoing DEALER: a dial in progress, then (maybe) a peer's path."""

    __slots__ = ("address", "closed", "expect", "fd", "result", "sock")

    def __init__(self, sock: zmq.Socket, address: str, expect: str | None):
        self.sock = sock
        self.fd: int = sock.getsockopt(zmq.FD)  # type: ignore[assignment]
        self.address = address
        self.expect = expect
        self.result: asyncio.Future[tuple[str, Any]] = asyncio.get_running_loop().create_future()
        self.closed = False


class ZmqTransport:
    """Node-to-node transport over ZeroMQ ROUTER/DEALER; see the module docstring.

    ``send`` never blocks: it raises :class:`~beamrl.errors.NodeDown` for a peer that is
    not connected and :class:`~beamrl.errors.Backpressure` when the peer's high-water
    mark (``hwm`` ZeroMQ messages, a batch counting as one) is reached.  A batch that
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
        max_message_bytes: int = 256 << 20,
        hidden: bool = False,
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
        self.max_message_bytes = max_message_bytes
        self._keys_dir = Path(keys) if keys is not None else None
        self._public: bytes | None = None
        self._secret: bytes | None = None
        self._trusted: dict[str, bytes] = {}
        if self._keys_dir is not None:
            self._public, self._secret = load_keypair(self._keys_dir, name)
            self._trusted = trusted_keys(self._keys_dir)
        self._handler: TransportHandler | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ctx: zmq.Context | None = None
        self._auth: AsyncioAuthenticator | None = None
        self._router: zmq.Socket | None = None
        self._peers: dict[str, _Peer] = {}
        self._by_rid: dict[bytes, _Peer] = {}
        self._by_address: dict[str, str] = {}
        self._conns: set[_Conn] = set()
        self._dialing: dict[str, int] = {}  # expected name -> dials in progress
        self._up_waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reconnecting: set[str] = set()
        self._draining: zmq.Socket | None = None
        self._kicked: set[int] = set()
        self._router_kicked = False
        self._kick_scheduled = False
        self._bursting: list[_Peer] = []  # peers with burst set (and maybe an outbox)
        self._retry_scheduled = False
        self._closing = False
        self._started = False
        self._warn = RateLimitedLog(log)

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
            self._auth.configure_curve_callback(ZAP_DOMAIN, AllowList(set(self._trusted.values())))
        if self.listen is not None:
            r = self._socket(zmq.ROUTER)
            r.setsockopt(zmq.ROUTER_MANDATORY, 1)
            # never ROUTER_HANDOVER: it lets any client take over a live routing id
            if self._secret is not None and self._public is not None:
                make_server(r, self._public, self._secret)
            try:
                r.bind(self.listen)
            except zmq.ZMQError as e:
                r.close(linger=0)
                await self._teardown()
                raise OSError(f"cannot listen on {self.listen!r}: {e}") from e
            self._router = r
            self.address = r.getsockopt_string(zmq.LAST_ENDPOINT)
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

    def peers(self) -> list[str]:
        """Names of the peers whose handshake completed and that are not down."""
        return list(self._peers)

    def peer_info(self, peer: str) -> PeerInfo | None:
        p = self._peers.get(peer)
        return p.info if p is not None else None

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
        if p.burst:
            if len(frames) == 1:
                body = frames[0]
                if type(body) is bytes and 0 < len(body) < SMALL:
                    if len(p.outbox) >= MANY_MAX or p.outbox_bytes >= MANY_BYTES:
                        self._flush(p)
                    p.outbox.append(body)
                    p.outbox_bytes += len(body)
                    return
            if p.outbox:
                self._flush(p)  # keeps the order: what was queued goes first
            self._send_data(p, frames)
            return
        self._send_data(p, frames)
        p.burst = True
        self._bursting.append(p)
        if not self._kick_scheduled:
            self._kick_scheduled = True
            self._loop.call_soon(self._kick_all)  # type: ignore[union-attr]

    def _send_data(self, p: _Peer, frames: Sequence[Frame]) -> None:
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

    def _flush(self, p: _Peer) -> None:
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
                _zsend(sock, pack_many(out), _NOBLOCK)
            except zmq.ZMQError as e:
                raise self._send_error(p, e) from None
        p.outbox = []
        p.outbox_bytes = 0

    def _send_error(self, p: _Peer, e: zmq.ZMQError) -> Exception:
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
        await self._mesh(peers, deadline)
        return name

    # ------------------------------------------------------------------ dialling

    def _socket(self, kind: int) -> zmq.Socket:
        assert self._ctx is not None
        s = self._ctx.socket(kind)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.SNDHWM, self.hwm)
        s.setsockopt(zmq.RCVHWM, self.hwm)
        s.setsockopt(zmq.MAXMSGSIZE, self.max_message_bytes)
        ivl = max(1, int(self.heartbeat_interval * 1000))
        s.setsockopt(zmq.HEARTBEAT_IVL, ivl)
        s.setsockopt(zmq.HEARTBEAT_TIMEOUT, max(ivl, int(self.heartbeat_timeout * 1000)))
        s.setsockopt(zmq.HEARTBEAT_TTL, max(ivl, int(self.heartbeat_timeout * 1000)))
        s.setsockopt(zmq.RECONNECT_IVL, 100)
        s.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)
        return s

    async def _dial_any(
        self,
        address: str,
        expect: str | None,
        timeout: float,
    ) -> tuple[str, list[Any]]:
        """Dial ``address`` once per candidate server key; the first handshake wins."""
        trusted = self._trusted if self._secret is not None else None
        candidates = dial_candidates(self.name, address, expect, trusted, self._keys_dir)
        tasks = [asyncio.ensure_future(self._dial(address, n, k, timeout)) for n, k in candidates]
        errors: list[BaseException] = []
        try:
            for fut in asyncio.as_completed(tasks):
                try:
                    return await fut
                except (NodeDown, TimeoutError) as e:
                    errors.append(e)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        detail = "; ".join(sorted({str(e) for e in errors if str(e)}))
        hint = "" if self._secret is not None else " (if it requires CURVE, pass keys=DIR)"
        raise NodeDown(f"no handshake with {address} within {timeout:g}s{hint}" + (f": {detail}" if detail else ""))

    async def _dial(
        self,
        address: str,
        expect: str | None,
        serverkey: bytes | None,
        timeout: float,
    ) -> tuple[str, list[Any]]:
        assert self._loop is not None
        s = self._socket(zmq.DEALER)  # no ROUTING_ID: the ROUTER assigns one (see module doc)
        if serverkey is not None:
            assert self._public is not None
            assert self._secret is not None
            make_client(s, serverkey, self._public, self._secret)
        try:
            s.connect(address)
        except zmq.ZMQError as e:
            s.close(linger=0)
            raise ValueError(f"invalid address {address!r}: {e}") from e
        conn = _Conn(s, address, expect)
        self._conns.add(conn)
        if expect is not None:
            self._dialing[expect] = self._dialing.get(expect, 0) + 1
        self._loop.add_reader(conn.fd, self._drain_conn, conn)
        established = False
        try:
            s.send_multipart(
                [ESC, CTRL, handshake.hello(self.name, self.creation, self.address, self.hidden)], _NOBLOCK
            )
            self._kick_conn(conn)
            try:
                kind, payload = await asyncio.wait_for(conn.result, timeout)
            except TimeoutError:
                raise TimeoutError(f"no answer from {address} within {timeout:g}s") from None
            if kind == "welcome":
                established = True
                name, peers = payload
                return name, peers
            name, reason = payload
            if handshake.wait_after_reject(reason, name, self._peers.__contains__):
                await self._wait_up(name, timeout)
                return name, []
            raise NodeDown(f"{address} refused the handshake: {reason}")
        finally:
            if expect is not None:
                self._dialing[expect] -= 1
                if not self._dialing[expect]:
                    del self._dialing[expect]
            if not established or not any(p.conn is conn for p in self._peers.values()):
                self._close_conn(conn)

    async def _wait_up(self, name: str, timeout: float) -> None:
        if name in self._peers:
            return
        assert self._loop is not None
        fut: asyncio.Future[None] = self._loop.create_future()
        self._up_waiters.setdefault(name, []).append(fut)
        try:
            await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise TimeoutError(f"node {name!r} did not come up within {timeout:g}s") from None
        finally:
            ws = self._up_waiters.get(name)
            if ws and fut in ws:
                ws.remove(fut)

    async def _mesh(self, peers: list[Any], deadline: float) -> None:
        if self.hidden:
            return
        targets = [(n, a) for n, a in peers if n != self.name and n not in self._peers and n not in self._dialing]
        if not targets:
            return

        async def one(n: str, a: str) -> None:
            try:
                await self._dial_any(a, n, max(0.1, deadline - time.monotonic()))
            except (NodeDown, TimeoutError, ValueError) as e:
                log.info("%s: could not join peer %s at %s: %s", self.name, n, a, e)

        await asyncio.gather(*(one(n, a) for n, a in targets))

    def _close_conn(self, conn: _Conn, linger: int = 0) -> None:
        if conn.closed:
            return
        conn.closed = True
        self._conns.discard(conn)
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(conn.fd)
        self._kicked.discard(conn.fd)
        conn.sock.close(linger=linger)
        if not conn.result.done():
            conn.result.cancel()

    # ------------------------------------------------------------------ receiving

    def _kick(self, sock: zmq.Socket) -> None:
        """Re-check the ROUTER after an operation: ZeroMQ's FD only signals edges."""
        if not self._router_kicked and sock.getsockopt(_EVENTS) & _POLLIN:  # type: ignore[operator, arg-type]
            self._router_kicked = True
            self._loop.call_soon(self._drain_router)  # type: ignore[union-attr]

    def _kick_all(self) -> None:
        """After a burst of sends: send the batches, then one EVENTS check per socket."""
        self._kick_scheduled = False
        bursting, self._bursting = self._bursting, []
        for p in bursting:
            if self._peers.get(p.name) is not p:
                continue  # lost meanwhile: its queue goes with it
            if p.outbox:
                try:
                    self._flush(p)
                except Backpressure:
                    self._bursting.append(p)  # stays queued (and bounded): retry shortly
                    continue
                except NodeDown:
                    continue
            p.burst = False
        if self._bursting and not self._retry_scheduled and not self._closing:
            self._retry_scheduled = True
            self._loop.call_later(0.002, self._retry_flush)  # type: ignore[union-attr]
        if self._router is not None:
            self._kick(self._router)
        for c in self._conns:
            self._kick_conn(c)

    def _retry_flush(self) -> None:
        self._retry_scheduled = False
        if self._bursting and not self._kick_scheduled:
            self._kick_all()

    def _kick_conn(self, conn: _Conn) -> None:
        """Same as :meth:`_kick` for one of our DEALERs."""
        if (
            conn.fd not in self._kicked and not conn.closed and conn.sock.getsockopt(_EVENTS) & _POLLIN  # type: ignore[operator, arg-type]
        ):
            self._kicked.add(conn.fd)
            self._loop.call_soon(self._drain_conn, conn)  # type: ignore[union-attr]

    def _drain_router(self) -> None:
        self._router_kicked = False
        sock = self._router
        if sock is None:
            return
        handler = self._handler
        by_rid = self._by_rid
        recv = sock.recv
        more = sock.getsockopt
        self._draining = sock
        budget = _BATCH
        try:
            while budget > 0:
                budget -= 1
                # frame by frame (what recv_multipart does too), so that a control
                # payload can be kept as a zmq.Frame: it carries the CURVE User-Id
                try:
                    rid = recv(_NOBLOCK)
                except zmq.Again:
                    return
                # a ROUTER always hands over the routing id plus at least one frame
                first = recv(_NOBLOCK)
                if first:
                    frames = [first]
                    while more(_RCVMORE):
                        frames.append(recv(_NOBLOCK))
                elif more(_RCVMORE):
                    tag = recv(_NOBLOCK)
                    if tag == DATA:
                        frames = []
                        while more(_RCVMORE):
                            frames.append(recv(_NOBLOCK))
                    elif tag == MANY and more(_RCVMORE):
                        payload = recv(_NOBLOCK)
                        if more(_RCVMORE):
                            self._discard_rest(sock)
                            self._warn_garbage()
                            continue
                        p = by_rid.get(rid)
                        if p is None:
                            self._unknown_rid(rid)
                        else:
                            budget -= self._deliver_many(p, payload)
                        continue
                    elif tag == CTRL and more(_RCVMORE):
                        payload_frame = recv(_NOBLOCK, copy=False)
                        if not more(_RCVMORE):
                            self._router_control(rid, payload_frame)
                            continue
                        self._discard_rest(sock)
                        self._warn_garbage()
                        continue
                    else:
                        self._discard_rest(sock)
                        self._warn_garbage()
                        continue
                else:
                    self._warn_garbage()
                    continue
                p = by_rid.get(rid)
                if p is not None:
                    p.seen = True
                    try:
                        handler.on_message(p.name, frames)  # type: ignore[union-attr, arg-type]
                    except Exception:
                        log.exception("%s: on_message from %s raised", self.name, p.name)
                    continue
                self._unknown_rid(rid)
            self._router_kicked = True
            self._loop.call_soon(self._drain_router)  # type: ignore[union-attr]
        finally:
            self._draining = None

    def _unknown_rid(self, rid: bytes) -> None:
        self._warn("unknown", "%s: dropped data from unknown connection %r", self.name, rid[:64])
        self._reply_router(rid, RESET)

    def _deliver_many(self, p: _Peer, payload: bytes) -> int:
        """Hand a batch's messages to the handler in order; returns how many there were."""
        bodies = unpack_many(payload)
        if bodies is None:
            self._warn("garbage", "%s: dropped a malformed batch from %s", self.name, p.name)
            return 0
        p.seen = True
        on_message = self._handler.on_message  # type: ignore[union-attr]
        name = p.name
        for body in bodies:
            if type(body) is not bytes:
                self._warn("garbage", "%s: dropped a malformed message in a batch from %s", self.name, name)
                continue
            try:
                on_message(name, [body])
            except Exception:
                log.exception("%s: on_message from %s raised", self.name, name)
            if self._peers.get(name) is not p:
                break  # the handler dropped this peer: the rest is not its to deliver
        return len(bodies)

    @staticmethod
    def _discard_rest(sock: zmq.Socket) -> None:
        while sock.getsockopt(_RCVMORE):
            sock.recv(_NOBLOCK, copy=False)

    def _warn_garbage(self) -> None:
        self._warn("garbage", "%s: dropped malformed message on ROUTER", self.name)

    def _drain_conn(self, conn: _Conn) -> None:
        self._kicked.discard(conn.fd)
        if conn.closed:
            return
        sock = conn.sock
        handler = self._handler
        recv = sock.recv
        more = sock.getsockopt
        self._draining = sock
        budget = _BATCH
        try:
            while budget > 0:
                budget -= 1
                if conn.closed:
                    return
                try:
                    first = recv(_NOBLOCK)
                except zmq.Again:
                    return
                frames = [first]
                while more(_RCVMORE):
                    frames.append(recv(_NOBLOCK))
                n = len(frames)
                if first or (n >= 2 and frames[1] == DATA) or (n == 3 and frames[1] == MANY):
                    p = self._peers.get(conn.expect) if conn.expect else None
                    if p is not None and p.conn is conn:
                        if n == 3 and not first and frames[1] == MANY:
                            budget -= self._deliver_many(p, frames[2])
                            continue
                        p.seen = True
                        try:
                            handler.on_message(p.name, frames if first else frames[2:])  # type: ignore[union-attr, arg-type]
                        except Exception:
                            log.exception("%s: on_message from %s raised", self.name, p.name)
                        continue
                    self._warn(
                        "unknown",
                        "%s: dropped data from %s before its handshake",
                        self.name,
                        conn.address,
                    )
                elif n == 3 and frames[1] == CTRL:
                    self._conn_control(conn, frames[2])
                else:
                    self._warn("garbage", "%s: dropped malformed message from %s", self.name, conn.address)
            self._kicked.add(conn.fd)
            self._loop.call_soon(self._drain_conn, conn)  # type: ignore[union-attr]
        finally:
            self._draining = None

    # ------------------------------------------------------------------ control

    def _router_control(self, rid: bytes, payload: zmq.Frame) -> None:
        msg = unpack_control(payload.bytes)
        if msg is None:
            self._warn("control", "%s: dropped undecodable control message", self.name)
            return
        t = msg["t"]
        p = self._by_rid.get(rid)
        if t == "ping":
            if p is not None:
                p.seen = True
            else:
                self._reply_router(rid, RESET)
        elif t == "hello":
            self._on_hello(rid, msg, payload)
        elif t == "bye":
            if p is not None:
                self._lose(p, "closed")
        elif t == "reset":
            if p is not None:
                self._lose(p, "noconnection")
        else:
            self._warn("control", "%s: dropped unknown control message %r", self.name, t[:32])

    def _conn_control(self, conn: _Conn, raw: bytes) -> None:
        msg = unpack_control(raw)
        if msg is None:
            self._warn("control", "%s: dropped undecodable control message", self.name)
            return
        t = msg["t"]
        p = self._peers.get(conn.expect) if conn.expect else None
        mine = p is not None and p.conn is conn
        if t == "ping":
            if mine:
                p.seen = True  # type: ignore[union-attr]
        elif t == "welcome":
            self._on_welcome(conn, msg)
        elif t == "reject":
            name, reason = msg.get("name"), msg.get("reason")
            if not conn.result.done():
                conn.result.set_result(("reject", (name if isinstance(name, str) else None, str(reason)[:200])))
        elif t in ("reset", "bye"):
            if mine:
                self._lose(p, "closed" if t == "bye" else "noconnection")  # type: ignore[arg-type]
        else:
            self._warn("control", "%s: dropped unknown control message %r", self.name, t[:32])

    def _on_hello(self, rid: bytes, msg: dict[str, Any], payload: zmq.Frame) -> None:
        info = handshake.parse_info(msg)
        if info is None:
            self._warn("control", "%s: dropped malformed hello (v=%r)", self.name, msg.get("v"))
            self._reply_router(rid, handshake.reject(self.name, "bad hello or protocol version"))
            return
        if rid in self._by_rid:
            self._warn("control", "%s: dropped a second hello on %s's connection", self.name, self._by_rid[rid].name)
            return
        old = self._peers.get(info.name)
        reason = handshake.judge_hello(
            self.name,
            info,
            None if old is None else handshake.Known(old.info.creation, old.conn is not None),
            dialling_to_it=self._dialling_to(info),
            key_matches=None if self._secret is None else curve_user(payload) == self._trusted.get(info.name),
            old_path_gone=lambda: old is not None and old.rid is not None and self._router_path_gone(old.rid),
        )
        if reason is not None:
            if reason not in ("simultaneous", "duplicate"):
                self._warn("control", "%s: refused hello claiming %r: %s", self.name, info.name, reason)
            self._reply_router(rid, handshake.reject(self.name, reason))
            return
        assert self._router is not None
        peers = handshake.announce((p.info for p in self._peers.values()), exclude=info.name)
        welcome = handshake.welcome(self.name, self.creation, self.address, self.hidden, peers)
        if old is not None:
            self._lose(old, "noconnection", reconnect=False)
        if not self._reply_router(rid, welcome):
            return
        self._up(_Peer(info, self._router, rid, None))

    def _dialling_to(self, info: PeerInfo) -> bool:
        """A dial of ours to this node is in flight (not one to an address it left)."""
        return any(c.expect == info.name and c.address == info.address and not c.result.done() for c in self._conns)

    def _router_path_gone(self, rid: bytes) -> bool:
        """Probe a connection on our ROUTER: True when ZeroMQ no longer routes to it."""
        assert self._router is not None
        try:
            self._router.send_multipart([rid, ESC, CTRL, PING], _NOBLOCK)
        except zmq.ZMQError as e:
            return e.errno == zmq.EHOSTUNREACH
        return False

    def _on_welcome(self, conn: _Conn, msg: dict[str, Any]) -> None:
        info = handshake.parse_info(msg)
        if info is None or not isinstance(msg.get("peers", []), list):
            self._warn("control", "%s: malformed welcome from %s", self.name, conn.address)
            return
        if conn.result.done():
            return
        old = self._peers.get(info.name)
        known = None if old is None else handshake.Known(old.info.creation, old.conn is not None)
        action = handshake.judge_welcome(self.name, info, conn.expect, known)
        if action == "mismatch":
            conn.result.set_exception(NodeDown(f"{conn.address} answers as {info.name!r}, expected {conn.expect!r}"))
            return
        conn.expect = info.name
        if action == "switch":
            assert old is not None
            self._switch_path(old, conn)
        elif action == "up":
            if old is not None:
                self._lose(old, "noconnection", reconnect=False)
            # the address we dialled is one that reaches it from here
            info = PeerInfo(info.name, info.creation, conn.address, info.hidden)
            self._up(_Peer(info, conn.sock, None, conn))
        self._by_address[conn.address] = info.name
        conn.result.set_result(("welcome", (info.name, handshake.parse_peers(msg.get("peers", [])))))

    def _switch_path(self, p: _Peer, conn: _Conn) -> None:
        if p.rid is not None:
            self._by_rid.pop(p.rid, None)
        p.sock, p.rid, p.conn = conn.sock, None, conn

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

    def _send_control(self, p: _Peer, payload: bytes) -> bool:
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

    # ------------------------------------------------------------------ membership

    def _up(self, p: _Peer) -> None:
        self._peers[p.name] = p
        if p.rid is not None:
            self._by_rid[p.rid] = p
        if p.info.address is not None:
            self._by_address[p.info.address] = p.name
        for w in self._up_waiters.pop(p.name, []):
            if not w.done():
                w.set_result(None)
        try:
            self._handler.on_peer_up(p.name, p.info)  # type: ignore[union-attr]
        except Exception:
            log.exception("%s: on_peer_up(%s) raised", self.name, p.name)

    def _lose(self, p: _Peer, reason: str, reconnect: bool = True) -> None:
        if self._peers.get(p.name) is not p:
            return  # already lost or replaced
        del self._peers[p.name]
        if p.rid is not None and self._by_rid.get(p.rid) is p:
            del self._by_rid[p.rid]
        address = p.conn.address if p.conn is not None else p.info.address
        if p.conn is not None:
            self._close_conn(p.conn)
        log.info("%s: lost node %s (%s)", self.name, p.name, reason)
        try:
            self._handler.on_peer_down(p.name, reason)  # type: ignore[union-attr]
        except Exception:
            log.exception("%s: on_peer_down(%s) raised", self.name, p.name)
        if reconnect and address is not None and not self._closing and p.name not in self._reconnecting:
            self._spawn(self._reconnect(p.name, address))

    async def _reconnect(self, name: str, address: str) -> None:
        """Redial a lost peer with capped exponential backoff until it is up or we close."""
        self._reconnecting.add(name)
        delay = 0.05
        try:
            while not self._closing and name not in self._peers:
                if name not in self._dialing:
                    try:
                        _, peers = await self._dial_any(address, name, max(1.0, self.heartbeat_timeout))
                        await self._mesh(peers, time.monotonic() + self.heartbeat_timeout)
                        return
                    except (NodeDown, TimeoutError) as e:
                        log.debug("%s: redial %s at %s failed: %s", self.name, name, address, e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        finally:
            self._reconnecting.discard(name)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            now = time.monotonic()
            for p in list(self._peers.values()):
                if p.seen:
                    p.seen = False
                    p.last_seen = now
                elif now - p.last_seen > self.heartbeat_timeout:
                    self._lose(p, "noconnection")
                    continue
                self._send_control(p, PING)

    # ------------------------------------------------------------------ helpers

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
