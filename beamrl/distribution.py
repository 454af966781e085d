"""Distribution: the remote half of every node operation.

A ``Distribution`` sits between a ``Node`` and its transport. Outgoing, it
turns a call, cast, send, link, monitor, exit signal or stop aimed at another
node into one wire message; incoming, it performs the same operation on the
local process the message names. Domain code never sees it: the node decides.

Wire messages are codec-encoded lists whose first item names the operation (a target
``(name, node)`` travels as ``name``: the receiving node is ``node``)::

    ["call", ref, caller, target, request]          ["reply", ref, ok, value]
    ["cast", target, request]                        ["send", target, message]
    ["exit", sender, target, reason, is_link]        ["link", sender, target]
    ["unlink", sender, target]                       ["monitor", watcher, ref, target]
    ["demonitor", ref, target]                       ["down", watcher, ref, pid, reason]
    ["stop", ref, caller, target, reason, timeout]

When a peer is lost every call waiting on it fails with ``NodeDown``, every
monitor on its processes fires ``Down(reason="noconnection")`` and every link
to them delivers an exit signal with reason ``noconnection``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import struct
import time
from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from beamrl import codec
from beamrl.errors import Backpressure, CallTimeout, CodecError, NodeDown, NoProc, Rejected
from beamrl.node import call_timed_out, node_of
from beamrl.pid import Pid, Ref
from beamrl.process import CALL, CAST, INFO, From, Process

if TYPE_CHECKING:
    from beamrl.node import Node
    from beamrl.transport.base import PeerInfo

log = logging.getLogger("beamrl.dist")

# Hot messages are built from pre-packed parts (msgpack is a stream format, so an array
# header followed by packed items is the packed array): kinds are constant, refs are
# packed with one struct call, pids and targets are packed once and cached.
_CALL = b"\x95" + codec.packb("call")
_REPLY = b"\x94" + codec.packb("reply")
_CAST = b"\x93" + codec.packb("cast")
_SEND = b"\x93" + codec.packb("send")
_TRUE, _FALSE = codec.packb(True), codec.packb(False)
_REF = struct.Struct(">BQ")  # a msgpack uint64: 0xcf then 8 big-endian bytes
_UINT64 = 0xCF
_MAX_REF = 2**64 - 1
_CACHE_MAX = 4096


def _fail(fut: asyncio.Future[Any], exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)


class _Throttle:
    """Log a repeated problem at most once a second, with how often it happened."""

    def __init__(self) -> None:
        self._last: dict[str, float] = {}
        self._count: dict[str, int] = defaultdict(int)

    def __call__(self, key: str, fmt: str, *args: Any) -> None:
        self._count[key] += 1
        now = time.monotonic()
        if now - self._last.get(key, 0.0) >= 1.0:
            count = self._count.pop(key)
            self._last[key] = now
            log.warning(fmt + (f" ({count} times in the last second)" if count > 1 else ""), *args)


class Distribution:
    """Connects a node to other nodes through a transport (ZeroMQ by default)."""

    def __init__(self, node: Node, transport: Any = None) -> None:
        self.node = node
        if transport is None:
            from beamrl.transport import ZmqTransport

            transport = ZmqTransport(
                node.name,
                node.creation,
                listen=node._listen,
                keys=None if node._keys is None else os.fspath(node._keys),
                insecure=node._insecure,
                heartbeat_interval=node._heartbeat_interval,
                heartbeat_timeout=node._heartbeat_timeout,
                hidden=node._hidden,
            )
        self.transport = transport
        self._calls: dict[str, set[int]] = defaultdict(set)  # peer -> refs of calls waiting on it
        # peer -> ref -> (local watcher, remote target)
        self._monitors_out: dict[str, dict[Ref, tuple[Pid, Any]]] = defaultdict(dict)
        self._monitors_in: dict[str, dict[Ref, Pid]] = defaultdict(dict)  # peer -> ref -> local target
        self._links: dict[str, set[tuple[Pid, Pid]]] = defaultdict(set)  # peer -> (local, remote)
        self._serving: dict[From, Process] = {}  # remote calls delivered to local processes
        self._tasks: set[asyncio.Task[Any]] = set()
        self._warn = _Throttle()
        self._packed: dict[Any, bytes] = {}  # target or pid -> its packed wire form
        self._dispatch: dict[str, Callable[..., None]] = {
            "call": self._in_call,
            "reply": self._in_reply,
            "cast": self._in_cast,
            "send": self._in_send,
            "exit": self._in_exit,
            "link": self._in_link,
            "unlink": self._in_unlink,
            "monitor": self._in_monitor,
            "demonitor": self._in_demonitor,
            "down": self._in_down,
            "stop": self._in_stop,
        }

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        await self.transport.start(self)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.transport.close()

    @property
    def address(self) -> str | None:
        address: str | None = self.transport.address
        return address

    async def connect(self, address: str, timeout: float) -> str:
        name: str = await self.transport.connect(address, timeout)
        return name

    def peers(self) -> list[str]:
        return list(self.transport.peers())

    # -- sending --------------------------------------------------------------------------

    def _send(self, peer: str, message: list[Any]) -> None:
        """Encode and send; raises NodeDown, Backpressure or CodecError."""
        self.transport.send(peer, codec.encode(message))

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

    async def call(self, caller: Pid, target: Any, request: Any, timeout: float | None) -> Any:
        node = self.node
        peer = node_of(target)
        ref = next(node._refs)
        fut: asyncio.Future[Any] = node._loop.create_future()
        node._pending[ref] = fut
        waiting = self._calls[peer]
        waiting.add(ref)
        handle = None
        try:
            packed = self._packed
            head = b"".join(
                (
                    _CALL,
                    _REF.pack(_UINT64, ref),
                    packed.get(caller) or self._packed_target(caller),
                    packed.get(target) or self._packed_target(target),
                )
            )
            self.transport.send(peer, codec.encode_with_head(head, request))
            if timeout is not None:
                handle = node._loop.call_later(timeout, call_timed_out, fut, target, timeout, request)
            return await fut
        finally:
            if handle is not None:
                handle.cancel()
            del node._pending[ref]
            waiting.discard(ref)

    def cast(self, target: Any, request: Any) -> None:
        peer = node_of(target)
        try:
            head = _CAST + (self._packed.get(target) or self._packed_target(target))
            self.transport.send(peer, codec.encode_with_head(head, request))
        except NodeDown:
            return  # cast never fails: like Erlang, a message to a lost node is lost
        except Backpressure as exc:
            self._warn(f"bp:{peer}", "cast to %r dropped: %s", target, exc)
        except CodecError as exc:
            self._warn(f"codec:{peer}", "cast to %r dropped: %s", target, exc)

    def send(self, target: Any, message: Any) -> None:
        try:
            head = _SEND + (self._packed.get(target) or self._packed_target(target))
            self.transport.send(node_of(target), codec.encode_with_head(head, message))
        except NodeDown:
            return  # a message to a lost node is lost, as a message to a dead pid is

    def reply(self, from_: From, value: Any, error: BaseException | None) -> None:
        proc = self._serving.pop(from_, None)
        if proc is not None:
            proc._inbound.discard(from_)
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

    def _signal(self, peer: str, message: list[Any]) -> None:
        """Send a signal (exit, down, link...); a lost or full peer is logged, not raised."""
        try:
            self._send(peer, message)
        except (NodeDown, Backpressure, CodecError) as exc:
            self._warn(f"signal:{peer}", "%s signal to node %r lost: %s", message[0], peer, exc)

    def exit_signal(self, sender: Pid, target: Any, reason: Any) -> None:
        self._signal(node_of(target), ["exit", sender, target, reason, False])

    def link_exit(self, sender: Pid, target: Pid, reason: Any) -> None:
        self._links[target.node].discard((sender, target))
        self._signal(target.node, ["exit", sender, target, reason, True])

    def link(self, me: Process, target: Any) -> None:
        peer = node_of(target)
        if type(target) is not Pid:
            raise TypeError(f"link to a process on another node takes its Pid, got {target!r}")
        if peer not in self.transport.peers():
            me._exit_signal(target, "noconnection")
            return
        me._links.add(target)
        self._links[peer].add((me.pid, target))
        self._signal(peer, ["link", me.pid, target])

    def unlink(self, me: Pid, target: Any) -> None:
        if type(target) is Pid:
            self._links[target.node].discard((me, target))
            self._signal(target.node, ["unlink", me, target])

    def monitor(self, watcher: Pid, ref: Ref, target: Any) -> None:
        peer = node_of(target)
        if peer not in self.transport.peers():
            self.node._deliver_down(watcher, ref, target, "noconnection")
            return
        self._monitors_out[peer][ref] = (watcher, target)
        self._signal(peer, ["monitor", watcher, ref, target])

    def demonitor(self, watcher: Pid, ref: Ref, target: Any) -> None:
        peer = node_of(target)
        if self._monitors_out[peer].pop(ref, None) is not None:
            self._signal(peer, ["demonitor", ref, target])

    def down(self, watcher: Pid, ref: Ref, pid: Any, reason: Any) -> None:
        self._monitors_in[watcher.node].pop(ref, None)
        self._signal(watcher.node, ["down", watcher, ref, pid, reason])

    async def stop(self, target: Any, reason: Any, timeout: float | None) -> None:
        node = self.node
        caller = node._caller().pid
        peer = node_of(target)
        ref = next(node._refs)
        fut: asyncio.Future[Any] = node._loop.create_future()
        node._pending[ref] = fut
        self._calls[peer].add(ref)
        try:
            self._send(peer, ["stop", ref, caller, target, reason, timeout])
            if timeout is None:
                await fut
            else:  # the peer kills after `timeout`; a lost answer must not leave us waiting forever
                try:
                    await asyncio.wait_for(fut, timeout + 5.0)
                except TimeoutError:
                    raise CallTimeout(f"node {peer!r} did not confirm the stop of {target!r}") from None
        finally:
            del node._pending[ref]
            self._calls[peer].discard(ref)

    # -- receiving ------------------------------------------------------------------------

    def on_message(self, peer: str, frames: list[Any]) -> None:
        try:
            message = codec.decode(frames)
        except CodecError as exc:
            self._warn(f"decode:{peer}", "dropped an undecodable message from node %r: %s", peer, exc)
            return
        if type(message) is not list or not message or type(message[0]) is not str:
            self._warn(f"shape:{peer}", "dropped a malformed message from node %r", peer)
            return
        handler = self._dispatch.get(message[0])
        if handler is None:
            self._warn(f"kind:{peer}", "dropped a message of unknown kind %r from node %r", message[0], peer)
            return
        try:
            handler(peer, *message[1:])
        except Exception as exc:  # the wire boundary: bad input from a peer must not take the node down
            self._warn(f"bad:{peer}", "dropped a bad %r message from node %r: %s", message[0], peer, exc)

    def _local(self, target: Any) -> Process | None:
        """The live local process for a target named by a peer, None when there is none."""
        if type(target) is str:  # a registered name: how (name, node) targets travel
            proc = self.node._names.get(target)
            return proc if proc is not None and proc._alive else None
        try:
            proc = self.node._local(target)
        except (NoProc, TypeError):
            return None
        return proc if proc is not None and proc._alive else None

    def _in_call(self, peer: str, ref: int, caller: Pid, target: Any, request: Any) -> None:
        if type(ref) is not int or not 0 <= ref <= _MAX_REF or type(caller) is not Pid or caller.node != peer:
            raise ValueError("call: bad ref or caller")
        from_ = From(caller, ref)
        proc = self._local(target)
        if proc is None:
            self.reply(from_, None, NoProc(f"no process {target!r} on node {self.node.name!r}"))
            return
        proc._inbound.add(from_)
        self._serving[from_] = proc
        proc._deliver((CALL, request, from_))

    def _in_reply(self, peer: str, ref: int, ok: bool, value: Any) -> None:
        fut = self.node._pending.get(ref)
        if fut is None or fut.done() or ref not in self._calls[peer]:
            return  # late, or not ours from this peer
        if ok:
            fut.set_result(value)
        elif isinstance(value, BaseException):
            fut.set_exception(value)
        else:
            fut.set_exception(Rejected(f"node {peer!r} answered with a malformed error: {value!r}"))

    def _in_cast(self, peer: str, target: Any, request: Any) -> None:
        proc = self._local(target)
        if proc is not None:
            proc._deliver((CAST, request, None))

    def _in_send(self, peer: str, target: Any, message: Any) -> None:
        proc = self._local(target)
        if proc is not None:
            proc._deliver((INFO, message, None))

    def _in_exit(self, peer: str, sender: Pid, target: Any, reason: Any, is_link: bool) -> None:
        proc = self._local(target)
        if proc is None:
            return
        if is_link:
            if sender not in proc._links:
                return  # unlinked meanwhile: OTP delivers no link exit after unlink
            proc._links.discard(sender)
            self._links[peer].discard((proc.pid, sender))
        proc._exit_signal(sender, reason)

    def _in_link(self, peer: str, sender: Pid, target: Any) -> None:
        if type(sender) is not Pid or sender.node != peer:
            raise ValueError("link: bad sender")
        proc = self._local(target)
        if proc is None:
            self._signal(peer, ["exit", target, sender, "noproc", True])
            return
        proc._links.add(sender)
        self._links[peer].add((proc.pid, sender))

    def _in_unlink(self, peer: str, sender: Pid, target: Any) -> None:
        proc = self._local(target)
        if proc is not None:
            proc._links.discard(sender)
            self._links[peer].discard((proc.pid, sender))

    def _in_monitor(self, peer: str, watcher: Pid, ref: Ref, target: Any) -> None:
        if type(watcher) is not Pid or watcher.node != peer or type(ref) is not Ref:
            raise ValueError("monitor: bad watcher or ref")
        proc = self._local(target)
        if proc is None:
            self._signal(peer, ["down", watcher, ref, target, "noproc"])
            return
        proc._watchers[ref] = watcher
        self._monitors_in[peer][ref] = proc.pid

    def _in_demonitor(self, peer: str, ref: Ref, target: Any) -> None:
        pid = self._monitors_in[peer].pop(ref, None)
        if pid is not None:
            proc = self.node._procs.get(pid.id)
            if proc is not None:
                proc._watchers.pop(ref, None)

    def _in_down(self, peer: str, watcher: Pid, ref: Ref, pid: Any, reason: Any) -> None:
        if self._monitors_out[peer].pop(ref, None) is not None:
            self.node._deliver_down(watcher, ref, pid, reason)

    def _in_stop(self, peer: str, ref: int, caller: Pid, target: Any, reason: Any, timeout: Any) -> None:
        if type(ref) is not int or not 0 <= ref <= _MAX_REF or type(caller) is not Pid or caller.node != peer:
            raise ValueError("stop: bad ref or caller")
        from_ = From(caller, ref)
        if timeout is not None and not isinstance(timeout, int | float):
            raise ValueError("stop: bad timeout")

        async def stop_and_reply() -> None:
            try:
                await self.node.stop(target, reason, timeout)
            except (NoProc, TypeError, ValueError) as exc:
                self.reply(from_, None, exc if isinstance(exc, NoProc) else NoProc(str(exc)))
            except Exception as exc:  # a task boundary: whatever went wrong goes back to the caller
                self.reply(from_, None, exc)
            else:
                self.reply(from_, None, None)

        task = self.node._loop.create_task(stop_and_reply())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- membership -----------------------------------------------------------------------

    def on_peer_up(self, peer: str, info: PeerInfo) -> None:
        log.info("node %r connected to %r (%s)", self.node.name, peer, info.address or "client-only")
        self.node.events.record("node_up", f"node {peer!r} is up", peer=peer, address=info.address)  # [dashboard]

    def on_peer_down(self, peer: str, reason: str) -> None:
        level = logging.INFO if reason == "closed" else logging.WARNING
        log.log(level, "node %r lost node %r (%s)", self.node.name, peer, reason)
        # [dashboard] the event log
        self.node.events.record("node_down", f"node {peer!r} is down ({reason})", peer=peer, reason=reason)
        node = self.node
        for call_ref in list(self._calls.pop(peer, ())):
            fut = node._pending.get(call_ref)
            if fut is not None:
                _fail(fut, NodeDown(f"node {peer!r} went down ({reason}) before replying"))
        for ref, (watcher, target) in list(self._monitors_out.pop(peer, {}).items()):
            node._deliver_down(watcher, ref, target, "noconnection")
        for local, remote in list(self._links.pop(peer, ())):
            proc = node._procs.get(local.id)
            if proc is not None and remote in proc._links:
                proc._links.discard(remote)
                proc._exit_signal(remote, "noconnection")
        for ref, pid in list(self._monitors_in.pop(peer, {}).items()):
            proc = node._procs.get(pid.id)
            if proc is not None:
                proc._watchers.pop(ref, None)
        for from_ in [f for f in self._serving if f.pid.node == peer]:
            served = self._serving.pop(from_, None)
            if served is not None:
                served._inbound.discard(from_)  # nobody is left to answer
