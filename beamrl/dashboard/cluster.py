"""What the dashboard knows of the cluster: nodes, their trees and their events.

A ``ClusterView`` polls the ``$node`` server of every node its own node is
connected to (and of its own node) with one ``["snapshot", since]`` call each,
and keeps, as plain JSON-able data:

* per node: address, status (``up``; ``reconnecting`` while connected but not
  answering; ``down`` once lost; a lost client-only node, such as a shell, is
  dropped), heartbeat age (seconds since it last answered),
  its supervision trees and the live processes outside them, each process with
  its messages handled per second (from the ``handled`` counter's growth);
* the merged event log of all nodes (newest last, bounded).

A node that stays down longer than ``redial_after`` seconds (the transport redials
a lost peer it learned of for that long) is redialled at the address it reported,
every ``REDIAL_EVERY`` seconds, so it reappears whenever it comes back.

Pids become strings: ``key`` (``node/id/creation``, what control requests name)
and ``pid`` (``#PID<node.id>``, what people read).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from typing import Any

from beamrl.errors import BeamError
from beamrl.node import Node
from beamrl.node_server import NAME as NODE_SERVER
from beamrl.node_server import NodeServer
from beamrl.pid import Pid

log = logging.getLogger("beamrl.dashboard")


def pid_key(pid: Pid) -> str:
    """The string a page uses for a pid: ``node/id/creation`` (node names hold no slash)."""
    return f"{pid.node}/{pid.id}/{pid.creation}"


def parse_pid_key(key: Any) -> Pid:
    """The inverse of ``pid_key``; ``ValueError`` naming the problem for anything else."""
    if not isinstance(key, str):
        raise ValueError(f"a pid key is a string 'node/id/creation', got {type(key).__name__}")
    parts = key.split("/")
    if len(parts) != 3 or not parts[0] or not parts[1].isdigit() or not parts[2].isdigit():
        raise ValueError(f"a pid key looks like 'node/id/creation', got {key!r}")
    return Pid(parts[0], int(parts[1]), int(parts[2]))


def jsonable(value: Any) -> Any:
    """Plain JSON data from what ``$node`` and recorders send (pids as text, no NaN)."""
    if isinstance(value, Pid):
        return str(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        return jsonable(item())
    return str(value)


REDIAL_EVERY = 5.0  # seconds between the dashboard's redials of a node that stays down


class _NodeState:
    __slots__ = (
        "address",
        "age_base",
        "creation",
        "down_since",
        "handled",
        "name",
        "next_redial",
        "seq",
        "snapshot",
        "status",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self.address: str | None = None
        self.status = "reconnecting"
        self.age_base: float | None = None  # monotonic time of its last answer
        self.seq = 0  # events read so far
        self.creation: int | None = None  # which life of the node the above is about
        self.down_since: float | None = None  # monotonic time it was first seen down
        self.next_redial = 0.0
        self.handled: dict[Pid, tuple[float, int]] = {}  # pid -> (time, handled) at the last poll
        self.snapshot: dict[str, Any] = {"tree": [], "loose": []}


class ClusterView:
    """Polls every node's ``$node``; ``state()`` and ``take_events()`` feed the page."""

    def __init__(self, node: Node, *, timeout: float = 1.0, max_events: int = 500, redial_after: float = 30.0) -> None:
        self.node = node
        self.timeout = timeout
        self.redial_after = redial_after
        self._nodes: dict[str, _NodeState] = {}
        self.events: deque[dict[str, Any]] = deque(maxlen=max_events)
        self._new: list[dict[str, Any]] = []
        self._redials: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Make sure this node answers snapshots too (a node that never listened has no ``$node``)."""
        if self.node.whereis(NODE_SERVER) is None:
            await self.node.start(NodeServer, name=NODE_SERVER)

    async def poll(self) -> None:
        """One round: a snapshot from every connected node, at once."""
        names = [self.node.name, *self.node.nodes()]
        for name in names:
            if name not in self._nodes:
                self._nodes[name] = _NodeState(name)
        await asyncio.gather(*(self._poll(self._nodes[name]) for name in names))
        connected = set(names)
        for state in list(self._nodes.values()):
            if state.name in connected:
                continue
            if state.address is None:  # a client-only node (a shell, a script) left: not part of the cluster
                del self._nodes[state.name]
                continue
            state.status = "down"
            now = time.monotonic()
            if state.down_since is None:
                state.down_since = now
                state.next_redial = now + self.redial_after
            if now >= state.next_redial and not self._redialling(state.name):
                state.next_redial = now + REDIAL_EVERY
                task = asyncio.get_running_loop().create_task(self._redial(state), name=f"redial-{state.name}")
                self._redials.add(task)
                task.add_done_callback(self._redials.discard)

    def _redialling(self, name: str) -> bool:
        return any(t.get_name() == f"redial-{name}" for t in self._redials)

    async def _redial(self, state: _NodeState) -> None:
        assert state.address is not None
        try:
            await self.node.connect(state.address, timeout=max(1.0, self.timeout))
        except (BeamError, OSError) as exc:  # still down (TimeoutError is an OSError): the next poll retries
            log.debug("dashboard: node %r at %s is still down: %s", state.name, state.address, exc)

    async def close(self) -> None:
        """Stop redialling."""
        for task in list(self._redials):
            task.cancel()
        await asyncio.gather(*self._redials, return_exceptions=True)

    async def _poll(self, state: _NodeState) -> None:
        try:
            snap = await self.node.call((NODE_SERVER, state.name), ["snapshot", state.seq], timeout=self.timeout)
            if snap.get("creation", state.creation) != state.creation and state.creation is not None:
                # the node restarted: its event log starts again, and so do its counters
                state.seq, state.handled = 0, {}
                snap = await self.node.call((NODE_SERVER, state.name), ["snapshot", 0], timeout=self.timeout)
        except (BeamError, TimeoutError):
            state.status = "reconnecting" if state.name in self.node.nodes() else "down"
            return
        state.creation = snap.get("creation")
        state.down_since = None
        now = time.monotonic()
        state.status = "up"
        state.age_base = now
        state.address = snap.get("address") or state.address
        state.seq = snap["seq"]
        for event in snap["events"]:
            self._add_event(event)
        handled: dict[Pid, tuple[float, int]] = {}
        at = float(snap["time"])
        tree = [self._entry(e, state, handled, at) for e in snap["tree"]]
        loose = [self._entry(e, state, handled, at) for e in snap["loose"]]
        state.handled = handled
        state.snapshot = {"tree": tree, "loose": loose}

    def _entry(self, entry: dict[str, Any], state: _NodeState, handled: dict[Pid, tuple[float, int]], at: float) -> Any:
        pid = entry["pid"]
        rate = None
        if pid is not None:
            count = int(entry.get("handled", 0))
            handled[pid] = (at, count)
            before = state.handled.get(pid)
            if before is not None and at > before[0]:
                rate = max(0.0, (count - before[1]) / (at - before[0]))
        module = str(entry["module"])
        return {
            "key": pid_key(pid) if pid is not None else None,
            "pid": str(pid) if pid is not None else None,
            "name": entry["name"],
            "module": module,
            "cls": module.rsplit(":", 1)[-1],
            "mailbox": entry["mailbox"],
            "restarts": entry["restarts"],
            "rate": rate,
            "children": [self._entry(c, state, handled, at) for c in entry["children"]],
        }

    def _add_event(self, event: dict[str, Any]) -> None:
        data = jsonable(event)
        pid = event.get("pid")
        data["key"] = pid_key(pid) if isinstance(pid, Pid) else None
        data["id"] = f"{event['node']}:{event['seq']}:{event['time']}"
        self.events.append(data)
        self._new.append(data)

    def take_events(self) -> list[dict[str, Any]]:
        """Events that arrived since the last call, oldest first."""
        new, self._new = self._new, []
        return new

    def state(self) -> list[dict[str, Any]]:
        """Every node the dashboard has seen, its own first, then by name."""
        now = time.monotonic()
        own = self.node.name
        nodes = sorted(self._nodes.values(), key=lambda s: (s.name != own, s.name))
        return [
            {
                "name": s.name,
                "address": s.address,
                "status": s.status,
                "age": None if s.age_base is None else round(now - s.age_base, 2),
                "self": s.name == own,
                **s.snapshot,
            }
            for s in nodes
        ]

    def find(self, predicate: Any) -> list[tuple[str, dict[str, Any]]]:
        """(node, process entry) for every live process matching ``predicate(entry)``."""
        found = []

        def walk(node: str, entry: dict[str, Any]) -> None:
            if entry["key"] is not None and predicate(entry):
                found.append((node, entry))
            for c in entry["children"]:
                walk(node, c)

        for s in self._nodes.values():
            if s.status != "up":
                continue
            for entry in s.snapshot["tree"] + s.snapshot["loose"]:
                walk(s.name, entry)
        return found

    def knows(self, node: str) -> bool:
        """Whether ``node`` is one the dashboard has seen."""
        return node in self._nodes
