"""Calls waiting for a reply: the one piece of bookkeeping every call shares.

A local call, a call to another node and a remote ``stop`` all wait the same way::

    ref, fut, timer = calls.open(timeout, target, request, peer)   # peer None: this node
    try:
        ... deliver the request, tagged with ref ...
        return await fut
    finally:
        calls.close(ref, timer, peer)

``open`` arms the timeout (``CallTimeout``, its message built only when it fires);
``close`` always forgets the call, so a late reply finds nothing and is dropped.
``complete`` answers a call; ``fail_peer`` fails every call waiting on a lost node.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict
from typing import Any

from beamrl.errors import CallTimeout, NodeDown
from beamrl.reprs import short_repr


def _timed_out(fut: asyncio.Future[Any], target: Any, timeout: float, request: Any) -> None:
    if not fut.done():
        fut.set_exception(CallTimeout(f"call to {target!r} timed out after {timeout} s: {short_repr(request, 120)}"))


class Calls:
    """The pending calls of one node: ref -> future, and the refs waiting on each peer."""

    __slots__ = ("_by_peer", "_loop", "_pending", "_refs")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._by_peer: dict[str, set[int]] = defaultdict(set)
        self._refs = itertools.count(1)

    def open(
        self, timeout: float | None, target: Any, request: Any, peer: str | None = None
    ) -> tuple[int, asyncio.Future[Any], asyncio.TimerHandle | None]:
        """A fresh ref, the future its reply completes, and the timer that fails it.

        After ``timeout`` seconds the future fails with ``CallTimeout`` (None: no timeout).
        """
        ref = next(self._refs)
        loop = self._loop
        fut = loop.create_future()
        self._pending[ref] = fut
        if peer is not None:
            self._by_peer[peer].add(ref)
        timer = None if timeout is None else loop.call_later(timeout, _timed_out, fut, target, timeout, request)
        return ref, fut, timer

    def close(self, ref: int, timer: asyncio.TimerHandle | None, peer: str | None = None) -> None:
        """Forget a call and cancel its timer (after its reply, its timeout, or a failed send)."""
        if timer is not None:
            timer.cancel()
        del self._pending[ref]
        if peer is not None:
            self._by_peer[peer].discard(ref)

    def complete(self, ref: int, value: Any, error: BaseException | None, peer: str | None = None) -> None:
        """Answer call ``ref``; a late answer, or one from a peer it did not wait on, is dropped."""
        fut = self._pending.get(ref)
        if fut is None or fut.done() or (peer is not None and ref not in self._by_peer.get(peer, ())):
            return
        if error is None:
            fut.set_result(value)
        else:
            fut.set_exception(error)

    def fail_peer(self, peer: str, reason: str) -> None:
        """Fail every call waiting on ``peer`` with ``NodeDown``."""
        for ref in self._by_peer.pop(peer, ()):
            fut = self._pending.get(ref)
            if fut is not None and not fut.done():
                fut.set_exception(NodeDown(f"node {peer!r} went down ({reason}) before replying"))
