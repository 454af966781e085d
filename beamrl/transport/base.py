"""The seam between a node and the wire: what a transport offers, what it calls back.

A :class:`Transport` moves lists of frames (already encoded by the codec) between
named nodes.  The node implements :class:`TransportHandler`; the transport calls it
from the event loop, synchronously, in arrival order:

==========================  ===================================================
event                       callback
==========================  ===================================================
handshake completed         ``on_peer_up(peer, info)`` (again after a reconnect,
                            with the peer's new ``creation``)
data from an up peer        ``on_message(peer, frames)`` (in order per peer)
peer lost                   ``on_peer_down(peer, reason)``; ``reason`` is one of
                            ``"noconnection"`` (heartbeat timeout, connection
                            lost, or the peer restarted with a new creation),
                            ``"closed"`` (the peer said goodbye)
==========================  ===================================================

After ``on_peer_down`` no ``on_message`` arrives for that incarnation of the peer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

Frame = bytes | memoryview


@dataclass(frozen=True)
class TransportOptions:
    """How a node reaches and is reached by others; ``Node(...)``'s keyword arguments."""

    listen: str | None = None
    """Address to bind (``tcp://127.0.0.1:0`` picks a port); None: client-only, reachable by nobody."""
    keys: str | None = None
    """Directory with this node's CURVE key pair and the trusted peers' public keys; None: plaintext."""
    insecure: bool = False
    """Allow plaintext on a non-loopback address (only on a trusted network)."""
    heartbeat_interval: float = 0.5
    """Seconds between heartbeats to each peer."""
    heartbeat_timeout: float = 3.0
    """Seconds of silence after which a peer is declared down (``noconnection``)."""
    hwm: int = 10_000
    """ZeroMQ high-water mark per peer (messages; a batch counts as one): beyond it, Backpressure."""
    max_send_bytes: int = 64 << 20
    """Bytes sent to a peer and not yet acknowledged by it (a batch counts its bytes): beyond it, Backpressure."""
    max_message_bytes: int = 256 << 20
    """Largest message accepted from a peer (``ZMQ_MAXMSGSIZE``)."""
    hidden: bool = False
    """A hidden node is not announced to others and does not join the full mesh."""
    cookie: bytes | None = None
    """The shared secret of plaintext nodes; None: read ``cookie_file`` (ignored with ``keys``)."""
    cookie_file: str | None = None
    """Where the cookie is; None: ``$XDG_CONFIG_HOME/beamrl/cookie``, created on first use."""
    handshake_timeout: float = 5.0
    """Seconds a connection may take to authenticate (its hello) before it is dropped."""
    max_pending: int = 64
    """Most connections waiting for their hello at once; beyond it the oldest is dropped."""


@dataclass(frozen=True)
class PeerInfo:
    """What a peer told us about itself in the handshake."""

    name: str
    """The peer's node name, unique in the cluster."""
    creation: int
    """Incarnation number: a restarted node comes back with a different one."""
    address: str | None
    """Where the peer listens; ``None`` for a client-only node (no ``listen``)."""
    hidden: bool = False
    """A hidden peer is not announced to others and does not join the full mesh."""


class TransportHandler(Protocol):
    """Implemented by the node; called by the transport on the event loop."""

    def on_message(self, peer: str, frames: list[Frame]) -> None: ...

    def on_peer_up(self, peer: str, info: PeerInfo) -> None: ...

    def on_peer_down(self, peer: str, reason: str) -> None: ...


class Transport(Protocol):
    """Delivers frames between nodes; see :class:`beamrl.transport.ZmqTransport`."""

    name: str
    creation: int
    address: str | None

    async def start(self, handler: TransportHandler) -> None: ...

    async def connect(self, address: str, timeout: float = 5.0) -> str: ...

    def send(self, peer: str, frames: Sequence[Frame]) -> None: ...

    def peers(self) -> list[str]: ...

    def peer_info(self, peer: str) -> PeerInfo | None: ...

    async def close(self) -> None: ...
