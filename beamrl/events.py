"""A node's event log: what happened to its processes and peers, bounded, newest last.

Every node keeps one (``node.events``). The node records crashes and abnormal
exits, supervisors record restarts, the distribution records peers going up and
down, and anything else may record its own kind (a trainer's injected faults)::

    node.events.record("fault", "injected fault into worker 1", pid=pid, name="worker-1")
    node.events.since(0)       # -> every event still held, oldest first, as plain dicts

Events are plain data (they travel in ``$node`` replies): ``seq`` (increasing on
this node), ``time`` (wall clock, seconds), ``kind``, ``node``, ``text``, and
where they apply ``pid``, ``name`` and, for crashes, ``exc_type``/``exc_message``.
Only the newest ``capacity`` events are kept: a reader that fell behind further
gets what is left and sees the jump in ``seq``.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from typing import Any

#: kinds recorded by beamrl itself
KINDS = ("crash", "exit", "restart", "node_up", "node_down", "fault", "control")


class EventLog:
    """A bounded, append-only log of a node's events."""

    def __init__(self, node: str, capacity: int = 500) -> None:
        if capacity < 1:
            raise ValueError(f"an event log holds at least one event, got capacity={capacity!r}")
        self.node = node
        self._events: deque[dict[str, Any]] = deque(maxlen=capacity)
        self._seq = itertools.count(1)
        self.last_seq = 0

    def record(self, kind: str, text: str, *, pid: Any = None, name: str | None = None, **extra: Any) -> dict[str, Any]:
        """Append an event and return it; ``extra`` must be plain data (it goes over the wire)."""
        seq = next(self._seq)
        event = {"seq": seq, "time": time.time(), "kind": kind, "node": self.node, "text": text}
        if pid is not None:
            event["pid"] = pid
        if name is not None:
            event["name"] = name
        event.update(extra)
        self._events.append(event)
        self.last_seq = seq
        return event

    def since(self, seq: int) -> list[dict[str, Any]]:
        """The events after ``seq`` still held, oldest first."""
        if seq >= self.last_seq:
            return []
        return [e for e in self._events if e["seq"] > seq]

    def __len__(self) -> int:
        return len(self._events)
