"""Supervisors: processes that start, watch and restart other processes.

API call -> what the supervisor does::

    node.start_supervisor(children, strategy=..)  -> starts children in order; returns after all started
    (a child exits)                               -> restart per strategy and restart type
    node.which_children(sup)                      -> ["which_children"]: ChildInfo list
    node.start_child(sup, child(...))             -> ["start_child", spec]: starts and adds a child
                                                     (None when its init answered Ignore)
    node.terminate_child(sup, name_or_pid)        -> ["terminate_child", id]: stops it (a dynamic
                                                     supervisor answers None for a pid already dead)
    call(sup, ["restart_child", name])            -> starts a stopped static child again
    call(sup, ["delete_child", name])             -> forgets a stopped static child
    call(sup, ["count_children"])                 -> {"specs", "active", "supervisors", "workers"}
    node.stop(sup)                                -> stops children in reverse order, then itself

Strategies (which children restart when one exits and must be restarted):

``one_for_one``   only that child.
``one_for_all``   all children: the others are stopped in reverse order, then all start in order.
``rest_for_one``  that child and those started after it (stopped in reverse, started in order).

A child that fails to start again counts as one more restart and is retried;
under ``one_for_all`` the siblings already restarted are stopped again and the
whole group restarts in order.

A child whose ``init`` answers ``Ignore`` is not running but is no error: a
static supervisor keeps its spec with ``pid`` None (``restart_child`` tries
again), a dynamic supervisor does not add it, a temporary child is forgotten.

Restart types: ``permanent`` always restarts; ``transient`` restarts only after an
abnormal exit (not ``normal``/``shutdown``); ``temporary`` never restarts and is
forgotten when it exits. Children stopped alongside a failing sibling restart
whatever their type, except ``temporary`` ones, which are forgotten.

Intensity: more than ``max_restarts`` restarts within ``max_seconds`` makes the
supervisor stop all its children (reverse order) and exit with reason
``"shutdown"``; its own supervisor then reacts to that exit (escalation).

Stopping a child (shutdown, one_for_all, terminate_child) is graceful: the
child's ``terminate("shutdown")`` runs; after ``shutdown`` seconds it is
killed. ``shutdown=None`` waits as long as it takes (the default for
supervisors, so nested trees wind down completely). ``shutdown="brutal_kill"``
kills the child at once: its ``terminate`` does not run, its reason is
``killed``. A static supervisor stops its children one at a time in reverse
start order; a dynamic one stops them all at once, each within its own
``shutdown``, as OTP does.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any

from beamrl.child_spec import STRATEGIES, ChildInfo, ChildSpec, child, spec_from_mapping
from beamrl.errors import NoProc, Rejected
from beamrl.gen_server import GenServer, Stop
from beamrl.pid import Pid
from beamrl.process import Exit, From, format_reason, is_normal
from beamrl.reprs import short_repr
from beamrl.trust import ModuleAllowList, for_a_peer

__all__ = ["ChildInfo", "ChildSpec", "DynamicSupervisor", "Supervisor", "child"]

log = logging.getLogger("beamrl")


class _Child:
    __slots__ = ("id", "pid", "restarts", "spec", "untrusted")

    def __init__(self, spec: ChildSpec, child_id: Any) -> None:
        self.spec = spec
        self.id = child_id
        self.pid: Pid | None = None
        self.restarts = 0
        self.untrusted = False  # added by a remote start_child: its paths stay in the data dir


class Supervisor(GenServer):
    """A static supervisor: ``init(children, strategy=..., max_restarts=3, max_seconds=5.0)``."""

    trap_exit = True
    is_supervisor = True
    dynamic = False

    async def init(
        self,
        children: list[ChildSpec] | tuple[ChildSpec, ...] = (),
        strategy: str = "one_for_one",
        max_restarts: int = 3,
        max_seconds: float = 5.0,
        max_children: int | None = None,
    ) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}; got {strategy!r}")
        if isinstance(max_restarts, bool) or not isinstance(max_restarts, int) or max_restarts < 0:
            raise ValueError(f"max_restarts must be an int >= 0; got {max_restarts!r}")
        if isinstance(max_seconds, bool) or not isinstance(max_seconds, int | float) or max_seconds <= 0:
            raise ValueError(f"max_seconds must be a number > 0; got {max_seconds!r}")
        if max_children is not None and (not isinstance(max_children, int) or max_children < 0):
            raise ValueError(f"max_children must be an int >= 0 or None; got {max_children!r}")
        self.strategy = strategy
        self.max_restarts = max_restarts
        self.max_seconds = float(max_seconds)
        self.max_children = max_children
        self._children: list[_Child] = []
        self._restart_times: deque[float] = deque()
        self._serial = 0
        if not isinstance(children, list | tuple):
            raise TypeError(f"a supervisor's children are a list of child specs; got {type(children).__name__}")
        for spec in children:
            self._add(_as_spec(spec, self.node.allowed_modules))
        started: list[_Child] = []
        for c in list(self._children):  # a temporary child that answers Ignore leaves the list
            try:
                await self._start(c)
            except Exception as exc:
                for done in reversed(started):
                    await self._stop(done)
                exc.add_note(f"supervisor {self.name or self.pid}: child {c.id!r} failed to start")
                raise
            started.append(c)

    # -- child bookkeeping -------------------------------------------------------------

    def _add(self, spec: ChildSpec) -> _Child:
        if self.dynamic:
            c = _Child(spec, None)
        else:
            child_id: Any = spec.name
            if child_id is None:
                self._serial += 1
                child_id = f"{spec.label().rsplit(':', 1)[-1]}#{self._serial}"
            if any(x.id == child_id for x in self._children):
                raise ValueError(f"supervisor {self.name or self.pid}: two children with the id {child_id!r}")
            c = _Child(spec, child_id)
        self._children.append(c)
        return c

    def _is_dead(self, pid: Any) -> bool:
        """True for the pid of a process of this node that is no longer alive."""
        return type(pid) is Pid and pid.node == self.node.name and self.node.process_info(pid) is None

    def _find(self, child_id: Any) -> _Child:
        for c in self._children:
            if c.id == child_id or (c.pid is not None and c.pid == child_id) or (c.spec.name == child_id is not None):
                return c
        raise Rejected(f"supervisor {self.name or self.pid} has no child {child_id!r:.120}")

    async def _start(self, c: _Child) -> Pid | None:
        """Start the child; None when its ``init`` answered ``Ignore``.

        An ignoring child is kept without a pid (OTP's ``undefined``), except a
        dynamic or temporary one, which is forgotten.
        """
        spec = c.spec
        with for_a_peer(c.untrusted):
            pid = await self.node.start(spec.start, *spec.args, name=spec.name, link=True, **spec.kwargs)
        c.pid = pid
        if pid is None:
            if (self.dynamic or spec.restart == "temporary") and c in self._children:
                self._children.remove(c)
        elif self.dynamic:
            c.id = pid
        return pid

    async def _stop(self, c: _Child) -> None:
        """Stop one child gracefully (kill after its shutdown time); no restart follows."""
        pid, c.pid = c.pid, None
        if pid is None:
            return
        self.node.unlink(pid)
        timeout = c.spec.shutdown
        if isinstance(timeout, str):  # BRUTAL_KILL, the only text ChildSpec lets through
            self.node.kill(pid)  # untrappable; the stop below only waits for the exit
            timeout = None
        try:
            await self.node.stop(pid, "shutdown", timeout=timeout)
        except NoProc:
            pass  # it exited on its own meanwhile

    async def _stop_all(self) -> None:
        """Static children stop one by one in reverse start order; dynamic ones all at once, as OTP does."""
        if not self.dynamic:
            for c in reversed(self._children):
                await self._stop(c)
            return
        async with asyncio.TaskGroup() as group:
            for c in self._children:
                group.create_task(self._stop(c))

    # -- restarts ----------------------------------------------------------------------------

    def _wants_restart(self, c: _Child, reason: Any) -> bool:
        restart = c.spec.restart
        if restart == "permanent":
            return True
        if restart == "transient":
            return not is_normal(reason)
        return False

    def _count_restart(self) -> bool:
        """Record a restart; False when it goes over the allowed intensity."""
        now = time.monotonic()
        times = self._restart_times
        times.append(now)
        while times and times[0] <= now - self.max_seconds:
            times.popleft()
        return len(times) <= self.max_restarts

    async def _restart(self, failed: _Child) -> Stop | None:
        """Restart ``failed`` and the siblings its strategy takes along.

        When a child fails to start again, the attempt counts as a restart and
        is retried: ``one_for_all`` stops the siblings it already restarted
        (reverse order) and starts the whole group again in order, as OTP does;
        the other strategies retry from the child that failed.
        """
        if self.strategy == "one_for_one" or self.dynamic:
            group = [failed]
        elif self.strategy == "one_for_all":
            group = list(self._children)
        else:
            group = self._children[self._children.index(failed) :]
        for c in reversed(group):
            if c is not failed:
                await self._stop(c)
        for c in [c for c in group if c is not failed and c.spec.restart == "temporary"]:
            self._children.remove(c)
            group.remove(c)
        index = 0
        while index < len(group):
            c = group[index]
            try:
                await self._start(c)
            except Exception as exc:
                log.error("supervisor %s: restarting child %r failed: %s", self, c.id, format_reason(exc))
                if not self._count_restart():
                    return await self._give_up()
                if self.strategy == "one_for_all":
                    for started in reversed(group[:index]):
                        await self._stop(started)
                    index = 0
                continue
            c.restarts += 1
            self.node.events.record(  # the event log
                "restart",
                f"{self.pid} restarted {c.spec.name or c.id!r} as {c.pid} (restart {c.restarts})",
                pid=c.pid,
                name=c.spec.name,
                supervisor=self.pid,
                restarts=c.restarts,
            )
            index += 1
        return None

    async def _give_up(self) -> Stop:
        log.error(
            "supervisor %s: more than %d restarts in %s s, shutting down its children and exiting",
            self,
            self.max_restarts,
            self.max_seconds,
        )
        await self._stop_all()
        return Stop("shutdown")

    # -- callbacks ---------------------------------------------------------------------------

    async def handle_info(self, message: Any) -> Any:
        if type(message) is not Exit:
            return None
        c = next((x for x in self._children if x.pid == message.pid), None)
        if c is None:
            return None
        c.pid = None
        reason = message.reason
        if self.node._closing:  # the node is going down: nothing to restart into
            return Stop("shutdown")
        if not self._wants_restart(c, reason):
            if c.spec.restart == "temporary" or self.dynamic:
                self._children.remove(c)
            return None
        log.warning("supervisor %s: child %r exited (%s), restarting", self, c.id, format_reason(reason))
        if not self._count_restart():
            return await self._give_up()
        return await self._restart(c)

    async def handle_call(self, request: Any, from_: From) -> Any:
        match request:
            case ["which_children"]:
                return [
                    ChildInfo(
                        c.id,
                        c.spec.name,
                        c.pid,
                        c.restarts,
                        c.spec.restart,
                        "supervisor" if c.spec.is_supervisor else "worker",
                        c.spec.label(),
                    )
                    for c in self._children
                ]
            case ["count_children"]:
                sups = sum(1 for c in self._children if c.spec.is_supervisor)
                return {
                    "specs": len(self._children),
                    "active": sum(1 for c in self._children if c.pid is not None),
                    "supervisors": sups,
                    "workers": len(self._children) - sups,
                }
            case ["start_child", spec]:
                if self.max_children is not None and len(self._children) >= self.max_children:
                    raise Rejected(f"supervisor {self.name or self.pid} already has max_children={self.max_children}")
                try:
                    c = self._add(_as_spec(spec, self.node.allowed_modules))
                except (TypeError, ValueError) as exc:
                    raise Rejected(str(exc)) from exc
                c.untrusted = from_.pid.node != self.node.name
                try:
                    return await self._start(c)
                except Exception as exc:
                    self._children.remove(c)
                    label = c.spec.name or c.spec.label()
                    raise Rejected(f"child {label!r} failed to start: {format_reason(exc)}") from exc
            case ["terminate_child", child_id]:
                try:
                    c = self._find(child_id)
                except Rejected:
                    if self.dynamic and self._is_dead(child_id):
                        return None  # OTP: a pid no longer alive is terminated already
                    raise
                await self._stop(c)
                if self.dynamic or c.spec.restart == "temporary":
                    self._children.remove(c)
                return None
            case ["restart_child", child_id]:
                c = self._find(child_id)
                if c.pid is not None:
                    raise Rejected(f"child {c.id!r} is running ({c.pid})")
                return await self._start(c)
            case ["delete_child", child_id]:
                c = self._find(child_id)
                if c.pid is not None:
                    raise Rejected(f"child {c.id!r} is running: terminate_child it first")
                self._children.remove(c)
                return None
        raise Rejected(f"supervisor does not understand {short_repr(request)}")

    async def terminate(self, reason: Any) -> None:
        await self._stop_all()


class DynamicSupervisor(Supervisor):
    """Children added at run time with ``start_child``; ``one_for_one`` only.

    ``init(strategy="one_for_one", max_restarts=3, max_seconds=5.0, max_children=None)``;
    children are identified by pid (``terminate_child(sup, pid)``).
    """

    dynamic = True

    async def init(
        self,
        children: list[ChildSpec] | tuple[ChildSpec, ...] = (),
        strategy: str = "one_for_one",
        max_restarts: int = 3,
        max_seconds: float = 5.0,
        max_children: int | None = None,
    ) -> None:
        if strategy != "one_for_one":
            raise ValueError(f"a DynamicSupervisor's strategy is one_for_one; got {strategy!r}")
        await super().init(children, strategy, max_restarts, max_seconds, max_children)


def _is_seconds(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and value >= 0


def _as_spec(spec: Any, allow: ModuleAllowList) -> ChildSpec:
    """A ``ChildSpec``; a mapping (a spec that may have travelled) may name only allowed modules."""
    if isinstance(spec, ChildSpec):
        return spec
    if isinstance(spec, dict):
        return spec_from_mapping(spec, "child spec", Supervisor, allow)
    raise TypeError(f"a child spec is child(...) or a mapping with 'start'; got {type(spec).__name__}")
