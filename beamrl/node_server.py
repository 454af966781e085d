"""``$node``: the process every networked node runs to answer questions about itself.

Requests (``call(("$node", node_name), request)``):

    ["registered"]      -> sorted registered names
    ["nodes"]           -> names of connected nodes
    ["processes"]       -> process_info of every live process
    ["tree"]            -> the live supervision trees: nested dicts with name, pid,
                           module, mailbox, handled, restarts and children
    ["events", since]   -> {"seq": last, "events": [...]}: the node's event log after ``since``
    ["snapshot", since] -> one poll of a dashboard: {"node", "creation", "address", "time", "nodes",
                           "tree", "loose" (live processes outside every tree), "seq", "events"}
"""

from __future__ import annotations

import time
from typing import Any

from beamrl.errors import CallTimeout, NoProc, ProcessCrashed, Rejected
from beamrl.gen_server import GenServer
from beamrl.pid import Pid
from beamrl.reprs import short_repr
from beamrl.supervisor import Supervisor

NAME = "$node"


class NodeServer(GenServer):
    """Introspection for shells and ``beamrl ps``."""

    async def handle_call(self, request: Any, from_: Any) -> Any:
        node = self.node
        match request:
            case ["registered"]:
                return sorted(n for n in node.registered() if n != NAME)
            case ["nodes"]:
                return node.nodes()
            case ["processes"]:
                infos = (node.process_info(pid) for pid in node.processes())
                return [i for i in infos if i is not None]
            case ["tree"]:
                return await self._trees()
            case ["events", int(since)]:
                return {"seq": node.events.last_seq, "events": node.events.since(since)}
            case ["snapshot", int(since)]:
                return await self._snapshot(since)
        raise Rejected(
            f"$node does not understand {short_repr(request)}: "
            "use registered, nodes, processes, tree, events or snapshot"
        )

    async def _trees(self) -> list[dict[str, Any]]:
        return [await self._describe(pid, None) for pid in self.node.top_level() if pid != self.pid]

    async def _snapshot(self, since: int) -> dict[str, Any]:
        """Everything a dashboard shows of this node, in one reply."""
        node = self.node
        trees = await self._trees()
        shown: set[Pid] = set()

        def collect(entry: dict[str, Any]) -> None:
            if entry["pid"] is not None:
                shown.add(entry["pid"])
            for c in entry["children"]:
                collect(c)

        for tree in trees:
            collect(tree)
        loose = []
        for pid in node.processes():
            info = node.process_info(pid) if pid not in shown else None
            if info is not None:
                loose.append(_entry(info, None))
        return {
            "node": node.name,
            "creation": node.creation,
            "address": node.address,
            "time": time.time(),
            "nodes": node.nodes(),
            "tree": trees,
            "loose": loose,
            "seq": node.events.last_seq,
            "events": node.events.since(since),
        }

    async def _describe(self, pid: Pid, restarts: int | None) -> dict[str, Any]:
        info = self.node.process_info(pid)
        if info is None:
            return {"pid": pid, "name": None, "module": "?", "mailbox": 0, "restarts": restarts, "children": []}
        entry = _entry(info, restarts)
        if _is_supervisor(self.node._procs.get(pid.id)):
            try:
                children = await self.node.call(pid, ["which_children"], timeout=2.0)
            except (CallTimeout, NoProc, ProcessCrashed):
                return entry
            for c in children:
                if c.pid is None:
                    entry["children"].append(
                        {
                            "pid": None,
                            "name": c.name or str(c.id),
                            "module": c.module,
                            "mailbox": 0,
                            "handled": 0,
                            "restarts": c.restarts,
                            "children": [],
                        }
                    )
                else:
                    entry["children"].append(await self._describe(c.pid, c.restarts))
        return entry


def _entry(info: dict[str, Any], restarts: int | None) -> dict[str, Any]:
    return {
        "pid": info["pid"],
        "name": info["name"],
        "module": info["module"],
        "mailbox": info["mailbox"],
        "handled": info.get("handled", 0),
        "restarts": restarts,
        "children": [],
    }


def _is_supervisor(proc: Any) -> bool:
    return isinstance(proc, Supervisor)


def format_tree(trees: list[dict[str, Any]]) -> str:
    """The text ``beamrl ps`` prints."""
    lines = [f"{'PROCESS':<44} {'PID':<22} {'RESTARTS':>8} {'MAILBOX':>8}"]

    def walk(entry: dict[str, Any], depth: int) -> None:
        label = entry["name"] or entry["module"].rsplit(":", 1)[-1]
        kind = entry["module"].rsplit(":", 1)[-1]
        text = f"{'  ' * depth}{label}" + (f" ({kind})" if entry["name"] else "")
        pid = str(entry["pid"]) if entry["pid"] is not None else "(down)"
        restarts = "" if entry["restarts"] is None else str(entry["restarts"])
        lines.append(f"{text:<44} {pid:<22} {restarts:>8} {entry['mailbox']:>8}")
        for c in entry["children"]:
            walk(c, depth + 1)

    for tree in trees:
        walk(tree, 0)
    return "\n".join(lines)
