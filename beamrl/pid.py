"""Process identifiers and references.

A ``Pid`` names one process on one node incarnation: ``node`` is the node's name,
``id`` a counter unique on that node, and ``creation`` tells apart two lives of a
node with the same name (a restarted node hands out fresh pids, so a stale pid
from before the restart never reaches a new process). Pids are immutable,
hashable, printable and travel over the wire unchanged, so a Pid means the same
thing on every node.
"""

from __future__ import annotations

from typing import NamedTuple


class Pid(NamedTuple):
    """Address of one process: ``#PID<node.id>``."""

    node: str
    id: int
    creation: int = 0

    def __repr__(self) -> str:
        return f"#PID<{self.node}.{self.id}>"

    def __str__(self) -> str:
        return self.__repr__()


class Ref(NamedTuple):
    """A unique reference (monitors, calls, timers): ``#Ref<node.id>``."""

    node: str
    id: int

    def __repr__(self) -> str:
        return f"#Ref<{self.node}.{self.id}>"

    def __str__(self) -> str:
        return self.__repr__()
