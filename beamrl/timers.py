"""Timers: ``send_after`` and ``cancel_timer`` for one node."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from beamrl.errors import BeamError
from beamrl.pid import Ref
from beamrl.reprs import short_repr

log = logging.getLogger("beamrl")


class Timers:
    """Pending ``send_after`` timers, by ref; ``send`` delivers when one fires."""

    def __init__(self, loop: asyncio.AbstractEventLoop, send: Callable[[Any, Any], None]) -> None:
        self._loop = loop
        self._send = send
        self._handles: dict[Ref, asyncio.TimerHandle] = {}

    def start(self, ref: Ref, seconds: float, target: Any, message: Any) -> None:
        """Send ``message`` to ``target`` after ``seconds`` unless ``cancel(ref)`` comes first."""
        self._handles[ref] = self._loop.call_later(seconds, self._fire, ref, target, message)

    def _fire(self, ref: Ref, target: Any, message: Any) -> None:
        self._handles.pop(ref, None)
        try:
            self._send(target, message)
        except BeamError as exc:  # the name went away, or its node: like Erlang, nothing happens
            log.debug("timer %s: message to %s dropped: %s", ref, short_repr(target), exc)

    def cancel(self, ref: Ref) -> bool:
        """Cancel a timer; False if it already fired or was cancelled."""
        handle = self._handles.pop(ref, None)
        if handle is None:
            return False
        handle.cancel()
        return True

    def cancel_all(self) -> None:
        for handle in self._handles.values():
            handle.cancel()
        self._handles.clear()
