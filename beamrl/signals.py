"""Signals between processes: links, monitors, and what an exit turns into.

``Signals`` is the part of ``LocalNode`` that keeps who is linked to and monitoring
whom, locally and across nodes, and turns a process's exit into ``Exit`` signals for its
links and ``Down`` messages for its monitors. Links and monitors that cross nodes are
also kept per peer, so that losing a peer fires them all with reason ``noconnection``
(``peer_lost``); the ``remote_*`` methods are what the remote half calls when a peer
sends a link, unlink, exit, monitor, demonitor or down.
"""

from __future__ import annotations

import logging
import traceback
from collections import defaultdict
from typing import Any

from beamrl.calls import Calls
from beamrl.errors import NoProc, ProcessCrashed
from beamrl.events import EventLog
from beamrl.pid import Pid, Ref
from beamrl.process import INFO, Down, From, Process, format_reason, is_normal
from beamrl.remote import Remote

log = logging.getLogger("beamrl")


class Signals:
    """Links, monitors and exits; mixed into ``LocalNode``, which provides the lookups."""

    name: str
    calls: Calls
    _procs: dict[int, Process]
    _names: dict[str, Process]
    _top: list[Pid]
    _serving: dict[From, Process]
    _remote: Remote | None
    _closing: bool
    events: EventLog

    def _init_signals(self) -> None:
        # per peer: links (local pid, remote pid), monitors we hold on its processes
        # (ref -> (local watcher, remote target)) and monitors it holds on ours (ref -> local pid)
        self._links_to: dict[str, set[tuple[Pid, Pid]]] = defaultdict(set)
        self._monitors_out: dict[str, dict[Ref, tuple[Pid, Any]]] = defaultdict(dict)
        self._monitors_in: dict[str, dict[Ref, Pid]] = defaultdict(dict)

    def _caller(self) -> Process:
        raise NotImplementedError

    def _local(self, target: Any) -> Process | None:
        raise NotImplementedError

    def make_ref(self) -> Ref:
        raise NotImplementedError

    # -- the API --------------------------------------------------------------------

    def link(self, target: Any) -> None:
        """Link the calling process with ``target`` (both ways)."""
        me = self._caller()
        try:
            proc = self._local(target)
        except NoProc:
            me._exit_signal(target, "noproc")
            return
        if proc is None:
            self._link_remote(me, target)
            return
        if proc is me:
            return
        me._links.add(proc.pid)
        proc._links.add(me.pid)

    def _link_remote(self, me: Process, target: Any) -> None:
        remote = self._remote
        if remote is None:
            me._exit_signal(target, "noconnection")
            return
        if type(target) is not Pid:
            raise TypeError(f"link to a process on another node takes its Pid, got {target!r}")
        if not remote.connected(target.node):
            me._exit_signal(target, "noconnection")
            return
        me._links.add(target)
        self._links_to[target.node].add((me.pid, target))
        remote.link(me.pid, target)

    def unlink(self, target: Any) -> None:
        """Remove the link between the calling process and ``target``."""
        me = self._caller()
        try:
            proc = self._local(target)
        except NoProc:
            if type(target) is Pid:
                me._links.discard(target)
            return
        if proc is None:
            me._links.discard(target)
            if type(target) is Pid:
                self._links_to[target.node].discard((me.pid, target))
                if self._remote is not None:
                    self._remote.unlink(me.pid, target)
            return
        me._links.discard(proc.pid)
        proc._links.discard(me.pid)

    def monitor(self, target: Any) -> Ref:
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
            peer = target.node if type(target) is Pid else target[1]
            remote = self._remote
            if remote is None or not remote.connected(peer):  # the target is unreachable
                me._deliver((INFO, Down(ref, target, "noconnection"), None))
                return ref
            me._monitors[ref] = target
            self._monitors_out[peer][ref] = (me.pid, target)
            remote.monitor(me.pid, ref, target)
            return ref
        me._monitors[ref] = proc.pid
        proc._watchers[ref] = me.pid
        return ref

    def demonitor(self, ref: Ref, flush: bool = False) -> None:
        """Stop monitoring; with ``flush`` a ``Down`` already in the mailbox is removed."""
        me = self._caller()
        target = me._monitors.pop(ref, None)
        if target is not None:
            self._forget_monitor(ref, target)
        if flush:
            kept = [m for m in me._mailbox if not (m[0] == INFO and isinstance(m[1], Down) and m[1].ref == ref)]
            me._mailbox.clear()
            me._mailbox.extend(kept)

    def _forget_monitor(self, ref: Ref, target: Any) -> None:
        if type(target) is Pid and target.node == self.name:
            proc = self._procs.get(target.id)
            if proc is not None:
                proc._watchers.pop(ref, None)
            return
        peer = target.node if type(target) is Pid else target[1]
        if self._monitors_out[peer].pop(ref, None) is not None and self._remote is not None:
            self._remote.demonitor(ref, target)

    # -- exits ----------------------------------------------------------------------

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
        if not self._closing and not is_normal(reason):  # the event log
            _record_exit(self.events, proc, reason)
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
            self._forget_monitor(ref, target)
        proc._monitors.clear()
        if pid in self._top:
            self._top.remove(pid)
        if not proc._done.done():
            proc._done.set_result(reason)

    def _reply(self, from_: From, value: Any, error: BaseException | None) -> None:
        raise NotImplementedError

    def _signal_exit_to(self, target: Pid, sender: Pid, reason: Any) -> None:
        if target.node == self.name:
            other = self._procs.get(target.id)
            if other is not None:
                other._links.discard(sender)
                other._exit_signal(sender, reason)
        elif self._remote is not None:
            self._links_to[target.node].discard((sender, target))
            self._remote.exit(sender, target, reason, True)

    def _deliver_down(self, watcher: Pid, ref: Ref, pid: Any, reason: Any) -> None:
        if watcher.node == self.name:
            other = self._procs.get(watcher.id)
            if other is not None and other._monitors.pop(ref, None) is not None:
                other._deliver((INFO, Down(ref, pid, reason), None))
        elif self._remote is not None:
            self._monitors_in[watcher.node].pop(ref, None)
            self._remote.down(watcher, ref, pid, reason)

    # -- what the remote half calls (package-internal) -------------------------------

    def _live(self, target: Any) -> Process | None:
        """The live local process a peer names (a pid, or a name: how ``(name, node)`` travels)."""
        if type(target) is str:
            proc = self._names.get(target)
        else:
            try:
                proc = self._local(target)
            except (NoProc, TypeError):
                return None
        return proc if proc is not None and proc._alive else None

    def remote_exit(self, peer: str, sender: Pid, target: Any, reason: Any, is_link: bool) -> None:
        """An exit signal from a process on ``peer`` (a link's exit when ``is_link``)."""
        proc = self._live(target)
        if proc is None:
            return
        if is_link:
            if sender not in proc._links:
                return  # unlinked meanwhile: OTP delivers no link exit after unlink
            proc._links.discard(sender)
            self._links_to[peer].discard((proc.pid, sender))
        proc._exit_signal(sender, reason)

    def remote_link(self, peer: str, sender: Pid, target: Any) -> bool:
        """``sender`` on ``peer`` links to a local process; False if there is none."""
        proc = self._live(target)
        if proc is None:
            return False
        proc._links.add(sender)
        self._links_to[peer].add((proc.pid, sender))
        return True

    def remote_unlink(self, peer: str, sender: Pid, target: Any) -> None:
        proc = self._live(target)
        if proc is not None:
            proc._links.discard(sender)
            self._links_to[peer].discard((proc.pid, sender))

    def remote_monitor(self, peer: str, watcher: Pid, ref: Ref, target: Any) -> bool:
        """``watcher`` on ``peer`` monitors a local process; False if there is none."""
        proc = self._live(target)
        if proc is None:
            return False
        proc._watchers[ref] = watcher
        self._monitors_in[peer][ref] = proc.pid
        return True

    def remote_demonitor(self, peer: str, ref: Ref) -> None:
        pid = self._monitors_in[peer].pop(ref, None)
        if pid is not None:
            proc = self._procs.get(pid.id)
            if proc is not None:
                proc._watchers.pop(ref, None)

    def remote_down(self, peer: str, watcher: Pid, ref: Ref, pid: Any, reason: Any) -> None:
        """A process monitored on ``peer`` went down."""
        if self._monitors_out[peer].pop(ref, None) is not None:
            self._deliver_down(watcher, ref, pid, reason)

    def peer_lost(self, peer: str, reason: str) -> None:
        """``peer`` is gone: its calls fail, its monitors fire ``noconnection``, so do links."""
        self.calls.fail_peer(peer, reason)
        for ref, (watcher, target) in list(self._monitors_out.pop(peer, {}).items()):
            self._deliver_down(watcher, ref, target, "noconnection")
        for local, remote in list(self._links_to.pop(peer, ())):
            proc = self._procs.get(local.id)
            if proc is not None and remote in proc._links:
                proc._links.discard(remote)
                proc._exit_signal(remote, "noconnection")
        for ref, pid in list(self._monitors_in.pop(peer, {}).items()):
            proc = self._procs.get(pid.id)
            if proc is not None:
                proc._watchers.pop(ref, None)
        for from_ in [f for f in self._serving if f.pid.node == peer]:
            served = self._serving.pop(from_, None)
            if served is not None:
                served._inbound.discard(from_)  # nobody is left to answer


def _record_exit(events: EventLog, proc: Process, reason: Any) -> None:
    """A crash (with the exception's type and message) or another abnormal exit."""
    label = f"{proc.pid}{f' ({proc.name})' if proc.name else ''}"
    if isinstance(reason, BaseException):
        events.record(
            "crash",
            f"{label} crashed: {format_reason(reason)}",
            pid=proc.pid,
            name=proc.name,
            exc_type=type(reason).__qualname__,
            exc_message=str(reason),
        )
    else:
        events.record("exit", f"{label} exited: {format_reason(reason)}", pid=proc.pid, name=proc.name)


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
