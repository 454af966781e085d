"""The gate: connections on the ROUTER that have not authenticated yet, and dropping them.

ZeroMQ offers no way to close one connection of a ROUTER, and accepts any number of
them. The gate watches the ROUTER's monitor events (``ACCEPTED``/``DISCONNECTED`` carry
the connection's file descriptor) and keeps each connection *pending* until a hello on
it authenticates (``admit``, with the hello frame's ``SRCFD``). A pending connection is
dropped (``shutdown(2)`` of its socket: ZeroMQ then forgets it) when

- it has not authenticated within ``handshake_timeout`` seconds (``sweep``, called from
  the heartbeat), or
- more than ``max_pending`` connections are pending: the oldest goes first (a real peer
  says hello within milliseconds of connecting, so a flood evicts only itself), or
- its hello failed authentication (``drop``).

Until a connection authenticated, nothing is sent to it (``authenticated``): data or a
ping from a stranger gets no ``reset``, only a peer we knew on that connection does.

ZeroMQ's own ``HANDSHAKE_IVL`` (set on the sockets) drops TCP connections that never
finish ZMTP's greeting. ``ACCEPT_FAILED`` (e.g. ``EMFILE``: out of file descriptors) is
logged, rate-limited, and frees a descriptor by dropping the oldest pending connection;
ZeroMQ keeps listening and accepts again once descriptors are free.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
import struct
import time
from collections import OrderedDict

import zmq

from beamrl.ratelog import RateLimitedLog

log = logging.getLogger("beamrl.transport")

_EVENTS = zmq.EVENT_ACCEPTED | zmq.EVENT_ACCEPT_FAILED | zmq.EVENT_DISCONNECTED | zmq.EVENT_CLOSED


class Gate:
    """Pending (not yet authenticated) connections of one ROUTER; see the module docstring."""

    def __init__(self, name: str, handshake_timeout: float, max_pending: int, warn: RateLimitedLog) -> None:
        self.name = name
        self.handshake_timeout = handshake_timeout
        self.max_pending = max_pending
        self._warn = warn
        self._pending: OrderedDict[int, float] = OrderedDict()  # fd -> accepted at (monotonic)
        self._authed: dict[int, bytes] = {}  # fd -> routing id of a connection that authenticated
        self._authed_rids: dict[bytes, int] = {}  # and back
        self._monitor: zmq.Socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._port: int | None = None
        self.dropped = 0
        """Connections dropped so far (deadline, cap or failed authentication)."""
        self.accept_failures = 0
        """Connections the OS refused to accept (e.g. out of file descriptors)."""

    def watch(self, router: zmq.Socket, loop: asyncio.AbstractEventLoop) -> None:
        """Watch ``router`` (not bound yet) from ``loop``."""
        self._monitor = router.get_monitor_socket(_EVENTS)
        self._loop = loop
        loop.add_reader(self._monitor.getsockopt(zmq.FD), self._drain)  # type: ignore[arg-type]

    def listening(self, endpoint: str) -> None:
        """The router is bound to ``endpoint``: the connections it accepts arrive there."""
        self._port = _port_of(endpoint)
        self._drain()

    def close(self, router: zmq.Socket | None) -> None:
        if self._monitor is None:
            return
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._monitor.getsockopt(zmq.FD))  # type: ignore[arg-type]
        if router is not None:
            with contextlib.suppress(zmq.ZMQError):
                router.disable_monitor()
        self._monitor.close(linger=0)
        self._monitor = None

    @property
    def pending(self) -> int:
        """Connections accepted that have not authenticated yet."""
        self._drain()
        return len(self._pending)

    def admit(self, fd: int | None, rid: bytes) -> None:
        """The connection on ``fd`` (routing id ``rid``) authenticated: it is no longer pending."""
        self._drain()
        if fd is not None:
            self._pending.pop(fd, None)
            self._forget(fd)
            self._authed[fd] = rid
        self._authed_rids[rid] = -1 if fd is None else fd

    def authenticated(self, rid: bytes) -> bool:
        """Whether the connection with routing id ``rid`` ever authenticated (a stranger's did not)."""
        self._drain()
        return rid in self._authed_rids

    def _forget(self, fd: int) -> None:
        rid = self._authed.pop(fd, None)
        if rid is not None:
            self._authed_rids.pop(rid, None)

    def drop(self, fd: int | None, why: str) -> None:
        """Close the connection on ``fd`` (a hello on it failed authentication)."""
        self._drain()
        if fd is not None:
            self._pending.pop(fd, None)
            self._shutdown(fd, why)

    def sweep(self) -> None:
        """Drop the pending connections older than ``handshake_timeout``."""
        self._drain()
        limit = time.monotonic() - self.handshake_timeout
        while self._pending:
            fd, at = next(iter(self._pending.items()))
            if at > limit:
                break
            del self._pending[fd]
            self._shutdown(fd, f"no hello within {self.handshake_timeout:g}s")

    # -- internals ---------------------------------------------------------------------

    def _drain(self) -> None:
        mon = self._monitor
        if mon is None:
            return
        while True:
            try:
                frames = mon.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            except zmq.ZMQError:
                return
            if len(frames) < 1 or len(frames[0]) != 6:
                continue
            event, value = struct.unpack("=HI", frames[0])
            if event == zmq.EVENT_ACCEPTED:
                self._forget(value)
                self._pending.pop(value, None)
                self._pending[value] = time.monotonic()
                while len(self._pending) > self.max_pending:
                    fd, _ = self._pending.popitem(last=False)
                    self._shutdown(fd, f"more than {self.max_pending} connections waiting for their hello")
            elif event in (zmq.EVENT_DISCONNECTED, zmq.EVENT_CLOSED):
                self._pending.pop(value, None)
                self._forget(value)
            elif event == zmq.EVENT_ACCEPT_FAILED:
                self.accept_failures += 1
                out_of_fds = value in (errno.EMFILE, errno.ENFILE)
                hint = " (out of file descriptors: raise `ulimit -n`)" if out_of_fds else ""
                self._warn("accept", "%s: could not accept a connection: %s%s", self.name, os.strerror(value), hint)
                if out_of_fds and self._pending:  # free one: the oldest unauthenticated connection
                    fd, _ = self._pending.popitem(last=False)
                    self._shutdown(fd, "out of file descriptors")

    def _shutdown(self, fd: int, why: str) -> None:
        """Shut the TCP connection on ``fd`` down, if it still is one of our listener's."""
        try:
            sock = socket.socket(fileno=fd)  # borrows ZeroMQ's descriptor: no new one needed
        except OSError:
            return
        try:
            if self._port is not None and sock.getsockname()[1] != self._port:
                return  # the fd was reused meanwhile for something else: leave it alone
            sock.shutdown(socket.SHUT_RDWR)  # ZeroMQ sees the end of the connection and closes it
        except OSError:
            return
        finally:
            sock.detach()  # never close it: the descriptor is ZeroMQ's
        self.dropped += 1
        self._warn("dropped", "%s: dropped an unauthenticated connection: %s", self.name, why)


def _port_of(endpoint: str) -> int | None:
    """The port of a bound tcp endpoint: the local port of every connection it accepts.

    (Not the host: a wildcard bind's connections each have a concrete local address.)
    """
    transport, _, rest = endpoint.partition("://")
    if transport != "tcp":
        return None
    return int(rest.rpartition(":")[2])
