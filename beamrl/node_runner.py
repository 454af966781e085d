"""What ``beamrl node start`` runs: a node, its connections, its tree, until a signal."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable, Iterator

# imported for its wire types: spaces, Exp and the rl errors register with the codec there
import beamrl.rl.errors
import beamrl.rl.exp
import beamrl.rl.spaces  # noqa: F401
from beamrl.errors import NodeDown
from beamrl.node import Node
from beamrl.node_config import NodeConfig
from beamrl.tree import start_tree

log = logging.getLogger("beamrl")


async def _join(node: Node, address: str, stop: asyncio.Event) -> None:
    """Connect to ``address``, retrying with back-off until it answers or the node stops."""
    delay = 0.2
    while not stop.is_set():
        try:
            peer = await node.connect(address, timeout=3.0)
        except (NodeDown, TimeoutError, OSError) as exc:
            log.info("join %s: %s; retrying in %.1f s", address, exc, delay)
            try:
                await asyncio.wait_for(stop.wait(), delay)
            except TimeoutError:
                pass
            delay = min(delay * 2, 5.0)
            continue
        print(f"joined node {peer!r} at {address}", flush=True)
        return


async def _stop_with_parent(stop: asyncio.Event, parent: int, every: float = 0.5) -> None:
    """Set ``stop`` once ``parent``, the process that started this one, is gone (this one was re-parented).

    ``parent`` is read before the node says it listens: read here, it could already be the
    re-parented one when the parent died right after that line (and then nothing would stop it).
    """
    while not stop.is_set():
        if os.getppid() != parent:
            # its output pipe went with it: write the rest nowhere rather than fail on a broken pipe
            devnull = os.open(os.devnull, os.O_WRONLY)
            for fd in (1, 2):
                os.dup2(devnull, fd)
            os.close(devnull)
            stop.set()
            return
        try:
            await asyncio.wait_for(stop.wait(), every)
        except TimeoutError:
            pass


class _HoldBack(logging.Filter):
    """Holds log records back; ``release`` emits them, else they are dropped."""

    def __init__(self, handler: logging.Handler) -> None:
        super().__init__()
        self.handler = handler
        self.held: list[logging.LogRecord] = []

    def filter(self, record: logging.LogRecord) -> bool:
        self.held.append(record)
        return False

    def release(self) -> None:
        self.handler.removeFilter(self)
        for record in self.held:
            self.handler.handle(record)
        self.held.clear()


@contextlib.contextmanager
def _log_held_back() -> Iterator[Callable[[], None]]:
    """Hold the log back; the ``release`` it yields shows what was held, else it is dropped.

    While a tree starts: shown if it starts, dropped if it fails, so the error says why
    once, without the crash reports of the children that failed to start.
    """
    holds = [_HoldBack(handler) for handler in logging.getLogger().handlers]
    for hold in holds:
        hold.handler.addFilter(hold)

    def release() -> None:
        for hold in holds:
            hold.release()

    try:
        yield release
    finally:
        for hold in holds:
            hold.handler.removeFilter(hold)


def until_signalled() -> asyncio.Event:
    """Log as a node does, and return an event that SIGINT or SIGTERM sets (call it in the running loop)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def serve(config: NodeConfig) -> int:
    """Run the node described by ``config`` until SIGINT/SIGTERM; 0 on a clean stop."""
    parent = os.getppid()  # before anything is printed: see _stop_with_parent
    stop = until_signalled()
    node = Node(
        config.name,
        listen=config.listen,
        keys=config.keys,
        insecure=config.insecure,
        heartbeat_interval=config.heartbeat_interval,
        heartbeat_timeout=config.heartbeat_timeout,
        cookie_file=config.cookie_file,
        allow_modules=config.allow_modules,
        data_dir=config.data_dir,
    )
    async with node:
        print(f"node {node.name!r} listening on {node.address}", flush=True)
        joins = [asyncio.ensure_future(_join(node, address, stop)) for address in config.join]
        if config.stop_with_parent:
            joins.append(asyncio.ensure_future(_stop_with_parent(stop, parent)))
        try:
            if config.tree is not None:
                with _log_held_back() as release:
                    pid = await start_tree(node, config.tree)  # a failure: its message alone, no crash reports
                    release()
                print(f"tree {config.tree} started: {pid}", flush=True)
            await stop.wait()
        finally:
            for task in joins:
                task.cancel()
            await asyncio.gather(*joins, return_exceptions=True)
            print(f"node {node.name!r} stopping: children stop in reverse order", flush=True)
    print("stopped", flush=True)
    return 0
