"""The ``Node`` facade: what users hold, ``async with Node("alpha") as node:``.

    async with Node("alpha") as node:
        pid = await node.start(Counter, 5, name="counter")
        await node.call("counter", ["add", 2])     # -> 7

``Node`` is ``LocalNode`` (processes, names, messages, links, monitors, timers: see
``beamrl.local_node``) plus what needs the layers above it: starting classes named
``"module:Class"``, supervisors and their children, proxies, and the wiring of the
distribution (``Distribution`` over a ``ZmqTransport``, and the ``$node`` server)
when the node listens or connects.

Targets accepted everywhere: a ``Pid``, a registered name (``"counter"``), or
``(name, node_name)`` for a name registered on another node.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from beamrl.child_spec import resolve_class
from beamrl.distribution import Distribution
from beamrl.local_node import LocalNode, Target, node_of
from beamrl.node_server import NAME, NodeServer
from beamrl.pid import Pid
from beamrl.process import Process, current_node
from beamrl.proxy import Proxy
from beamrl.supervisor import ChildInfo, ChildSpec, Supervisor
from beamrl.transport import TransportOptions

__all__ = ["LocalNode", "Node", "Target", "current_node", "node_of", "run"]


def _install_uvloop_policy() -> None:
    """Use uvloop for loops created from now on, when it is installed."""
    try:
        import uvloop  # optional dependency: the stdlib loop works, only slower
    except ImportError:
        return
    if not isinstance(asyncio.get_event_loop_policy(), uvloop.EventLoopPolicy):
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def run(main: Any) -> Any:
    """``asyncio.run(main)`` on uvloop when it is installed."""
    _install_uvloop_policy()
    return asyncio.run(main)


class Node(LocalNode):
    """A host for processes. Use as ``async with Node(name) as node:``.

    ``name`` defaults to a unique ``"node<N>@<pid>"``. ``listen`` (e.g.
    ``"tcp://127.0.0.1:0"``) makes the node reachable by others; ``keys`` is a
    directory with this node's CURVE key pair and the trusted peers' public keys.
    Without keys, nodes authenticate with a shared secret, the cookie: ``cookie``
    (bytes) or the file ``cookie_file`` (default ``~/.config/beamrl/cookie``, created
    on first use; see ``beamrl.transport.cookie``). ``max_send_bytes`` bounds what is
    queued for one peer and not yet acknowledged by it (beyond it: ``Backpressure``);
    a connection that has not authenticated within ``handshake_timeout`` seconds is
    dropped, and at most ``max_pending`` wait at once (see README "Security and limits").
    ``allow_modules`` adds modules whose classes peers may ask it to start (beamrl's own
    are always allowed); ``data_dir`` is where the paths in peers' requests must stay
    (see ``beamrl.trust``).
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
        cookie: bytes | None = None,
        cookie_file: str | os.PathLike[str] | None = None,
        max_send_bytes: int = 64 << 20,
        handshake_timeout: float = 5.0,
        max_pending: int = 64,
        allow_modules: Iterable[str] = (),
        data_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__(name)
        for module in allow_modules:
            self.allowed_modules.add(module)
        if data_dir is not None:
            self._data_dir = Path(data_dir)
        self._options = TransportOptions(
            listen=listen,
            keys=None if keys is None else os.fspath(keys),
            insecure=insecure,
            heartbeat_interval=heartbeat_interval,
            heartbeat_timeout=heartbeat_timeout,
            hidden=hidden,
            cookie=cookie,
            cookie_file=None if cookie_file is None else os.fspath(cookie_file),
            max_send_bytes=max_send_bytes,
            handshake_timeout=handshake_timeout,
            max_pending=max_pending,
        )
        self._ctx_token: contextvars.Token[LocalNode | None] | None = None
        self._dist: Distribution | None = None  # once it listens or connects

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
        await super().start_node()
        if self._options.listen is not None:
            await self._distribution()

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
        if isinstance(cls, str):
            self._check_started()
            cls = resolve_class(cls)
        return await super().start(cls, *args, name=name, link=link, **kwargs)

    # -- supervisors -------------------------------------------------------------------

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

    async def start_child(self, sup: Target, spec: ChildSpec | dict[str, Any], timeout: float = 5.0) -> Pid | None:
        """Add a child to a running (dynamic or static) supervisor; returns its pid (None if it ignored)."""
        result: Pid | None = await self.call(sup, ["start_child", spec], timeout=timeout)
        return result

    async def terminate_child(self, sup: Target, child_id: Any, timeout: float = 30.0) -> None:
        """Stop a supervisor's child (by name, or by pid for a dynamic supervisor)."""
        await self.call(sup, ["terminate_child", child_id], timeout=timeout)

    async def which_children(self, sup: Target, timeout: float = 5.0) -> list[ChildInfo]:
        """The supervisor's children: ``.name``, ``.pid`` (None when down), ``.restarts``..."""
        result: list[ChildInfo] = await self.call(sup, ["which_children"], timeout=timeout)
        return result

    def proxy(self, target: Target, timeout: float | None = 5.0) -> Proxy:
        """An object whose methods are calls: ``await p.step(1)`` == ``await node.call(t, ["step", 1])``."""
        return Proxy(self, target, timeout)

    # -- other nodes ----------------------------------------------------------------------

    async def _distribution(self) -> Distribution:
        dist = self._dist
        if dist is None:
            dist = self._dist = Distribution(self, self._options)
            self._remote = dist
            await dist.start()
            if self.whereis(NAME) is None:  # a dashboard may have started it already
                await self.start(NodeServer, name=NAME)
        return dist

    async def shutdown(self, timeout: float = 5.0) -> None:
        """Stop every process (top-level ones in reverse start order), then disconnect."""
        await super().shutdown(timeout)
        self._dist = None

    async def connect(self, address: str, timeout: float = 5.0) -> str:
        """Connect to the node at ``address`` (and, through it, to its cluster); returns its name."""
        self._check_started()
        dist = await self._distribution()
        return await dist.connect(address, timeout)
