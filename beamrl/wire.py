"""The messages nodes exchange: one typed record per operation.

On the wire a message is a codec-encoded list, its kind first, then the record's fields
in order (a target ``(name, node)`` travels as ``name``: the receiving node is ``node``).

===========  ============================================  =================================
kind         fields                                        the receiver
===========  ============================================  =================================
call         ref, caller, target, request                  delivers to ``handle_call``;
                                                           answers with ``reply``
reply        ref, ok, value                                completes call ``ref``
                                                           (``value`` is the error if not ok)
cast         target, request                               delivers to ``handle_cast``
send         target, message                               delivers to ``handle_info``
exit         sender, target, reason, is_link               an exit signal (a link's when
                                                           ``is_link``)
link         sender, target                                links; ``exit`` noproc back if none
unlink       sender, target                                unlinks
monitor      watcher, ref, target                          monitors; ``down`` noproc back if none
demonitor    ref, target                                   forgets the monitor
down         watcher, ref, pid, reason                     delivers ``Down`` to the watcher
stop         ref, caller, target, reason, timeout          stops gracefully; ``reply`` when done
===========  ============================================  =================================

``ref`` of a call or stop is an int (uint64) unique on the caller's node; monitor refs
are ``Ref`` values. The hot kinds (call, reply, cast, send) are built by ``Distribution``
from pre-packed parts, byte-identical to encoding these records.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from beamrl.pid import Pid, Ref


class Call(NamedTuple):
    ref: int
    caller: Pid
    target: Any
    request: Any


class Reply(NamedTuple):
    ref: int
    ok: bool
    value: Any


class Cast(NamedTuple):
    target: Any
    request: Any


class Send(NamedTuple):
    target: Any
    message: Any


class ExitSignal(NamedTuple):
    sender: Pid
    target: Any
    reason: Any
    is_link: bool


class Link(NamedTuple):
    sender: Pid
    target: Any


class Unlink(NamedTuple):
    sender: Pid
    target: Any


class Monitor(NamedTuple):
    watcher: Pid
    ref: Ref
    target: Any


class Demonitor(NamedTuple):
    ref: Ref
    target: Any


class DownSignal(NamedTuple):
    watcher: Pid
    ref: Ref
    pid: Any
    reason: Any


class Stop(NamedTuple):
    ref: int
    caller: Pid
    target: Any
    reason: Any
    timeout: float | None


Message = Call | Reply | Cast | Send | ExitSignal | Link | Unlink | Monitor | Demonitor | DownSignal | Stop

#: wire kind -> record class
KINDS: dict[str, type[Any]] = {
    "call": Call,
    "reply": Reply,
    "cast": Cast,
    "send": Send,
    "exit": ExitSignal,
    "link": Link,
    "unlink": Unlink,
    "monitor": Monitor,
    "demonitor": Demonitor,
    "down": DownSignal,
    "stop": Stop,
}
_KIND_OF = {cls: kind for kind, cls in KINDS.items()}


def to_wire(message: Message) -> list[Any]:
    """The list that goes to the codec: the kind, then the fields."""
    return [_KIND_OF[type(message)], *message]


def from_wire(value: Any) -> Message:
    """The record for a decoded list; ``ValueError`` names what is wrong with it."""
    cls = KINDS.get(value[0]) if type(value) is list and value and type(value[0]) is str else None
    if cls is None:
        if type(value) is not list or not value or type(value[0]) is not str:
            raise ValueError("a message is a list starting with its kind")
        raise ValueError(f"unknown kind {value[0]!r}")
    if len(value) != len(cls._fields) + 1:
        raise ValueError(f"a {value[0]!r} message has {len(cls._fields)} fields, got {len(value) - 1}")
    record: Message = tuple.__new__(cls, value[1:])  # _make without its length check, done above
    return record
