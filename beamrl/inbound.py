"""Inbound decoding: each peer's messages decoded in order, the costly ones off the loop.

A node's liveness is its event loop: heartbeats are answered and sent from it, so a
decode that holds the loop for seconds gets the node declared down by its peers. The
codec bounds what one message can decode into (``Limits``: memory and objects tied to
the body's size), but a large body still takes time. ``Inbound`` decodes on the loop
only while that is cheap, and hands the rest to one worker thread::

    inbound = Inbound(decode=codec.decode, dispatch=on_value, failed=on_error, lost=on_lost)
    # dispatch(peer, value); failed(peer, frames, CodecError); lost(peer, reason)
    inbound.message(peer, frames)   # from the transport: decoded now, or queued in order
    inbound.peer_down(peer, reason) # delivered after that peer's queued messages
    inbound.close()

Rules: a message whose msgpack body (frame 0; out-of-band array frames cost nothing to
decode, they are views) fits in what is left of ``INLINE_BYTES`` for this loop iteration
is decoded at once, unless earlier messages of the same peer are still queued; every
other message goes to the worker, which decodes messages in arrival order (with the
cyclic garbage collector paused: a decode allocates many objects that all survive, and
a collection pass would hold the GIL) and posts each result back to the loop, where
``dispatch`` runs in order. Ordering per peer therefore holds, also for ``peer_down``.
While the worker decodes, the loop gets the GIL back within a switch interval (5 ms)
whenever the codec runs Python (its hooks: per list, dict and extension value); one
flat list of scalars or one long str/bytes is a single stretch of C that keeps it
(``beamrl bench codec`` measures the worst: about 0.17 s for a list of 1M floats).
Queued bodies are bounded by ``max_queued_bytes``; beyond it, messages are dropped
with a warning (``failed`` is called), as they would be by a full socket.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
from collections.abc import Callable
from typing import Any

from beamrl.errors import CodecError

#: bodies up to this many bytes, in total per loop iteration, are decoded on the loop
INLINE_BYTES = 128 << 10
#: most body bytes waiting for the worker, over all peers
MAX_QUEUED_BYTES = 512 << 20


def body_size(frames: list[Any]) -> int:
    """Bytes of a message's msgpack body: what decoding costs time in proportion to."""
    if not frames:
        return 0
    first = frames[0]
    return len(first) if type(first) is bytes else memoryview(first).nbytes


class Inbound:
    """Per-peer ordered decoding; see the module docstring."""

    def __init__(
        self,
        decode: Callable[[list[Any]], Any],
        dispatch: Callable[[str, Any], None],
        failed: Callable[[str, list[Any], CodecError], None],
        lost: Callable[[str, str], None],
        *,
        inline_bytes: int = INLINE_BYTES,
        max_queued_bytes: int = MAX_QUEUED_BYTES,
    ) -> None:
        self._decode = decode
        self._dispatch = dispatch
        self._failed = failed
        self._lost = lost
        self.inline_bytes = inline_bytes
        self.max_queued_bytes = max_queued_bytes
        self._queued: dict[str, int] = {}  # peer -> messages (and downs) not dispatched yet
        self.queued_bytes = 0
        self._spent = 0  # body bytes decoded on the loop in this iteration
        self._worker: concurrent.futures.ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    # -- on the loop ------------------------------------------------------------------

    def message(self, peer: str, frames: list[Any]) -> None:
        first = frames[0] if frames else b""
        size = len(first) if type(first) is bytes else body_size(frames)
        spent = self._spent
        if spent + size <= self.inline_bytes and peer not in self._queued:
            if not spent:
                asyncio.get_running_loop().call_soon(self._new_iteration)
            self._spent = spent + (size or 1)
            try:
                value = self._decode(frames)
            except CodecError as exc:
                self._failed(peer, frames, exc)
                return
            self._dispatch(peer, value)
            return
        if self.queued_bytes + size > self.max_queued_bytes:
            self._failed(
                peer,
                frames,
                CodecError(
                    f"dropped a message of {size} bytes: {self.queued_bytes} bytes are already "
                    f"waiting to be decoded (at most {self.max_queued_bytes})"
                ),
            )
            return
        self.queued_bytes += size
        self._submit(peer, self._decode_job, frames, size)

    def peer_down(self, peer: str, reason: str) -> None:
        """``lost(peer, reason)`` now, or after the peer's queued messages."""
        if peer in self._queued:
            self._submit(peer, self._down_job, reason, 0)
        else:
            self._lost(peer, reason)

    def close(self) -> None:
        """Drop what is queued; a decode in progress finishes in the background."""
        self._closed = True
        self._queued.clear()
        if self._worker is not None:
            self._worker.shutdown(wait=False, cancel_futures=True)
            self._worker = None

    def pending(self, peer: str) -> int:
        """Messages (and a down) of ``peer`` not dispatched yet."""
        return self._queued.get(peer, 0)

    def _new_iteration(self) -> None:
        self._spent = 0

    def _submit(self, peer: str, job: Callable[..., None], arg: Any, size: int) -> None:
        if self._closed:
            return
        if self._worker is None:
            self._loop = asyncio.get_running_loop()
            self._worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="beamrl-decode")
        self._queued[peer] = self._queued.get(peer, 0) + 1
        self._worker.submit(job, peer, arg, size)

    def _done(self, peer: str, size: int) -> bool:
        """Count one queued item of ``peer`` as handled; False once closed."""
        if self._closed:
            return False
        self.queued_bytes -= size
        n = self._queued.get(peer, 0) - 1
        if n > 0:
            self._queued[peer] = n
        else:
            self._queued.pop(peer, None)
        return True

    def _deliver(self, peer: str, frames: list[Any], value: Any, error: CodecError | None, size: int) -> None:
        if not self._done(peer, size):
            return
        if error is not None:
            self._failed(peer, frames, error)
        else:
            self._dispatch(peer, value)

    def _deliver_down(self, peer: str, reason: str) -> None:
        if self._done(peer, 0):
            self._lost(peer, reason)

    # -- in the worker thread ---------------------------------------------------------

    def _decode_job(self, peer: str, frames: list[Any], size: int) -> None:
        value: Any = None
        error: CodecError | None = None
        collecting = gc.isenabled()
        gc.disable()
        try:
            value = self._decode(frames)
        except CodecError as exc:
            error = exc
        finally:
            if collecting:
                gc.enable()
        self._post(self._deliver, peer, frames, value, error, size)

    def _down_job(self, peer: str, reason: str, size: int) -> None:
        self._post(self._deliver_down, peer, reason)

    def _post(self, callback: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is None or self._closed:
            return
        try:
            loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # the loop closed meanwhile: nobody is left to deliver to
            pass
