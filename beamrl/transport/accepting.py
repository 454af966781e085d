"""The handshake's listening side: a hello on our ROUTER, and the welcome on our dial.

``_on_hello`` checks the hello's proof of the cookie (plaintext) or its CURVE key, asks
``handshake.judge_hello`` whether to accept the claim, and answers ``welcome`` (or
``reject``; a hello without the cookie gets nothing and its connection is dropped by
the gate). ``_on_welcome`` checks the welcome's proof and brings the peer up over our dial.
"""

from __future__ import annotations

from typing import Any

import zmq

from beamrl.errors import NodeDown
from beamrl.transport import handshake
from beamrl.transport.base import PeerInfo
from beamrl.transport.curve import curve_user
from beamrl.transport.framing import CTRL, ESC, PING
from beamrl.transport.state import Conn, Peer, TransportState

_NOBLOCK = zmq.NOBLOCK


def _srcfd(frame: zmq.Frame) -> int | None:
    """The file descriptor of the connection ``frame`` arrived on."""
    try:
        fd = frame.get(zmq.SRCFD)
    except zmq.ZMQError:
        return None
    return fd if isinstance(fd, int) and fd >= 0 else None


class Accepting(TransportState):
    """Accepting a hello (listening side) and a welcome (dialling side)."""

    def _on_hello(self, rid: bytes, msg: dict[str, Any], payload: zmq.Frame) -> None:
        if rid in self._by_rid:
            self._warn("control", "%s: dropped a second hello on %s's connection", self.name, self._by_rid[rid].name)
            return
        nonce = b""
        if self._cookie is not None:  # first of all: a stranger gets nothing, not even a reject
            proof = handshake.hello_auth(self._cookie, msg)
            if proof is None or not self._nonces.fresh(*proof):
                why = "a hello without the cookie" if proof is None else "a replayed or stale hello"
                self._warn("auth", "%s: refused %s (claiming %r)", self.name, why, str(msg.get("name"))[:64])
                self._gate.drop(_srcfd(payload), why)
                return
            nonce = proof[0]
        self._gate.admit(_srcfd(payload), rid)
        info = handshake.parse_info(msg)
        if info is None:
            self._warn("control", "%s: dropped malformed hello (v=%r)", self.name, msg.get("v"))
            self._reply_router(rid, handshake.reject(self.name, "bad hello or protocol version"))
            return
        old = self._peers.get(info.name)
        reason = handshake.judge_hello(
            self.name,
            info,
            None if old is None else handshake.Known(old.info.creation, old.conn is not None, old.info.address),
            dialling_to_it=self._dialling_to(info),
            key_matches=None if self._secret is None else curve_user(payload) == self._trusted.get(info.name),
            old_path_gone=lambda: old is not None and old.rid is not None and self._router_path_gone(old.rid),
        )
        if reason is not None:
            if reason not in ("simultaneous", "duplicate"):
                self._warn("control", "%s: refused hello claiming %r: %s", self.name, info.name, reason)
            if old is not None and reason.startswith(f"node {info.name!r} is already connected"):
                self._send_control(old, handshake.contested(self.name, info))
            self._reply_router(rid, handshake.reject(self.name, reason))
            return
        assert self._router is not None
        peers = handshake.announce((p.info for p in self._peers.values()), exclude=info.name)
        welcome = handshake.welcome(self.name, self.creation, self.address, self.hidden, peers, self._cookie, nonce)
        if old is not None:
            self._lose(old, "noconnection", reconnect=False)
        if not self._reply_router(rid, welcome):
            return
        self._up(Peer(info, self._router, rid, None))

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

    def _on_welcome(self, conn: Conn, msg: dict[str, Any]) -> None:
        info = handshake.parse_info(msg)
        if info is None or not isinstance(msg.get("peers", []), list):
            self._warn("control", "%s: malformed welcome from %s", self.name, conn.address)
            return
        if conn.result.done():
            return
        if self._cookie is not None and not handshake.welcome_auth(self._cookie, msg, conn.nonce):
            self._warn("auth", "%s: %s answered without proof of the cookie", self.name, conn.address)
            conn.result.set_exception(
                NodeDown(f"{conn.address} did not prove it knows this node's cookie (a different cookie file?)")
            )
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
            self._up(Peer(info, conn.sock, None, conn))
        self._by_address[conn.address] = info.name
        conn.result.set_result(("welcome", (info.name, handshake.parse_peers(msg.get("peers", [])))))
