"""The node: one event loop hosting many processes.

A ``Node`` owns the process table, the name registry, pending calls, timers and
(when it listens or connects) the link to other nodes. Everything a process
does to another process goes through its node, which decides whether the
target is local (a mailbox append) or remote (a message to the peer node).

    async with Node("alpha") as node:
        pid = await node.start(Counter, 5, name="counter")
        await node.call("counter", ["add", 2])     # -> 7

Targets accepted everywhere: a ``Pid``, a registered name (``"counter"``), or
``(name, node_name)`` for a name registered on another node.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import logging
import os
import reprlib
import time
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from beamrl.errors import (
    AlreadyRegistered,
    BeamError,
    CallSelf,
    CallTimeout,
    NodeDown,
    NoProc,
    NotInProcess,
    ProcessCrashed,
)
from beamrl.pid import Pid, Ref
from beamrl.process import (
    _TIMEOUT,
    CALL,
    CAST,
    INFO,
    NORMAL,
    SYSTEM,
    Down,
    From,
    Process,
    current_process,
    format_reason,
    is_normal,
)

if TYPE_CHECKING:
    from beamrl.proxy import Proxy

log = logging.getLogger("beamrl")

current_node: contextvars.ContextVar[Node | None] = contextvars.ContextVar("beamrl_current_node", default=None)

_node_counter = itertools.count(1)

Target = Pid | str | tuple[str, str]


def node_of(target: Any) -> str:
    """The node a remote target (a Pid or ``(name, node)``) lives on."""
    node: str = target.node if type(target) is Pid else target[1]
    return node


_short = reprlib.Repr()
_short.maxstring = _short.maxother = 80


def call_timed_out(fut: asyncio.Future[Any], target: Any, timeout: float, request: Any) -> None:
    """A call's timer fired: fail it with ``CallTimeout`` (the message is built only now)."""
    if not fut.done():
        fut.set_exception(CallTimeout(f"call to {target!r} timed out after {timeout} s: {_short.repr(request)}"))


def _install_uvloop_policy() -> None:
    """Use uvloop for loops created from now on, when it is installed."""
    try:
        import uvloop
    except ImportError:  # optional: the stdlib loop works, only slower
        return
    if not isinstance(asyncio.get_event_loop_policy(), uvloop.EventLoopPolicy):
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def run(main: Any) -> Any:
    """``asyncio.run(main)`` on uvloop when it is installed."""
    _install_uvloop_policy()
    return asyncio.run(main)


class _Root(Process):
    """The node's own process: what code outside any process acts as.

    It traps exits, never runs a loop of its own, and its mailbox is read with
    ``await node.receive()`` — like the shell process of ``iex``.
    """

    trap_exit = True


class Node:
    """A host for processes. Use as ``async with Node(name) as node:``.

    ``name`` defaults to a unique ``"node<N>@<pid>"``. ``listen`` (e.g.
    ``"tcp://127.0.0.1:0"``) makes the node reachable by others; ``keys`` is a
    directory with this node's CURVE key pair and the trusted peers' public keys.
    """

    def __init__(
        self,
        name: str | None = None,
        *,
        listen: str | None = None,
        keys: str | os.PathLike[str] | None = None,
        insecure: bool = False,
        heartbeat_interval: float = 0.5,
        heartbeat_timeout: float = 3.0,
        hidden: bool = False,
    ) -> None:
        if name is None:
            name = f"node{next(_node_counter)}-{os.getpid()}"
        if not isinstance(name, str) or not name or any(c in name for c in " \t\n/\\"):
            raise ValueError(f"node name must be a non-empty string without spaces or slashes, got {name!r}")
        self.name = name
        self.creation = int(time.time() * 1000) & 0x7FFFFFFF
        self._listen = listen
        self._keys = keys
        self._insecure = insecure
        self._heartbeat_interval = heartbeat_interval
        self._heartbeat_timeout = heartbeat_timeout
        self._hidden = hidden
        self._procs: dict[int, Process] = {}
        self._names: dict[str, Process] = {}
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._timers: dict[Ref, asyncio.TimerHandle] = {}
        self._top: list[Pid] = []  # processes started from outside any process, in start order
        self._ids = itertools.count(1)
        self._refs = itertools.count(1)
        self._started = False
        self._closing = False
        self._ctx_token: contextvars.Token[Node | None] | None = None
        self._dist: Any = None  # beamrl.distribution.Distribution once started with listen/connect

    # -- lifecycle ---------------------------------------------------------------

    async def __aenter__(self) -> Node:
        await self.start_node()
        self._ctx_token = current_node.set(self)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            await self.shutdown()
        finally:
            if self._ctx_token is not None:
                current_node.reset(self._ctx_token)
                self._ctx_token = None

    async def start_node(self) -> None:
        """Bind the node to the running loop (and to its listen address, if any)."""
        if self._started:
            return
        self._loop = asyncio.get_running_loop()
        root = _Root()
        root._attach(self, Pid(self.name, 0, self.creation), None, None)
        self._root = root
        self._procs[0] = root
        self._started = True
        if self._listen is not None:
            await self._distribution()

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
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        if self._dist is not None:
            await self._dist.close()
            self._dist = None

    def _check_started(self) -> None:
        if not self._started:
            raise NotInProcess(f"node {self.name!r} is not running: use `async with Node(...) as node:`")

    # -- identity helpers ------------------------------------------------------------

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

    def _local(self, target: Any) -> Process | None:
        """The live local process for ``target``, None if it is not (or no longer) here.

        Raises ``NoProc`` for a local name that is not registered and ``TypeError``
        for something that is not a target at all.
        """
        if type(target) is str:
            proc = self._names.get(target)
            if proc is None:
                raise NoProc(f"no process is registered as {target!r} on node {self.name!r}")
            return proc
        if type(target) is Pid:
            if target.node != self.name:
                return None
            proc = self._procs.get(target.id)
            if proc is None or target.creation != self.creation:
                raise NoProc(f"{target} is not alive")
            return proc
        if type(target) is tuple and len(target) == 2 and type(target[0]) is str and type(target[1]) is str:
            if target[1] == self.name:
                return self._local(target[0])
            return None
        raise TypeError(f"a target is a Pid, a registered name or (name, node_name); got {target!r}")

    def whereis(self, name: str) -> Pid | None:
        """The pid registered as ``name`` on this node, or None."""
        proc = self._names.get(name)
        return proc.pid if proc is not None else None

    def register(self, name: str, pid: Pid | None = None) -> None:
        """Register ``name`` for ``pid`` (default: the calling process)."""
        proc = self._caller() if pid is None else self._local(pid)
        if proc is None or proc is self._root:
            raise ValueError("only a live local process can be registered")
        self._register(name, proc)

    def _register(self, name: str, proc: Process) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"a process name is a non-empty string, got {name!r}")
        holder = self._names.get(name)
        if holder is not None and holder._alive:
            raise AlreadyRegistered(f"name {name!r} is already registered to {holder.pid}", holder.pid)
        if proc.name is not None and self._names.get(proc.name) is proc:
            del self._names[proc.name]
        self._names[name] = proc
        proc.name = name

    def unregister(self, name: str) -> None:
        """Free ``name``; the process keeps running."""
        proc = self._names.pop(name, None)
        if proc is not None:
            proc.name = None

    def registered(self) -> list[str]:
        """Names registered on this node."""
        return list(self._names)

    def processes(self) -> list[Pid]:
        """Pids of the live processes on this node (the root excluded)."""
        return [p.pid for p in self._procs.values() if p is not self._root]

    def process_info(self, target: Target) -> dict[str, Any] | None:
        """Name, kind, mailbox size, links and monitors of a local process, None if dead."""
        try:
            proc = self._local(target)
        except NoProc:
            return None
        if proc is None:
            raise ValueError("process_info works on local processes only")
        return {
            "pid": proc.pid,
            "name": proc.name,
            "module": f"{type(proc).__module__}:{type(proc).__qualname__}",
            "mailbox": len(proc._mailbox),
            "calls_waiting": len(proc._inbound),
            "links": sorted(proc._links, key=repr),
            "monitors": len(proc._monitors),
            "monitored_by": len(proc._watchers),
            "trap_exit": proc.trap_exit,
        }

    # -- starting processes ---------------------------------------------------------

    async def start(
        self,
        cls: type[Process] | str,
        *args: Any,
        name: str | None = None,
        link: bool = False,
        **kwargs: Any,
    ) -> Pid | None:
        """Start a process of ``cls`` (or ``"module:Class"``); returns its pid once ``init`` succeeded.

        ``args``/``kwargs`` go to ``init``. An ``init`` that raises makes ``start``
        raise the same error; one that returns ``Stop(reason)`` makes it raise
        ``StartRefused`` (``.reason``); one that returns ``Ignore`` makes it
        return None. ``link=True`` links it to the calling process; when the
        start fails, a starter that traps exits finds no ``Exit`` from it in
        its mailbox (as OTP's ``start_link``), one that does not is taken
        along by an abnormal exit reason.
        """
        self._check_started()
        if self._closing:
            raise NoProc(f"node {self.name!r} is shutting down")
        if isinstance(cls, str):
            from beamrl.tree import resolve_class

            cls = resolve_class(cls)
        if not (isinstance(cls, type) and issubclass(cls, Process)):
            raise TypeError(f"start() takes a Process subclass such as GenServer, got {cls!r}")
        caller = self._caller()
        proc = cls()
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
        from beamrl.task import FunctionProcess

        pid = await self.start(FunctionProcess, fn, args, name=name, link=link)
        assert pid is not None  # only a GenServer's init can answer Ignore
        return pid

    async def start_supervisor(
        self,
        children: list[Any],
        *,
        strategy: str = "one_for_one",
        max_restarts: int = 3,
        max_seconds: float = 5.0,
        name: str | None = None,
        link: bool = False,
    ) -> Pid:
        """Start a ``Supervisor`` over ``children`` (``child(...)`` specs), in order."""
        from beamrl.supervisor import Supervisor

        pid = await self.start(
            Supervisor,
            children,
            strategy=strategy,
            max_restarts=max_restarts,
            max_seconds=max_seconds,
            name=name,
            link=link,
        )
        assert pid is not None  # Supervisor.init never answers Ignore
        return pid

    async def start_child(self, sup: Target, spec: Any, timeout: float = 5.0) -> Pid | None:
        """Add a child to a running (dynamic or static) supervisor; returns its pid (None if it ignored)."""
        result: Pid | None = await self.call(sup, ["start_child", spec], timeout=timeout)
        return result

    async def terminate_child(self, sup: Target, child_id: Any, timeout: float = 30.0) -> None:
        """Stop a supervisor's child (by name, or by pid for a dynamic supervisor)."""
        await self.call(sup, ["terminate_child", child_id], timeout=timeout)

    async def which_children(self, sup: Target, timeout: float = 5.0) -> list[Any]:
        """The supervisor's children: ``.name``, ``.pid`` (None when down), ``.restarts``..."""
        result: list[Any] = await self.call(sup, ["which_children"], timeout=timeout)
        return result

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
        if proc is None:
            return await self._dist_required(target).call(caller.pid, target, request, timeout)
        if proc is caller:
            raise CallSelf(f"{caller.pid} called itself with {request!r}: it would wait forever for its own reply")
        ref = next(self._refs)
        fut = self._loop.create_future()
        from_ = From(caller.pid, ref)
        self._pending[ref] = fut
        proc._inbound.add(from_)
        proc._deliver((CALL, request, from_))
        handle = None
        if timeout is not None:
            handle = self._loop.call_later(timeout, call_timed_out, fut, target, timeout, request)
        try:
            return await fut
        finally:
            if handle is not None:
                handle.cancel()
            del self._pending[ref]
            proc._inbound.discard(from_)

    def cast(self, target: Target, request: Any) -> None:
        """Send ``request`` to ``target``'s ``handle_cast``. Never raises, never waits."""
        try:
            proc = self._local(target)
        except (NoProc, TypeError):
            return
        if proc is None:
            if self._dist is not None:
                self._dist.cast(target, request)
            return
        if proc._alive:
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
            self._dist_required(target).send(target, message)
            return
        if proc._alive:
            proc._deliver((INFO, message, None))

    def reply(self, from_: From, value: Any) -> None:
        """Answer a call whose handler returned ``NoReply``; works from any process."""
        self._reply(From(*from_), value, None)

    def _reply(self, from_: From, value: Any, error: BaseException | None) -> None:
        pid = from_.pid
        if pid.node == self.name:
            fut = self._pending.get(from_.ref)
            if fut is None or fut.done():
                return  # late reply: the caller gave up
            if error is None:
                fut.set_result(value)
            else:
                fut.set_exception(error)
        elif self._dist is not None:
            self._dist.reply(from_, value, error)

    async def receive(self, timeout: float | None = None) -> Any:
        """Outside processes: the next message sent to the node's root pid.

        Raises ``CallTimeout`` when nothing arrives within ``timeout`` seconds.
        """
        item = await self._root._receive(timeout)
        if item is not _TIMEOUT:
            return item[1]
        raise CallTimeout(f"nothing arrived at the root of node {self.name!r} within {timeout} s")

    def proxy(self, target: Target, timeout: float | None = 5.0) -> Proxy:
        """An object whose methods are calls: ``await p.step(1)`` == ``await node.call(t, ["step", 1])``."""
        from beamrl.proxy import Proxy

        return Proxy(self, target, timeout)

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
            await self._dist_required(target).stop(target, reason, timeout)
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
            self._dist_required(target).exit_signal(self._caller().pid, target, reason)
        else:
            proc._exit_signal(self._caller().pid, reason)

    # -- links and monitors ------------------------------------------------------------

    def link(self, target: Target) -> None:
        """Link the calling process with ``target`` (both ways)."""
        me = self._caller()
        try:
            proc = self._local(target)
        except NoProc:
            me._exit_signal(target, "noproc")
            return
        if proc is None:
            if self._dist is None:
                me._exit_signal(target, "noconnection")
            else:
                self._dist.link(me, target)
            return
        if proc is me:
            return
        me._links.add(proc.pid)
        proc._links.add(me.pid)

    def unlink(self, target: Target) -> None:
        """Remove the link between the calling process and ``target``."""
        me = self._caller()
        try:
            proc = self._local(target)
        except NoProc:
            proc = None
            if type(target) is Pid:
                me._links.discard(target)
            return
        if proc is None:
            me._links.discard(target)
            if self._dist is not None:
                self._dist.unlink(me.pid, target)
            return
        me._links.discard(proc.pid)
        proc._links.discard(me.pid)

    def monitor(self, target: Target) -> Ref:
        """Monitor ``target`` from the calling process: a ``Down`` arrives when it exits.

        Monitoring something already dead delivers ``Down(reason="noproc")`` at once.
        """
        me = self._caller()
        ref = self.make_ref()
        try:
            proc = self._local(target)
        except NoProc:
            me._deliver((INFO, Down(ref, target, "noproc"), None))
            return ref
        if proc is None:
            if self._dist is None:  # no connection to any node: the target is unreachable
                me._deliver((INFO, Down(ref, target, "noconnection"), None))
                return ref
            me._monitors[ref] = target
            self._dist.monitor(me.pid, ref, target)
            return ref
        me._monitors[ref] = proc.pid
        proc._watchers[ref] = me.pid
        return ref

    def demonitor(self, ref: Ref, flush: bool = False) -> None:
        """Stop monitoring; with ``flush`` a ``Down`` already in the mailbox is removed."""
        me = self._caller()
        target = me._monitors.pop(ref, None)
        if target is not None:
            if type(target) is Pid and target.node == self.name:
                proc = self._procs.get(target.id)
                if proc is not None:
                    proc._watchers.pop(ref, None)
            elif self._dist is not None:
                self._dist.demonitor(me.pid, ref, target)
        if flush:
            kept = [m for m in me._mailbox if not (m[0] == INFO and isinstance(m[1], Down) and m[1].ref == ref)]
            me._mailbox.clear()
            me._mailbox.extend(kept)

    # -- timers -------------------------------------------------------------------------

    def send_after(self, seconds: float, target: Target, message: Any) -> Ref:
        """Send ``message`` to ``target`` after ``seconds``; ``cancel_timer(ref)`` stops it."""
        ref = self.make_ref()

        def fire() -> None:
            self._timers.pop(ref, None)
            try:
                self.send(target, message)
            except BeamError as exc:  # the name went away, or its node: like Erlang, nothing happens
                log.debug("timer %s: message to %r dropped: %s", ref, target, exc)

        self._timers[ref] = self._loop.call_later(seconds, fire)
        return ref

    def cancel_timer(self, ref: Ref) -> bool:
        """Cancel a ``send_after`` timer; False if it already fired or was cancelled."""
        handle = self._timers.pop(ref, None)
        if handle is None:
            return False
        handle.cancel()
        return True

    # -- exits ----------------------------------------------------------------------------

    def _process_exited(self, proc: Process, reason: Any) -> None:
        """Free what the process held and turn its exit into signals for others."""
        proc._alive = False
        pid = proc.pid
        self._procs.pop(pid.id, None)
        if proc.name is not None and self._names.get(proc.name) is proc:
            del self._names[proc.name]
        if isinstance(reason, BaseException):
            log.error(
                "process %s%s crashed: %s\n%s",
                pid,
                f" ({proc.name})" if proc.name else "",
                format_reason(reason),
                "".join(traceback.format_exception(reason)),
            )
        if proc._inbound:
            error = _call_error(proc, reason)
            for from_ in list(proc._inbound):
                self._reply(from_, None, error)
            proc._inbound.clear()
        for other in list(proc._links):
            self._signal_exit_to(other, pid, reason)
        proc._links.clear()
        for ref, watcher in list(proc._watchers.items()):
            self._deliver_down(watcher, ref, pid, reason)
        proc._watchers.clear()
        for ref, target in list(proc._monitors.items()):
            if type(target) is Pid and target.node == self.name:
                other_proc = self._procs.get(target.id)
                if other_proc is not None:
                    other_proc._watchers.pop(ref, None)
            elif self._dist is not None:
                self._dist.demonitor(pid, ref, target)
        proc._monitors.clear()
        if pid in self._top:
            self._top.remove(pid)
        if not proc._done.done():
            proc._done.set_result(reason)

    def _signal_exit_to(self, target: Pid, sender: Pid, reason: Any) -> None:
        if target.node == self.name:
            other = self._procs.get(target.id)
            if other is not None:
                other._links.discard(sender)
                other._exit_signal(sender, reason)
        elif self._dist is not None:
            self._dist.link_exit(sender, target, reason)

    def _deliver_down(self, watcher: Pid, ref: Ref, pid: Any, reason: Any) -> None:
        if watcher.node == self.name:
            other = self._procs.get(watcher.id)
            if other is not None and other._monitors.pop(ref, None) is not None:
                other._deliver((INFO, Down(ref, pid, reason), None))
        elif self._dist is not None:
            self._dist.down(watcher, ref, pid, reason)

    # -- distribution -------------------------------------------------------------------

    async def _distribution(self) -> Any:
        if self._dist is None:
            from beamrl.distribution import Distribution
            from beamrl.node_server import NAME, NodeServer

            self._dist = Distribution(self)
            await self._dist.start()
            await self.start(NodeServer, name=NAME)
        return self._dist

    def _dist_required(self, target: Any) -> Any:
        if self._dist is None:
            raise NodeDown(
                f"{target!r} lives on node {node_of(target)!r}, and node {self.name!r} "
                "is not connected to any node: give it listen=... or await node.connect(address)"
            )
        return self._dist

    @property
    def address(self) -> str | None:
        """Where other nodes reach this one (``tcp://127.0.0.1:PORT``), None if it doesn't listen."""
        return self._dist.address if self._dist is not None else None

    async def connect(self, address: str, timeout: float = 5.0) -> str:
        """Connect to the node at ``address`` (and, through it, to its cluster); returns its name."""
        self._check_started()
        dist = await self._distribution()
        name: str = await dist.connect(address, timeout)
        return name

    def nodes(self) -> list[str]:
        """Names of the nodes this one is connected to."""
        return self._dist.peers() if self._dist is not None else []

    def __repr__(self) -> str:
        return f"<Node {self.name!r} {len(self._procs) - 1 if self._started else 0} processes>"


def _call_error(proc: Process, reason: Any) -> BaseException:
    label = f"{proc.pid}{f' ({proc.name})' if proc.name else ''}"
    if isinstance(reason, BaseException):
        return ProcessCrashed(
            f"{label} crashed while handling the call: {format_reason(reason)}",
            exc_type=f"{type(reason).__module__}.{type(reason).__qualname__}".removeprefix("builtins."),
            exc_message=str(reason),
        )
    if is_normal(reason):
        return NoProc(f"{label} exited ({format_reason(reason)}) before replying")
    return ProcessCrashed(f"{label} exited ({format_reason(reason)}) before replying", exc_type=str(reason))
