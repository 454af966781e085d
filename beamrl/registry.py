"""The process table and the name registry of one node, and how targets are looked up.

``Registry`` is the part of ``LocalNode`` that maps pids and registered names to live
local processes: ``_local(target)`` is the one lookup every operation starts with.
"""

from __future__ import annotations

from typing import Any

from beamrl.errors import AlreadyRegistered, NoProc
from beamrl.pid import Pid
from beamrl.process import Process

#: what every operation accepts as its target: a pid, a registered name, or (name, node_name)
Target = Pid | str | tuple[str, str]


class Registry:
    """Pids and names of the node's processes; mixed into ``LocalNode``."""

    name: str
    creation: int
    _procs: dict[int, Process]
    _names: dict[str, Process]
    _top: list[Pid]
    _root: Process

    def _caller(self) -> Process:
        raise NotImplementedError

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

    def top_level(self) -> list[Pid]:
        """Pids of the live processes started from outside any process, in start order."""
        return list(self._top)

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
            "max_mailbox": proc.max_mailbox,
            "dropped": proc._dropped,
            "handled": proc._handled,  # messages taken from its mailbox so far
        }
