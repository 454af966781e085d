"""What ``beamrl dashboard`` and ``beamrl train --dashboard/--tensorboard`` run."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from beamrl.dashboard.server import Dashboard
from beamrl.node import Node


def client_name(keys: str | os.PathLike[str] | None, name: str | None) -> str:
    """The dashboard node's name: ``name``, the only key pair in ``keys``, or ``dashboard-<pid>``."""
    if name is not None:
        return name
    if keys is None:
        return f"dashboard-{os.getpid()}"
    secrets = sorted(Path(keys).glob("*.key_secret"))
    if len(secrets) == 1:
        return secrets[0].name.removesuffix(".key_secret")
    raise ValueError(f"{keys}: pass --name to pick the dashboard's key pair (found {len(secrets)} secret keys)")


def announce(dash: Dashboard, what: str) -> None:
    """Print where the page is, and say so when it needs its token."""
    print(f"dashboard of {what}: {dash.url}", flush=True)
    if dash.token is not None:
        print(
            f"listening on {dash.host}, beyond loopback: every request needs the token in that URL",
            flush=True,
        )
    if dash.allow_control:
        print("control is on: the page can stop and kill processes", flush=True)


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def serve_cluster(
    address: str,
    *,
    keys: str | None = None,
    name: str | None = None,
    timeout: float = 5.0,
    host: str = "127.0.0.1",
    port: int = 8080,
    token: str | None = None,
    allow_control: bool = False,
    heartbeat_timeout: float = 3.0,
) -> int:
    """Connect to the node at ``address`` (with ``beamrl shell``'s credentials) and serve its page.

    ``heartbeat_timeout`` is how soon the dashboard's node gives a silent node up (shown down).
    """
    interval = min(0.5, heartbeat_timeout / 3)
    node = Node(client_name(keys, name), keys=keys, heartbeat_interval=interval, heartbeat_timeout=heartbeat_timeout)
    async with node:
        peer = await node.connect(address, timeout)
        async with Dashboard(node, host=host, port=port, token=token, allow_control=allow_control) as dash:
            announce(dash, f"node {peer!r} at {address} and its cluster")
            await _until_signalled()
    return 0


def dashboard_observer(
    port: int, host: str = "127.0.0.1", token: str | None = None, allow_control: bool = False
) -> Any:
    """An observer for ``train(observers=...)``: the page, served from the learner's node."""

    @contextlib.asynccontextmanager
    async def observe(node: Node) -> AsyncIterator[Dashboard]:
        async with Dashboard(node, host=host, port=port, token=token, allow_control=allow_control) as dash:
            announce(dash, "this training run")
            yield dash

    return observe


def tensorboard_observer(logdir: str) -> Any:
    """An observer for ``train(observers=...)`` writing TensorBoard event files to ``logdir``."""
    from beamrl.dashboard.tensorboard import TensorBoardWriter, require_tensorboard

    require_tensorboard()
    return lambda node: TensorBoardWriter(node, logdir)
