"""Receiving: draining the ROUTER and our DEALERs, and dispatching control messages.

Receiving does not go through ``zmq.asyncio`` futures: each socket's FD is registered
with ``loop.add_reader`` and drained with non-blocking ``recv`` calls (bounded batches;
after any send the socket's ``EVENTS`` are re-checked, ``_kick``, because ZeroMQ's FD is
edge-triggered). This halves per-message overhead compared with awaiting
``recv_multipart`` futures. Data goes to the handler's ``on_message`` in arrival order;
control messages go to the handshake (``hello``/``welcome``) or to membership.
"""

from __future__ import annotations

from typing import Any

import zmq

from beamrl.errors import Backpressure, NodeDown
from beamrl.transport.framing import CTRL, DATA, MANY, RESET, nbytes, unpack_control, unpack_many
from beamrl.transport.state import Conn, Peer, TransportState, log

_BATCH = 256  # messages drained per reader callback before yielding to the loop
_NOBLOCK = zmq.NOBLOCK
_POLLIN = zmq.POLLIN
_EVENTS = zmq.EVENTS
_RCVMORE = zmq.RCVMORE


class Receiver(TransportState):
    """The reader callbacks of the transport's sockets."""

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

    def _kick_conn(self, conn: Conn) -> None:
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
                    p.rx += len(frames[0]) if len(frames) == 1 else nbytes(frames)
                    if p.rx - p.rx_acked >= self._ack_every:
                        self._ack(p)
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
        """Data or a ping on a connection we do not know (any more)."""
        if not self._gate.authenticated(rid):
            self._warn("unknown", "%s: dropped data from an unauthenticated connection", self.name)
            return  # a stranger gets nothing back
        self._warn("unknown", "%s: dropped data from unknown connection %r", self.name, rid[:64])
        self._reply_router(rid, RESET)  # a peer we dropped: it redials

    def _deliver_many(self, p: Peer, payload: bytes) -> int:
        """Hand a batch's messages to the handler in order; returns how many there were."""
        bodies = unpack_many(payload)
        if bodies is None:
            self._warn("garbage", "%s: dropped a malformed batch from %s", self.name, p.name)
            return 0
        p.seen = True
        p.rx += len(payload)
        if p.rx - p.rx_acked >= self._ack_every:
            self._ack(p)
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

    def _drain_conn(self, conn: Conn) -> None:
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
                        data = frames if first else frames[2:]
                        p.rx += len(data[0]) if len(data) == 1 else nbytes(data)
                        if p.rx - p.rx_acked >= self._ack_every:
                            self._ack(p)
                        try:
                            handler.on_message(p.name, data)  # type: ignore[union-attr, arg-type]
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
                self._unknown_rid(rid)
        elif t == "ack":
            self._on_ack(p, msg)
        elif t == "hello":
            self._on_hello(rid, msg, payload)
        elif t == "bye":
            if p is not None:
                self._lose(p, "closed")
        elif t == "reset":
            if p is not None:
                self._lose(p, "noconnection")
        elif t == "contested":
            if p is not None:
                self._contested(msg)
        else:
            self._warn("control", "%s: dropped unknown control message %r", self.name, t[:32])

    def _contested(self, msg: dict[str, Any]) -> None:
        """A peer refused another node that claimed our name: say so here too."""
        self._warn(
            "contested",
            "%s: node %s refused another node claiming our name (at %s, creation %s): two nodes named %r?",
            self.name,
            str(msg.get("at"))[:64],
            str(msg.get("address"))[:128],
            str(msg.get("creation"))[:24],
            self.name,
        )

    def _conn_control(self, conn: Conn, raw: bytes) -> None:
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
        elif t == "ack":
            self._on_ack(p if mine else None, msg)
        elif t == "welcome":
            self._on_welcome(conn, msg)
        elif t == "reject":
            name, reason = msg.get("name"), msg.get("reason")
            if not conn.result.done():
                conn.result.set_result(("reject", (name if isinstance(name, str) else None, str(reason)[:200])))
        elif t in ("reset", "bye"):
            if mine:
                self._lose(p, "closed" if t == "bye" else "noconnection")  # type: ignore[arg-type]
        elif t == "contested":
            if mine:
                self._contested(msg)
        else:
            self._warn("control", "%s: dropped unknown control message %r", self.name, t[:32])
