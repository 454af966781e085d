"""Calls waiting for a reply: the one piece of bookkeeping every call shares.

A local call, a call to another node and a remote ``stop`` all wait the same way::

    ref, fut = calls.open(peer)        # peer: the node that must answer (None: this one)
    ... deliver the request, tagged with ref ...
    value = await calls.result(ref, fut, timeout, target, request, peer)

``result`` arms the timeout (``CallTimeout``, its message built only when it fires),
waits, and always forgets the call, so a late reply finds nothing and is dropped.
``complete`` answers a call; ``fail_peer`` fails every call waiting on a lost node.
"""

from __future__ import annotations

import asyncio
import itertools
import reprlib
from collections import defaultdict
from typing import Any

from beamrl.errors import CallTimeout, NodeDown

_short = reprlib.Repr()
_short.maxstring = _short.maxother = 80


def _timed_out(fut: asyncio.Future[Any], target: Any, timeout: float, request: Any) -> None:
    if not fut.done():
        fut.set_exception(CallTimeout(f"call to {target!r} timed out after {timeout} s: {_short.repr(request)}"))


class Calls:
    """The pending calls of one node: ref -> future, and the refs waiting on each peer."""

    __slots__ = ("_by_peer", "_loop", "_pending", "_refs")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._by_peer: dict[str, set[int]] = defaultdict(set)
        self._refs = itertools.count(1)

    def open(self, peer: str | None = None) -> tuple[int, asyncio.Future[Any]]:
        """A fresh ref and the future its reply will complete."""
        ref = next(self._refs)
        fut = self._loop.create_future()
        self._pending[ref] = fut
        if peer is not None:
            self._by_peer[peer].add(ref)
        return ref, fut

    def close(self, ref: int, peer: str | None = None) -> None:
        """Forget a call (``result`` does this; a sender whose send failed calls it)."""
        del self._pending[ref]
        if peer is not None:
            self._by_peer[peer].discard(ref)

    async def result(
        self,
        ref: int,
        fut: asyncio.Future[Any],
        timeout: float | None,
        target: Any,
        request: Any,
        peer: str | None = None,
    ) -> Any:
        """Wait for the reply (``CallTimeout`` after ``timeout`` s), then forget the call."""
        handle = None
        if timeout is not None:
            handle = self._loop.call_later(timeout, _timed_out, fut, target, timeout, request)
        try:
            return await fut
        finally:
            if handle is not None:
                handle.cancel()
            self.close(ref, peer)

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
