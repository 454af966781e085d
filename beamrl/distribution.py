"""Distribution: the remote half of every node operation.

A ``Distribution`` sits between a ``LocalNode`` and its transport and implements
``beamrl.remote.Remote``. Outgoing, it turns a call, cast, send, link, monitor, exit
signal or stop aimed at another node into one wire message (``beamrl.wire`` lists the
messages); incoming, it turns the message back into the node operation it names
(``accept_call``, ``deliver``, ``remote_link``... on the node). Bookkeeping that outlives
a message (pending calls, links and monitors across nodes) is the node's: when a peer is
lost, ``LocalNode.peer_lost`` fails its calls with ``NodeDown`` and fires its monitors
and links with reason ``noconnection``. Domain code never sees this module.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Callable
from typing import Any

from beamrl import codec, wire
from beamrl.errors import Backpressure, CodecError, NodeDown, NoProc, Rejected
from beamrl.inbound import Inbound
from beamrl.local_node import LocalNode, node_of
from beamrl.pid import Pid, Ref
from beamrl.process import CAST, INFO, From
from beamrl.ratelog import RateLimitedLog
from beamrl.reprs import short_repr
from beamrl.transport import PeerInfo, Transport, TransportOptions, ZmqTransport

log = logging.getLogger("beamrl.dist")

# Hot messages are built from pre-packed parts (msgpack is a stream format, so an array
# header followed by packed items is the packed array): kinds are constant, refs are
# packed with one struct call, pids and targets are packed once and cached. The result
# is byte-identical to encoding ``wire.to_wire(record)``.
_CALL = b"\x95" + codec.packb("call")
_REPLY = b"\x94" + codec.packb("reply")
_CAST = b"\x93" + codec.packb("cast")
#: wire kinds delivered straight to a mailbox (same fields as ``wire.Cast`` / ``wire.Send``)
_FAST_KINDS: dict[str, int] = {"cast": CAST, "send": INFO}
_SEND = b"\x93" + codec.packb("send")
_TRUE, _FALSE = codec.packb(True), codec.packb(False)
_REF = struct.Struct(">BQ")  # a msgpack uint64: 0xcf then 8 big-endian bytes
_UINT64 = 0xCF
_MAX_REF = 2**64 - 1
_CACHE_MAX = 4096


def _check_caller(kind: str, peer: str, ref: Any, caller: Any) -> None:
    if type(ref) is not int or not 0 <= ref <= _MAX_REF or type(caller) is not Pid or caller.node != peer:
        raise ValueError(f"{kind}: bad ref or caller")


class Distribution:
    """Connects a node to other nodes through a transport (ZeroMQ unless one is given)."""

    def __init__(self, node: LocalNode, options: TransportOptions, transport: Transport | None = None) -> None:
        self.node = node
        self.transport: Transport = (
            transport if transport is not None else ZmqTransport.with_options(node.name, node.creation, options)
        )
        self._tasks: set[asyncio.Task[Any]] = set()
        self._warn = RateLimitedLog(log)
        self.inbound = Inbound(codec.decode, self._dispatch, self._undecodable, self._peer_lost)
        self._packed: dict[Any, bytes] = {}  # target or pid -> its packed wire form
        self._handlers: dict[type[Any], Callable[[str, Any], None]] = {
            wire.Call: self._on_call,
            wire.Reply: self._on_reply,
            wire.Cast: self._on_cast,
            wire.Send: self._on_send,
            wire.ExitSignal: self._on_exit,
            wire.Link: self._on_link,
            wire.Unlink: self._on_unlink,
            wire.Monitor: self._on_monitor,
            wire.Demonitor: self._on_demonitor,
            wire.DownSignal: self._on_down,
            wire.Stop: self._on_stop,
        }

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        await self.transport.start(self)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self.inbound.close()
        await self.transport.close()

    @property
    def address(self) -> str | None:
        return self.transport.address

    async def connect(self, address: str, timeout: float) -> str:
        return await self.transport.connect(address, timeout)

    def peers(self) -> list[str]:
        return list(self.transport.peers())

    def connected(self, peer: str) -> bool:
        return peer in self.transport.peers()

    # -- sending --------------------------------------------------------------------------

    def _send(self, peer: str, message: wire.Message) -> None:
        """Encode and send; raises NodeDown, Backpressure or CodecError."""
        self.transport.send(peer, codec.encode(wire.to_wire(message)))

    def _signal(self, peer: str, message: wire.Message) -> None:
        """Send a signal (exit, down, link...); a lost or full peer is logged, not raised."""
        try:
            self._send(peer, message)
        except (NodeDown, Backpressure, CodecError) as exc:
            kind = wire.to_wire(message)[0]
            self._warn(f"signal:{peer}", "%s signal to node %r lost: %s", kind, peer, exc)

    def _packed_target(self, target: Any) -> bytes:
        """The packed wire form of a remote target or pid, cached.

        ``(name, node)`` travels as ``name``: it goes to ``node``, which looks a plain
        name up in its own registry, so the node part would only be read and dropped.
        """
        packed = self._packed.get(target)
        if packed is None:
            packed = codec.packb(target[0] if type(target) is tuple else target)
            if len(self._packed) >= _CACHE_MAX:
                self._packed.clear()
            self._packed[target] = packed
        return packed

    def call(self, ref: int, caller: Pid, target: Any, request: Any) -> None:
        packed = self._packed
        head = b"".join(
            (
                _CALL,
                _REF.pack(_UINT64, ref),
                packed.get(caller) or self._packed_target(caller),
                packed.get(target) or self._packed_target(target),
            )
        )
        self.transport.send(node_of(target), codec.encode_with_head(head, request))

    def cast(self, target: Any, request: Any) -> None:
        peer = node_of(target)
        try:
            head = _CAST + (self._packed.get(target) or self._packed_target(target))
            self.transport.send(peer, codec.encode_with_head(head, request))
        except NodeDown:
            return  # cast never fails: like Erlang, a message to a lost node is lost
        except Backpressure as exc:
            self._warn(f"bp:{peer}", "cast to %s dropped: %s", short_repr(target), exc)
        except CodecError as exc:
            self._warn(f"codec:{peer}", "cast to %s dropped: %s", short_repr(target), exc)

    def send(self, target: Any, message: Any) -> None:
        try:
            head = _SEND + (self._packed.get(target) or self._packed_target(target))
            self.transport.send(node_of(target), codec.encode_with_head(head, message))
        except NodeDown:
            return  # a message to a lost node is lost, as a message to a dead pid is

    def reply(self, from_: From, value: Any, error: BaseException | None) -> None:
        peer = from_.pid.node
        ref = _REF.pack(_UINT64, from_.ref)
        try:
            if error is None:
                try:
                    frames = codec.encode_with_head(_REPLY + ref + _TRUE, value)
                except CodecError as exc:
                    error = CodecError(f"the reply could not be encoded: {exc}")
                else:
                    self.transport.send(peer, frames)
                    return
            self.transport.send(peer, codec.encode_with_head(_REPLY + ref + _FALSE, error))
        except (NodeDown, Backpressure, CodecError) as exc:
            self._warn(f"reply:{peer}", "reply to %s lost: %s", from_.pid, exc)

    def stop(self, ref: int, caller: Pid, target: Any, reason: Any, timeout: float | None) -> None:
        self._send(node_of(target), wire.Stop(ref, caller, target, reason, timeout))

    def exit(self, sender: Pid, target: Any, reason: Any, is_link: bool) -> None:
        self._signal(node_of(target), wire.ExitSignal(sender, target, reason, is_link))

    def link(self, sender: Pid, target: Pid) -> None:
        self._signal(target.node, wire.Link(sender, target))

    def unlink(self, sender: Pid, target: Pid) -> None:
        self._signal(target.node, wire.Unlink(sender, target))

    def monitor(self, watcher: Pid, ref: Ref, target: Any) -> None:
        self._signal(node_of(target), wire.Monitor(watcher, ref, target))

    def demonitor(self, ref: Ref, target: Any) -> None:
        self._signal(node_of(target), wire.Demonitor(ref, target))

    def down(self, watcher: Pid, ref: Ref, pid: Any, reason: Any) -> None:
        self._signal(watcher.node, wire.DownSignal(watcher, ref, pid, reason))

    # -- receiving (TransportHandler) ---------------------------------------------------

    def on_message(self, peer: str, frames: list[Any]) -> None:
        self.inbound.message(peer, frames)  # decoded now, or in order off the loop (big bodies)

    def _undecodable(self, peer: str, frames: list[Any], exc: CodecError) -> None:
        self._warn(f"decode:{peer}", "dropped an undecodable message from node %r: %s", peer, exc)
        if not frames:
            return
        try:  # a refused call still names its caller: tell it now rather than let it time out
            kind, ref, caller = codec.unpack_head(frames[0], 3)
            if kind != "call":
                return
            _check_caller("call", peer, ref, caller)
        except (CodecError, ValueError):
            return
        self.reply(From(caller, ref), None, CodecError(f"node {self.node.name!r} refused the call: {exc}"))

    def _dispatch(self, peer: str, value: Any) -> None:
        head = value[0] if type(value) is list and len(value) == 3 else None
        if type(head) is str and (kind := _FAST_KINDS.get(head)) is not None:
            try:  # the hot path (casts, sends) without building a record: ~0.5 µs less CPU a message
                self.node.deliver(value[1], kind, value[2])
            except Exception as exc:  # the wire boundary, as below
                self._warn(f"bad:{peer}", "dropped a bad %s message from node %r: %s", head, peer, exc)
            return
        try:
            message = wire.from_wire(value)
            handler = self._handlers[type(message)]
        except ValueError as exc:
            self._warn(f"shape:{peer}", "dropped a malformed message from node %r: %s", peer, exc)
            return
        try:
            handler(peer, message)
        except Exception as exc:  # the wire boundary: bad input from a peer must not take the node down
            self._warn(f"bad:{peer}", "dropped a bad %s message from node %r: %s", short_repr(value[0]), peer, exc)

    def _on_call(self, peer: str, m: wire.Call) -> None:
        _check_caller("call", peer, m.ref, m.caller)
        from_ = From(m.caller, m.ref)
        try:
            accepted = self.node.accept_call(from_, m.target, m.request)
        except Backpressure as exc:  # its mailbox is full
            self.reply(from_, None, exc)
            return
        if not accepted:
            target = m.target
            what = f"{target} is not alive" if type(target) is Pid else f"no process {target!r}"
            self.reply(from_, None, NoProc(f"{what} on node {self.node.name!r}"))

    def _on_reply(self, peer: str, m: wire.Reply) -> None:
        calls = self.node.calls
        if m.ok:
            calls.complete(m.ref, m.value, None, peer)
        elif isinstance(m.value, BaseException):
            calls.complete(m.ref, None, m.value, peer)
        else:
            error = Rejected(f"node {peer!r} answered with a malformed error: {short_repr(m.value)}")
            calls.complete(m.ref, None, error, peer)

    def _on_cast(self, peer: str, m: wire.Cast) -> None:
        self.node.deliver(m.target, CAST, m.request)

    def _on_send(self, peer: str, m: wire.Send) -> None:
        self.node.deliver(m.target, INFO, m.message)

    def _on_exit(self, peer: str, m: wire.ExitSignal) -> None:
        self.node.remote_exit(peer, m.sender, m.target, m.reason, m.is_link)

    def _on_link(self, peer: str, m: wire.Link) -> None:
        if type(m.sender) is not Pid or m.sender.node != peer:
            raise ValueError("link: bad sender")
        if not self.node.remote_link(peer, m.sender, m.target):
            self._signal(peer, wire.ExitSignal(m.target, m.sender, "noproc", True))

    def _on_unlink(self, peer: str, m: wire.Unlink) -> None:
        self.node.remote_unlink(peer, m.sender, m.target)

    def _on_monitor(self, peer: str, m: wire.Monitor) -> None:
        if type(m.watcher) is not Pid or m.watcher.node != peer or type(m.ref) is not Ref:
            raise ValueError("monitor: bad watcher or ref")
        if not self.node.remote_monitor(peer, m.watcher, m.ref, m.target):
            self._signal(peer, wire.DownSignal(m.watcher, m.ref, m.target, "noproc"))

    def _on_demonitor(self, peer: str, m: wire.Demonitor) -> None:
        self.node.remote_demonitor(peer, m.ref)

    def _on_down(self, peer: str, m: wire.DownSignal) -> None:
        self.node.remote_down(peer, m.watcher, m.ref, m.pid, m.reason)

    def _on_stop(self, peer: str, m: wire.Stop) -> None:
        _check_caller("stop", peer, m.ref, m.caller)
        if m.timeout is not None and not isinstance(m.timeout, int | float):
            raise ValueError("stop: bad timeout")
        self._stop_for(From(m.caller, m.ref), m.target, m.reason, m.timeout)

    def _stop_for(self, from_: From, target: Any, reason: Any, timeout: float | None) -> None:
        async def stop_and_reply() -> None:
            try:
                await self.node.stop(target, reason, timeout)
            except (NoProc, TypeError, ValueError) as exc:
                self.reply(from_, None, exc if isinstance(exc, NoProc) else NoProc(str(exc)))
            except Exception as exc:  # a task boundary: whatever went wrong goes back to the caller
                self.reply(from_, None, exc)
            else:
                self.reply(from_, None, None)

        task = asyncio.get_running_loop().create_task(stop_and_reply())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def on_peer_up(self, peer: str, info: PeerInfo) -> None:
        log.info("node %r connected to %r (%s)", self.node.name, peer, info.address or "client-only")
        self.node.events.record("node_up", f"node {peer!r} is up", peer=peer, address=info.address)

    def on_peer_down(self, peer: str, reason: str) -> None:
        self.inbound.peer_down(peer, reason)  # after the messages it sent before, still decoding

    def _peer_lost(self, peer: str, reason: str) -> None:
        level = logging.INFO if reason == "closed" else logging.WARNING
        log.log(level, "node %r lost node %r (%s)", self.node.name, peer, reason)
        self.node.events.record("node_down", f"node {peer!r} is down ({reason})", peer=peer, reason=reason)
        self.node.peer_lost(peer, reason)
