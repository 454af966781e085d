"""``RateLimitedLog``: warn about a repeated problem at most once a period, with a count."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class RateLimitedLog:
    """At most one warning per ``period`` seconds per kind; says how many it swallowed.

    ``warn("decode:alpha", "dropped a message from %r: %s", peer, exc)``: a peer that
    floods garbage costs one log line a second, not one per message.
    """

    def __init__(
        self, logger: logging.Logger, period: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.logger = logger
        self.period = period
        self.clock = clock
        self._last: dict[str, float] = {}
        self._dropped: dict[str, int] = {}

    def __call__(self, kind: str, fmt: str, *args: object) -> None:
        now = self.clock()
        if now - self._last.get(kind, -1e9) < self.period:
            self._dropped[kind] = self._dropped.get(kind, 0) + 1
            return
        self._last[kind] = now
        n = self._dropped.pop(kind, 0)
        suffix = f" ({n} similar dropped)" if n else ""
        self.logger.warning(fmt + suffix, *args)
