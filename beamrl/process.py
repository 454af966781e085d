"""The process: a mailbox, a task that drains it, and the signals between processes.

Every process (``GenServer``, ``Supervisor``, a spawned function) is a ``Process``
hosted by one ``Node``. What makes it a process rather than an object:

* it owns an asyncio task and a mailbox; messages from one sender arrive in the
  order they were sent;
* it exits with a *reason*: ``"normal"``, ``"shutdown"`` (or ``("shutdown", x)``),
  ``"killed"``, ``"noproc"``, ``"noconnection"``, or the exception that crashed it;
* links and monitors turn that exit into signals for others: a linked process
  dies with the same reason unless it traps exits (then it receives an ``Exit``
  message), a monitoring process receives a ``Down`` message.

The mailbox holds small tuples ``(kind, payload, extra)``; only the node puts
them there, and only the behaviour that owns the process takes them out.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from beamrl.errors import Backpressure, NoProc
from beamrl.pid import Pid, Ref
from beamrl.ratelog import RateLimitedLog
from beamrl.reprs import short_repr, short_text

if TYPE_CHECKING:
    from beamrl.local_node import LocalNode

# Mailbox entry kinds. Ints compare fastest in the receive loop.
CALL = 0  # (CALL, request, From)
CAST = 1  # (CAST, request, None)
INFO = 2  # (INFO, message, None)    send(), Down, Exit, timers
SYSTEM = 3  # (SYSTEM, request, From | None)  stop, introspection: never seen by user code

#: The reason of a process that returned from its work on its own.
NORMAL = "normal"

current_process: contextvars.ContextVar[Process | None] = contextvars.ContextVar("beamrl_current_process", default=None)
#: the node that code outside any process acts on (set by ``async with Node(...)``)
current_node: contextvars.ContextVar[LocalNode | None] = contextvars.ContextVar("beamrl_current_node", default=None)


class From(NamedTuple):
    """Who is waiting for a reply: the caller's pid and the call's reference number."""

    pid: Pid
    ref: int


@dataclass(frozen=True, slots=True)
class Down:
    """A monitored process exited: ``ref`` from ``monitor()``, its ``pid`` and exit ``reason``."""

    ref: Ref
    pid: Any
    reason: Any


@dataclass(frozen=True, slots=True)
class Exit:
    """A linked process exited (received only with ``trap_exit = True``)."""

    pid: Any
    reason: Any


def is_normal(reason: Any) -> bool:
    """True for the reasons that are not errors: ``normal`` and ``shutdown``."""
    if reason == NORMAL or reason == "shutdown":
        return True
    return isinstance(reason, tuple) and len(reason) == 2 and reason[0] == "shutdown"


def format_reason(reason: Any) -> str:
    """A one-line human form of an exit reason."""
    if isinstance(reason, BaseException):
        return f"{type(reason).__name__}: {reason}"
    return str(reason)


_TIMEOUT = object()  # what _receive returns when its timeout fired
_full_log = RateLimitedLog(logging.getLogger("beamrl"))  # casts dropped at full mailboxes


def _short_args(exc: BaseException) -> str:
    return short_text(", ".join(short_repr(a, 200) for a in exc.args[:8]), 200)


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class Process:
    """Runtime state shared by every kind of process. Users subclass ``GenServer``.

    Attributes available inside a process: ``self.pid``, ``self.name``,
    ``self.node`` and ``self.trap_exit`` (set it to True to receive ``Exit``
    messages instead of dying with a linked process).
    """

    trap_exit: bool = False
    max_mailbox: int | None = None
    """Most messages waiting in the mailbox (None: unbounded). Beyond it, casts and sends are
    dropped (logged at most once a second, counted in ``process_info``'s ``dropped``) and
    calls fail at the caller with ``Backpressure``; signals (exits, DOWNs, stop) always
    get in. Set it on the class, or per process with ``start(..., max_mailbox=N)``."""
    _dropped: int = 0
    is_supervisor: bool = False
    """True for process classes that supervise others (the child spec's worker/supervisor type)."""
    node: LocalNode
    pid: Pid
    name: str | None

    def _attach(self, node: LocalNode, pid: Pid, name: str | None, parent: Pid | None) -> None:
        self.node = node
        self.pid = pid
        self.name = name
        self._parent = parent
        self._mailbox: deque[tuple[int, Any, Any]] = deque()
        self._handled = 0  # messages its behaviour took from the mailbox
        self._waiter: asyncio.Future[None] | None = None
        self._links: set[Pid] = set()
        self._monitors: dict[Ref, Any] = {}  # monitors this process holds: ref -> target pid
        self._watchers: dict[Ref, Pid] = {}  # monitors on this process: ref -> watcher pid
        self._inbound: set[From] = set()  # calls delivered here and not answered yet
        self._task: asyncio.Task[None] | None = None
        self._exit_reason: Any = None  # set by an exit signal that must end the process now
        self._alive = True
        self._done: asyncio.Future[Any] = node._loop.create_future()

    # -- mailbox -----------------------------------------------------------------

    def _deliver(self, item: tuple[int, Any, Any]) -> None:
        self._mailbox.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _receive(self, timeout: float | None = None) -> Any:
        """The next mailbox entry, or ``_TIMEOUT`` after ``timeout`` seconds of silence."""
        mailbox = self._mailbox
        if mailbox:
            return mailbox.popleft()
        loop = self.node._loop
        fut = self._waiter = loop.create_future()
        try:
            if timeout is None:
                await fut
            else:
                handle = loop.call_later(timeout, _wake, fut)
                try:
                    await fut
                finally:
                    handle.cancel()
        finally:
            self._waiter = None
        return mailbox.popleft() if mailbox else _TIMEOUT

    def _full(self) -> Backpressure:
        """The error a call to a full mailbox (``max_mailbox``) raises at its caller."""
        return Backpressure(
            f"{self.name or self.pid} has {len(self._mailbox)} messages waiting "
            f"(max_mailbox={self.max_mailbox}): call refused, retry later"
        )

    def _overflow(self, what: str) -> None:
        """A cast or message for a full mailbox: dropped, counted, logged once a second."""
        self._dropped += 1
        _full_log(
            "mailbox-full",
            "%s: mailbox full (max_mailbox=%d): %s dropped, %d so far",
            self.name or self.pid,
            self.max_mailbox,
            what,
            self._dropped,
        )

    @property
    def mailbox_size(self) -> int:
        """Messages waiting in this process's mailbox."""
        return len(self._mailbox)

    # -- signals -------------------------------------------------------------------

    def _exit_signal(self, sender: Any, reason: Any) -> None:
        """An exit signal from a linked process, or from ``exit(pid, reason)``/``kill``."""
        if not self._alive:
            return
        if reason == "kill":
            self._die("killed")
        elif self.trap_exit:
            self._deliver((INFO, Exit(sender, reason), None))
        elif reason == NORMAL and sender != self.pid:
            return
        else:
            self._die(reason)

    def _flush_exit(self, pid: Pid) -> None:
        """Drop the ``Exit`` that ``pid``, which failed to start, sent here: ``start`` already said so."""
        if self.trap_exit and self._mailbox:
            kept = [m for m in self._mailbox if not (m[0] == INFO and type(m[1]) is Exit and m[1].pid == pid)]
            if len(kept) != len(self._mailbox):
                self._mailbox.clear()
                self._mailbox.extend(kept)

    def _die(self, reason: Any) -> None:
        """End the process now, wherever it is: its ``terminate`` does not run."""
        if not self._alive or self._exit_reason is not None:
            return
        self._exit_reason = reason
        task = self._task
        if task is not None and not task.done():
            task.cancel()

    # -- lifecycle -------------------------------------------------------------------

    async def _main(self, args: tuple[Any, ...], kwargs: dict[str, Any], started: asyncio.Future[Pid | None]) -> Any:
        """The behaviour's loop: ack ``started`` once initialised, return the exit reason."""
        raise NotImplementedError

    async def _lifecycle(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], started: asyncio.Future[Pid | None]
    ) -> None:
        reason: Any = NORMAL
        cancelled_from_outside = False
        try:
            reason = await self._main(args, kwargs, started)
        except asyncio.CancelledError:
            if self._exit_reason is None:
                # Not one of our signals: the loop is shutting down. Clean up, then let it go.
                cancelled_from_outside = True
                reason = "killed"
            else:
                reason = self._exit_reason
        except Exception as exc:  # the process boundary: an error becomes the exit reason
            reason = exc
        except BaseException as exc:  # SystemExit, KeyboardInterrupt...: they end the process, never the node
            reason = RuntimeError(f"{type(exc).__name__}({_short_args(exc)}) raised in {self}")
            reason.__cause__ = exc
        finally:
            if not started.done():
                if isinstance(reason, BaseException):
                    started.set_exception(reason)
                else:
                    started.set_exception(NoProc(f"{self.pid} exited during init: {format_reason(reason)}"))
            self.node._process_exited(self, reason)
        if cancelled_from_outside:
            raise asyncio.CancelledError

    def __repr__(self) -> str:
        pid = getattr(self, "pid", None)
        name = getattr(self, "name", None)
        label = f" {name!r}" if name else ""
        return f"<{type(self).__name__} {pid}{label}>"
