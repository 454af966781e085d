"""The node's core: processes, names, messages and calls on one event loop.

``LocalNode`` owns the process table and the name registry (``Registry``), pending
calls (``Calls``), timers (``Timers``) and signals (``Signals``: links, monitors, exits). Everything a
process does to another process goes through it, and it decides whether the target is
local (a mailbox append) or remote (a ``Remote``, the seam to ``Distribution``).
``beamrl.node.Node`` is the facade users hold: this class plus supervisors, the node
server and the wiring of the distribution.

Targets accepted everywhere: a ``Pid``, a registered name (``"counter"``), or
``(name, node_name)`` for a name registered on another node.

About 450 lines, past the ~400 aim: start, call, cast, send, reply and stop are the
path every message takes, and reading one of them end to end should not mean
chasing it through several files; what could leave (registry, signals, calls, timers)
already has.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from beamrl.calls import Calls
from beamrl.errors import CallSelf, CallTimeout, NodeDown, NoProc, NotInProcess
from beamrl.events import EventLog
from beamrl.pid import Pid, Ref
from beamrl.process import _TIMEOUT, CALL, CAST, INFO, NORMAL, SYSTEM, From, Process, current_node, current_process
from beamrl.registry import Registry, Target
from beamrl.remote import Remote
from beamrl.reprs import short_repr
from beamrl.signals import Signals
from beamrl.task import FunctionProcess
from beamrl.timers import Timers
from beamrl.trust import ModuleAllowList, confine, default_data_dir, started_for_a_peer

log = logging.getLogger("beamrl")

_node_counter = itertools.count(1)


def node_of(target: Any) -> str:
    """The node a remote target (a Pid or ``(name, node)``) lives on."""
    node: str = target.node if type(target) is Pid else target[1]
    return node


class _Root(Process):
    """The node's own process: what code outside any process acts as.

    It traps exits, never runs a loop of its own, and its mailbox is read with
    ``await node.receive()`` — like the shell process of ``iex``.
    """

    trap_exit = True


class LocalNode(Registry, Signals):
    """A host for processes; see ``beamrl.node.Node`` for the facade and its arguments."""

    def __init__(self, name: str | None = None) -> None:
        if name is None:
            name = f"node{next(_node_counter)}-{os.getpid()}"
        if not isinstance(name, str) or not name or any(c in name for c in " \t\n/\\"):
            raise ValueError(f"node name must be a non-empty string without spaces or slashes, got {name!r}")
        self.name = name
        self.creation = int(time.time() * 1000) & 0x7FFFFFFF
        self._procs: dict[int, Process] = {}
        self._names: dict[str, Process] = {}
        self._serving: dict[From, Process] = {}  # calls from other nodes delivered here, not answered yet
        self._top: list[Pid] = []  # processes started from outside any process, in start order
        self._ids = itertools.count(1)
        self._refs = itertools.count(1)
        self._started = False
        self._closing = False
        self._remote: Remote | None = None
        #: modules whose classes a request may name for a start (see ``beamrl.trust``)
        self.allowed_modules = ModuleAllowList()
        self._data_dir: Path | None = None
        self.events = EventLog(name)  # crashes, restarts, peers up/down (read through $node)
        self._init_signals()

    # -- trust ---------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        """Where paths named by remote requests live (``Node(data_dir=...)``, ``--data-dir``);
        by default ``beamrl.trust.default_data_dir(name)``. Created when first used."""
        return self._data_dir if self._data_dir is not None else default_data_dir(self.name)

    def data_path(self, path: str | os.PathLike[str], what: str = "path") -> Path:
        """The path a process should use for ``path`` it was given.

        In a process started on behalf of a remote request, ``path`` must be relative and
        stay inside ``data_dir`` (``PathRejected`` otherwise); local code's paths are used
        as given.
        """
        if started_for_a_peer():
            return confine(path, self.data_dir, what)
        return Path(path)

    # -- lifecycle ---------------------------------------------------------------

    async def start_node(self) -> None:
        """Bind the node to the running loop."""
        if self._started:
            return
        self._loop = asyncio.get_running_loop()
        self.calls = Calls(self._loop)
        self._timers = Timers(self._loop, self.send)
        root = _Root()
        root._attach(self, Pid(self.name, 0, self.creation), None, None)
        self._root = root
        self._procs[0] = root
        self._started = True

    async def shutdown(self, timeout: float = 5.0) -> None:
        """Stop every process (top-level ones in reverse start order), then disconnect."""
        if not self._started or self._closing:
            return
        self._closing = True
        for pid in reversed(self._top):
            if pid.id in self._procs:
                await self.stop(pid, "shutdown", timeout=timeout)
        for proc in list(self._procs.values()):
            if proc is not self._root:
                proc._die("killed")
        pending = [p._done for p in self._procs.values() if p is not self._root]
        if pending:
            await asyncio.wait(pending, timeout=timeout)
        self._timers.cancel_all()
        if self._remote is not None:
            await self._remote.close()
            self._remote = None

    def _check_started(self) -> None:
        if not self._started:
            raise NotInProcess(f"node {self.name!r} is not running: use `async with Node(...) as node:`")

    # -- identity ------------------------------------------------------------------------

    def _caller(self) -> Process:
        proc = current_process.get()
        if proc is not None and proc.node is self and proc._alive:
            return proc
        return self._root

    @property
    def self_pid(self) -> Pid:
        """The pid of the calling process (the node's root pid outside any process)."""
        return self._caller().pid

    def make_ref(self) -> Ref:
        """A reference unique on this node."""
        return Ref(self.name, next(self._refs))

    # -- starting processes ---------------------------------------------------------

    async def start(
        self,
        cls: type[Process],
        *args: Any,
        name: str | None = None,
        link: bool = False,
        max_mailbox: int | None = None,
        **kwargs: Any,
    ) -> Pid | None:
        """Start a process of ``cls``; returns its pid once its ``init`` succeeded.

        ``args``/``kwargs`` go to ``init``. An ``init`` that raises makes ``start``
        raise the same error; one that returns ``Stop(reason)`` makes it raise
        ``StartRefused`` (``.reason``); one that returns ``Ignore`` makes it
        return None. ``link=True`` links it to the calling process; when the
        start fails, a starter that traps exits finds no ``Exit`` from it in
        its mailbox (as OTP's ``start_link``), one that does not is taken
        along by an abnormal exit reason. ``max_mailbox`` bounds its mailbox
        (see ``Process.max_mailbox``).
        """
        if max_mailbox is not None and (type(max_mailbox) is not int or max_mailbox < 1):
            raise ValueError(f"max_mailbox must be a positive integer or None, got {max_mailbox!r}")
        self._check_started()
        if self._closing:
            raise NoProc(f"node {self.name!r} is shutting down")
        if not (isinstance(cls, type) and issubclass(cls, Process)):
            raise TypeError(f"start() takes a Process subclass such as GenServer, got {cls!r}")
        caller = self._caller()
        proc = cls()
        if max_mailbox is not None:
            proc.max_mailbox = max_mailbox
        pid = Pid(self.name, next(self._ids), self.creation)
        proc._attach(self, pid, None, caller.pid if link else None)
        if name is not None:
            self._register(name, proc)
        self._procs[pid.id] = proc
        if link:
            proc._links.add(caller.pid)
            caller._links.add(pid)
        if caller is self._root:
            self._top.append(pid)  # stopped gracefully, in reverse order, by shutdown()
        started: asyncio.Future[Pid | None] = self._loop.create_future()
        ctx = contextvars.copy_context()
        ctx.run(current_process.set, proc)
        ctx.run(current_node.set, self)
        proc._task = self._loop.create_task(proc._lifecycle(args, kwargs, started), context=ctx)
        # a starter that gives up (cancelled, timed out) takes the half-started process with it
        started.add_done_callback(lambda fut: proc._die("shutdown") if fut.cancelled() else None)
        try:
            result = await started
        except Exception:
            if link:  # init failed: the process has exited, and start's error already tells the starter
                caller._flush_exit(pid)
            raise
        if result is None and link:  # init answered Ignore
            caller._flush_exit(pid)
        return result

    async def spawn(self, fn: Callable[..., Any], *args: Any, name: str | None = None, link: bool = False) -> Pid:
        """Run ``async fn(*args)`` as a process (a Task-like one-shot process).

        Inside it, ``await beamrl.receive(timeout)`` reads its mailbox. It exits
        ``normal`` when ``fn`` returns and with the error when it raises.
        """
        pid = await self.start(FunctionProcess, fn, args, name=name, link=link)
        assert pid is not None  # only a GenServer's init can answer Ignore
        return pid

    # -- messaging -------------------------------------------------------------------

    async def call(self, target: Target, request: Any, timeout: float | None = 5.0) -> Any:
        """Send ``request`` to ``target``'s ``handle_call`` and wait for the reply.

        Raises ``CallTimeout`` after ``timeout`` seconds (the late reply is
        dropped), ``NoProc`` if nobody answers to ``target``, ``ProcessCrashed``
        if it crashed before replying, ``NodeDown`` if its node is lost, and
        re-raises a ``Rejected`` the handler raised.
        """
        caller = self._caller()
        proc = self._local(target)
        calls = self.calls
        if proc is None:
            remote = self._remote_for(target)
            peer = node_of(target)
            ref, fut, timer = calls.open(timeout, target, request, peer)
            try:
                remote.call(ref, caller.pid, target, request)
                return await fut
            finally:
                calls.close(ref, timer, peer)
        if proc is caller:
            raise CallSelf(
                f"{caller.pid} called itself with {short_repr(request)}: it would wait forever for its own reply"
            )
        if proc.max_mailbox is not None and len(proc._mailbox) >= proc.max_mailbox:
            raise proc._full()
        ref, fut, timer = calls.open(timeout, target, request)
        from_ = tuple.__new__(From, (caller.pid, ref))  # From(pid, ref) without a Python-level __new__
        proc._inbound.add(from_)
        proc._deliver((CALL, request, from_))
        try:
            return await fut
        finally:
            calls.close(ref, timer)
            proc._inbound.discard(from_)

    def cast(self, target: Target, request: Any) -> None:
        """Send ``request`` to ``target``'s ``handle_cast``. Never raises, never waits."""
        try:
            proc = self._local(target)
        except (NoProc, TypeError):
            return
        if proc is None:
            if self._remote is not None:
                self._remote.cast(target, request)
            return
        if proc._alive:
            if proc.max_mailbox is not None and len(proc._mailbox) >= proc.max_mailbox:
                proc._overflow("cast")
                return
            proc._deliver((CAST, request, None))

    def send(self, target: Target, message: Any) -> None:
        """Send ``message`` to ``target``'s ``handle_info``.

        Like Erlang's ``!``: a message to a dead pid is dropped silently; a name
        nobody registered raises ``NoProc``.
        """
        try:
            proc = self._local(target)
        except NoProc:
            if type(target) is Pid:
                return
            raise
        if proc is None:
            self._remote_for(target).send(target, message)
            return
        if proc._alive:
            if proc.max_mailbox is not None and len(proc._mailbox) >= proc.max_mailbox:
                proc._overflow("message")
                return
            proc._deliver((INFO, message, None))

    def reply(self, from_: From, value: Any) -> None:
        """Answer a call whose handler returned ``NoReply``; works from any process."""
        self._reply(From(*from_), value, None)

    def _reply(self, from_: From, value: Any, error: BaseException | None) -> None:
        if from_.pid.node == self.name:
            self.calls.complete(from_.ref, value, error)
            return
        proc = self._serving.pop(from_, None)
        if proc is not None:
            proc._inbound.discard(from_)
        if self._remote is not None:
            self._remote.reply(from_, value, error)

    async def receive(self, timeout: float | None = None) -> Any:
        """Outside processes: the next message sent to the node's root pid.

        Raises ``CallTimeout`` when nothing arrives within ``timeout`` seconds.
        """
        item = await self._root._receive(timeout)
        if item is not _TIMEOUT:
            return item[1]
        raise CallTimeout(f"nothing arrived at the root of node {self.name!r} within {timeout} s")

    # -- stopping -------------------------------------------------------------------

    async def stop(self, target: Target, reason: Any = NORMAL, timeout: float | None = 5.0) -> None:
        """Stop a process gracefully: its ``terminate(reason)`` runs; killed after ``timeout``.

        Returns once it has exited. Raises ``NoProc`` if it is not alive, and
        ``TypeError``/``ValueError`` for a bad ``timeout`` (before anything is stopped).
        """
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float)):
            raise TypeError(f"stop: timeout must be seconds (a number >= 0) or None, got {timeout!r}")
        if timeout is not None and not timeout >= 0:
            raise ValueError(f"stop: timeout must be >= 0 seconds or None, got {timeout!r}")
        proc = self._local(target)
        if proc is None:
            await self._stop_remote(target, reason, timeout)
            return
        if proc is self._caller():
            raise CallSelf("a process cannot wait for its own stop: return Stop(reason) from a callback instead")
        if proc is self._root:
            raise ValueError("the root process stops with the node")
        if not proc._alive:
            raise NoProc(f"{proc.pid} is not alive")
        self._request_stop(proc, reason)
        done = proc._done
        if timeout is None:
            await asyncio.shield(done)
            return
        try:
            await asyncio.wait_for(asyncio.shield(done), timeout)
        except TimeoutError:
            log.warning("%s did not stop within %s s: killing it", proc, timeout)
            proc._die("killed")
            await asyncio.shield(done)

    async def _stop_remote(self, target: Any, reason: Any, timeout: float | None) -> None:
        remote = self._remote_for(target)
        peer = node_of(target)
        # the peer kills after `timeout`; a lost answer must not leave us waiting forever
        wait = None if timeout is None else timeout + 5.0
        ref, fut, timer = self.calls.open(wait, target, ["stop", reason], peer)
        try:
            remote.stop(ref, self._caller().pid, target, reason, timeout)
            await fut
        finally:
            self.calls.close(ref, timer, peer)

    def _request_stop(self, proc: Process, reason: Any) -> None:
        if getattr(proc, "_handles_system", False):
            proc._deliver((SYSTEM, ("stop", reason), None))
        else:
            proc._die(reason)

    def kill(self, target: Target) -> None:
        """Kill a process at once (untrappable); its ``terminate`` does not run."""
        self.exit(target, "kill")

    def exit(self, target: Target, reason: Any) -> None:
        """Send an exit signal to ``target`` as Erlang's ``exit/2`` does."""
        try:
            proc = self._local(target)
        except NoProc:
            return
        if proc is None:
            self._remote_for(target).exit(self._caller().pid, target, reason, False)
        else:
            proc._exit_signal(self._caller().pid, reason)

    # -- timers -------------------------------------------------------------------------

    def send_after(self, seconds: float, target: Target, message: Any) -> Ref:
        """Send ``message`` to ``target`` after ``seconds``; ``cancel_timer(ref)`` stops it."""
        ref = self.make_ref()
        self._timers.start(ref, seconds, target, message)
        return ref

    def cancel_timer(self, ref: Ref) -> bool:
        """Cancel a ``send_after`` timer; False if it already fired or was cancelled."""
        return self._timers.cancel(ref)

    # -- what the remote half calls (package-internal) -------------------------------

    def accept_call(self, from_: From, target: Any, request: Any) -> bool:
        """A call from another node for a local target; False when there is no such process.

        Raises ``Backpressure`` when its mailbox is full (``max_mailbox``)."""
        proc = self._live(target)
        if proc is None:
            return False
        if proc.max_mailbox is not None and len(proc._mailbox) >= proc.max_mailbox:
            raise proc._full()
        proc._inbound.add(from_)
        self._serving[from_] = proc
        proc._deliver((CALL, request, from_))
        return True

    def deliver(self, target: Any, kind: int, message: Any) -> None:
        """A cast (``CAST``) or message (``INFO``) from another node; dropped if nobody is there."""
        proc = self._names.get(target) if type(target) is str else self._live(target)  # names: the common case
        if proc is not None and proc._alive:
            if proc.max_mailbox is not None and len(proc._mailbox) >= proc.max_mailbox:
                proc._overflow("remote cast" if kind == CAST else "remote message")
                return
            proc._deliver((kind, message, None))

    def _remote_for(self, target: Any) -> Remote:
        if self._remote is None:
            raise NodeDown(
                f"{target!r} lives on node {node_of(target)!r}, and node {self.name!r} "
                "is not connected to any node: give it listen=... or await node.connect(address)"
            )
        return self._remote

    # -- other nodes ----------------------------------------------------------------------

    @property
    def address(self) -> str | None:
        """Where other nodes reach this one (``tcp://127.0.0.1:PORT``), None if it doesn't listen."""
        return self._remote.address if self._remote is not None else None

    def nodes(self) -> list[str]:
        """Names of the nodes this one is connected to."""
        return self._remote.peers() if self._remote is not None else []

    def __repr__(self) -> str:
        return f"<Node {self.name!r} {len(self._procs) - 1 if self._started else 0} processes>"
