"""Module-level shortcuts acting on the current node, so process code reads like Elixir.

Inside a process (or inside ``async with Node(...)``)::

    beamrl.cast("counter", ["add", 1])
    ref = beamrl.monitor(pid)
    beamrl.send_after(1.0, beamrl.self_pid(), "tick")
"""

from __future__ import annotations

import typing
from typing import Any

from beamrl.errors import NotInProcess
from beamrl.node import Node, Target, current_node
from beamrl.pid import Pid, Ref
from beamrl.process import From, current_process
from beamrl.proxy import Proxy


def _node() -> Node:
    proc = current_process.get()
    node = proc.node if proc is not None else current_node.get()
    if node is None:
        raise NotInProcess("no beamrl node here: run this inside a process or inside `async with beamrl.Node(...)`")
    return typing.cast(Node, node)  # every node is a Node: LocalNode is only its core


def current() -> Node:
    """The node the calling code runs on."""
    return _node()


def self_pid() -> Pid:
    """The calling process's pid (the node's root pid outside any process)."""
    return _node().self_pid


async def start(cls: Any, *args: Any, name: str | None = None, link: bool = False, **kwargs: Any) -> Pid | None:
    """``Node.start`` on the current node (None when ``init`` answered ``Ignore``)."""
    return await _node().start(cls, *args, name=name, link=link, **kwargs)


async def start_link(cls: Any, *args: Any, name: str | None = None, **kwargs: Any) -> Pid | None:
    """Start a process linked to the caller (None when ``init`` answered ``Ignore``)."""
    return await _node().start(cls, *args, name=name, link=True, **kwargs)


async def spawn(fn: Any, *args: Any, name: str | None = None, link: bool = False) -> Pid:
    """``Node.spawn`` on the current node."""
    return await _node().spawn(fn, *args, name=name, link=link)


async def call(target: Target, request: Any, timeout: float | None = 5.0) -> Any:
    """``Node.call`` on the current node."""
    return await _node().call(target, request, timeout=timeout)


def cast(target: Target, request: Any) -> None:
    """``Node.cast`` on the current node (never raises)."""
    try:
        node = _node()
    except NotInProcess:
        return
    node.cast(target, request)


def send(target: Target, message: Any) -> None:
    """``Node.send`` on the current node."""
    _node().send(target, message)


def reply(from_: From, value: Any) -> None:
    """Answer a call whose handler returned ``NoReply``."""
    _node().reply(from_, value)


async def stop(target: Target, reason: Any = "normal", timeout: float | None = 5.0) -> None:
    """``Node.stop`` on the current node."""
    await _node().stop(target, reason, timeout)


def kill(target: Target) -> None:
    """``Node.kill`` on the current node."""
    _node().kill(target)


def exit(target: Target, reason: Any) -> None:
    """Send an exit signal (Erlang's ``exit/2``)."""
    _node().exit(target, reason)


def whereis(name: str) -> Pid | None:
    """The pid registered as ``name`` on the current node."""
    return _node().whereis(name)


def register(name: str, pid: Pid | None = None) -> None:
    """Register a name for ``pid`` (default: the calling process)."""
    _node().register(name, pid)


def monitor(target: Target) -> Ref:
    """Monitor ``target`` from the calling process."""
    return _node().monitor(target)


def demonitor(ref: Ref, flush: bool = False) -> None:
    """Remove a monitor."""
    _node().demonitor(ref, flush)


def link(target: Target) -> None:
    """Link the calling process with ``target``."""
    _node().link(target)


def unlink(target: Target) -> None:
    """Remove a link."""
    _node().unlink(target)


def send_after(seconds: float, target: Target, message: Any) -> Ref:
    """Send ``message`` to ``target`` after ``seconds``."""
    return _node().send_after(seconds, target, message)


def cancel_timer(ref: Ref) -> bool:
    """Cancel a ``send_after`` timer."""
    return _node().cancel_timer(ref)


def proxy(target: Target, timeout: float | None = 5.0) -> Proxy:
    """A proxy on the current node."""
    return _node().proxy(target, timeout)
