"""Peers and membership, and liveness: who is up, losing a peer, heartbeats, reconnecting.

A peer is up once its handshake completed (``_up``: ``on_peer_up``) and down when it
says goodbye, resets us, becomes unreachable or stays silent for ``heartbeat_timeout``
(``_lose``: ``on_peer_down``).

Redialling: a lost peer is redialled, with capped exponential backoff, only over a path
this node dialled itself (a peer that dialled us redials us), and only at an address
this node was configured with (``connect(address)``: until it is back or the transport
closes) or learned from a welcome (for ``MESH_REDIAL`` seconds: the peer rejoins by
itself when it comes back). An address a peer merely announced is never redialled, so
a departing peer cannot point this node at an arbitrary host:port. Failed redials are
warned about at most once a second per peer, with a count.
"""

from __future__ import annotations

import asyncio
import time

from beamrl.errors import NodeDown
from beamrl.transport.base import PeerInfo
from beamrl.transport.framing import PING
from beamrl.transport.state import Conn, Peer, TransportState, log

MESH_REDIAL = 30.0  # seconds a lost peer learned from a welcome is redialled


class Membership(TransportState):
    """The peer tables' updates, the heartbeat and the redial loop."""

    def peers(self) -> list[str]:
        """Names of the peers whose handshake completed and that are not down."""
        return list(self._peers)

    def peer_info(self, peer: str) -> PeerInfo | None:
        p = self._peers.get(peer)
        return p.info if p is not None else None

    def _switch_path(self, p: Peer, conn: Conn) -> None:
        if p.rid is not None:
            self._by_rid.pop(p.rid, None)
        p.sock, p.rid, p.conn = conn.sock, None, conn

    def _up(self, p: Peer) -> None:
        p.window = self.max_send_bytes
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

    def _lose(self, p: Peer, reason: str, reconnect: bool = True) -> None:
        if self._peers.get(p.name) is not p:
            return  # already lost or replaced
        del self._peers[p.name]
        if p.rid is not None and self._by_rid.get(p.rid) is p:
            del self._by_rid[p.rid]
        address = p.conn.address if p.conn is not None else None  # only what we dialled
        for addr in [a for a, n in self._by_address.items() if n == p.name]:
            del self._by_address[addr]
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
        give_up = None if address in self._configured else time.monotonic() + MESH_REDIAL
        try:
            while not self._closing and name not in self._peers:
                if give_up is not None and time.monotonic() > give_up:
                    log.info(
                        "%s: gave up redialling %s at %s (not configured, learned from a welcome)",
                        self.name,
                        name,
                        address,
                    )
                    return
                if name not in self._dialing:
                    try:
                        _, peers = await self._dial_any(address, name, max(1.0, self.heartbeat_timeout))
                        await self._mesh(peers, time.monotonic() + self.heartbeat_timeout)
                        return
                    except (NodeDown, TimeoutError) as e:
                        self._warn(f"redial:{name}", "%s: redial of %s at %s failed: %s", self.name, name, address, e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        finally:
            self._reconnecting.discard(name)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            self._gate.sweep()
            self._watch_keys()
            now = time.monotonic()
            for p in list(self._peers.values()):
                if p.seen:
                    p.seen = False
                    p.last_seen = now
                elif now - p.last_seen > self.heartbeat_timeout:
                    self._lose(p, "noconnection")
                    continue
                self._send_control(p, PING)
                if p.rx != p.rx_acked:
                    self._ack(p)
