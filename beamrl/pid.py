"""Process identifiers and references.

A ``Pid`` names one process on one node incarnation: ``node`` is the node's name,
``id`` a counter unique on that node, and ``creation`` tells apart two lives of a
node with the same name (a restarted node hands out fresh pids, so a stale pid
from before the restart never reaches a new process). Pids are immutable,
hashable, printable and travel over the wire unchanged, so a Pid means the same
thing on every node.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from beamrl import codec


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


# On the wire (extension codes 5 and 6): fixed little-endian ints, then the node name.
_PID_CODE, _REF_CODE = 5, 6
_PID_HEAD = struct.Struct("<qq")  # id, creation
_REF_HEAD = struct.Struct("<q")  # id
_PIDS: dict[bytes, Pid] = {}  # encoded Pid -> Pid: the same few pids arrive again and again
_PIDS_MAX = 4096


def _pid_to_bytes(p: Pid) -> bytes:
    try:
        return _PID_HEAD.pack(p.id, p.creation) + p.node.encode()
    except (struct.error, AttributeError, UnicodeError):
        raise ValueError("a Pid needs a str node and 64-bit int id and creation") from None


def _pid_from_bytes(data: bytes) -> Pid:
    pid = _PIDS.get(data)
    if pid is None:
        if len(data) < 16:
            raise ValueError("malformed Pid")
        pid_id, creation = _PID_HEAD.unpack_from(data)
        pid = Pid._make((data[16:].decode(), pid_id, creation))
        if len(_PIDS) >= _PIDS_MAX:
            _PIDS.clear()
        _PIDS[data] = pid
    return pid


def _ref_to_bytes(r: Ref) -> bytes:
    try:
        return _REF_HEAD.pack(r.id) + r.node.encode()
    except (struct.error, AttributeError, UnicodeError):
        raise ValueError("a Ref needs a str node and a 64-bit int id") from None


def _ref_from_bytes(data: bytes) -> Ref:
    if len(data) < 8:
        raise ValueError("malformed Ref")
    return Ref._make((data[8:].decode(), _REF_HEAD.unpack_from(data)[0]))


codec.register_bytes(_PID_CODE, Pid, _pid_to_bytes, _pid_from_bytes)
codec.register_bytes(_REF_CODE, Ref, _ref_to_bytes, _ref_from_bytes)
