"""Task-like one-shot processes: run a coroutine function as a process.

    async def worker(n):
        msg = await beamrl.receive(timeout=1.0)
        ...
    pid = await node.spawn(worker, 3)

The process exits ``normal`` when the function returns and crashes with the
error when it raises, so links, monitors and supervisors treat it like any
other process.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from beamrl.errors import CallTimeout, NotInProcess
from beamrl.pid import Pid
from beamrl.process import _TIMEOUT, NORMAL, Process, current_node, current_process


class FunctionProcess(Process):
    """A process whose body is ``await fn(*args)``."""

    async def _main(self, args: tuple[Any, ...], kwargs: dict[str, Any], started: asyncio.Future[Pid | None]) -> Any:
        fn: Callable[..., Any] = args[0]
        fn_args: tuple[Any, ...] = args[1]
        if started.done():  # the starter gave up: see Node.start
            return NORMAL
        started.set_result(self.pid)
        await fn(*fn_args)
        return NORMAL


async def receive(timeout: float | None = None) -> Any:
    """The next message in the calling process's mailbox (``send`` payloads, ``Down``, ``Exit``).

    Raises ``CallTimeout`` if nothing arrives within ``timeout`` seconds.
    """
    proc = current_process.get()
    if proc is None:
        node = current_node.get()
        if node is None:
            raise NotInProcess("no beamrl node here: run this inside a process or inside `async with beamrl.Node(...)`")
        return await node.receive(timeout)
    item = await proc._receive(timeout)
    if item is _TIMEOUT:
        raise CallTimeout(f"{proc.pid} received nothing within {timeout} s")
    return item[1]
