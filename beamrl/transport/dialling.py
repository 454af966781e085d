"""Dialling: our DEALERs, the hello they send, and joining the full mesh.

``connect`` dials an address (once per candidate CURVE server key when the peer's name
is not given: the first handshake wins), waits for ``welcome`` or ``reject`` on that
connection, then dials every peer the welcome announced.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import zmq

from beamrl.errors import NodeDown
from beamrl.transport import handshake
from beamrl.transport.cookie import new_nonce
from beamrl.transport.curve import make_client
from beamrl.transport.framing import CTRL, ESC
from beamrl.transport.handshake import dial_candidates
from beamrl.transport.state import Conn, TransportState, log

_NOBLOCK = zmq.NOBLOCK
# a server that refused our key says so (AUTH); one that does not hold the key we dialled
# with cannot read our hello and drops the connection (NO_DETAIL or PROTOCOL)
_CURVE_FAILED = (
    zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
)


class Dialler(TransportState):
    """Outgoing connections: sockets, dials, waiting for a peer to come up, the mesh."""

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
        s.setsockopt(zmq.HANDSHAKE_IVL, max(1, int(self.handshake_timeout * 1000)))
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
        timed_out = any(isinstance(e, TimeoutError) for e in errors)
        hint = "" if self._secret is not None or not timed_out else " (if it requires CURVE, pass keys=DIR)"
        within = f" within {timeout:g}s" if timed_out else ""
        raise NodeDown(f"no handshake with {address}{within}{hint}" + (f": {detail}" if detail else ""))

    async def _dial(
        self,
        address: str,
        expect: str | None,
        serverkey: bytes | None,
        timeout: float,
    ) -> tuple[str, list[Any]]:
        assert self._loop is not None
        try:
            s = self._socket(zmq.DEALER)  # no ROUTING_ID: the ROUTER assigns one (see module doc)
        except zmq.ZMQError as e:  # EMFILE: out of file descriptors (or of ZeroMQ sockets)
            self._warn("socket", "%s: cannot open a socket to dial %s: %s", self.name, address, e)
            raise NodeDown(f"cannot open a socket to dial {address}: {e}") from None
        monitor = None
        if serverkey is not None:
            assert self._public is not None
            assert self._secret is not None
            make_client(s, serverkey, self._public, self._secret)
            monitor = s.get_monitor_socket(_CURVE_FAILED)
        try:
            s.connect(address)
        except zmq.ZMQError as e:
            if monitor is not None:
                monitor.close(linger=0)
            s.close(linger=0)
            raise ValueError(f"invalid address {address!r}: {e}") from e
        conn = Conn(s, address, expect)
        if monitor is not None:
            self._loop.add_reader(monitor.getsockopt(zmq.FD), self._curve_failed, conn, monitor)  # type: ignore[arg-type]
            self._curve_failed(conn, monitor)
        self._conns.add(conn)
        if expect is not None:
            self._dialing[expect] = self._dialing.get(expect, 0) + 1
        self._loop.add_reader(conn.fd, self._drain_conn, conn)
        established = False
        conn.nonce = new_nonce()
        hello = handshake.hello(self.name, self.creation, self.address, self.hidden, self._cookie, conn.nonce)
        try:
            s.send_multipart([ESC, CTRL, hello], _NOBLOCK)
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
            if reason not in ("simultaneous", "duplicate"):  # those two resolve themselves
                self._warn("refused", "%s: %s refused our hello: %s", self.name, address, reason)
            raise NodeDown(f"{address} refused the handshake: {reason}")
        finally:
            if expect is not None:
                self._dialing[expect] -= 1
                if not self._dialing[expect]:
                    del self._dialing[expect]
            if monitor is not None:
                if not self._loop.is_closed():
                    self._loop.remove_reader(monitor.getsockopt(zmq.FD))  # type: ignore[arg-type]
                if not conn.closed:
                    s.disable_monitor()
                monitor.close(linger=0)
            if not established or not any(p.conn is conn for p in self._peers.values()):
                self._close_conn(conn)

    def _curve_failed(self, conn: Conn, monitor: zmq.Socket) -> None:
        """A CURVE handshake of ``conn`` failed: say why at once, not after a timeout."""
        while True:
            try:
                frames = monitor.recv_multipart(zmq.NOBLOCK)
            except zmq.ZMQError:
                return
            if conn.result.done() or len(frames[0]) != 6:
                continue
            event = int.from_bytes(frames[0][:2], sys.byteorder)
            who = repr(conn.expect) if conn.expect else f"the node at {conn.address}"
            if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                conn.result.set_exception(
                    NodeDown(
                        f"key not trusted by {who}: it refused this node's key {self.name}.key; copy "
                        f"{self._keys_dir}/{self.name}.key into its key directory (read again within a second)"
                    )
                )
            elif conn.expect:
                conn.result.set_exception(
                    NodeDown(
                        f"the node at {conn.address} does not hold the key {self._keys_dir}/{conn.expect}.key: "
                        f"if it is not {conn.expect!r}, that is a key/name mismatch (connect without "
                        f"#{conn.expect} to learn its name); if its key changed, copy its new {conn.expect}.key"
                    )
                )

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

    def _close_conn(self, conn: Conn, linger: int = 0) -> None:
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
