"""Blocking sessions: drive a live node from a REPL, a notebook or a plain script.

    s = beamrl.connect("tcp://127.0.0.1:7001")        # keys="keys/" for a CURVE node; cookie_file=...
    env = s.proxy("env")
    env.reset(0)                                      # -> Exp, synchronously
    env.step(1)
    s.call("counter", ["get"])
    s.close()

A session runs a small client-only node (it does not listen) on its own event loop in a background
thread; every method blocks until that loop has the answer. Bare names refer
to the node the session connected to; ``(name, node)`` and pids work as usual.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

# imported for its wire types: spaces, Exp and the rl errors register with the codec there
import beamrl.rl.errors
import beamrl.rl.exp
import beamrl.rl.spaces  # noqa: F401
from beamrl.node import Node, _install_uvloop_policy
from beamrl.node_server import NAME as NODE_SERVER
from beamrl.proxy import request_for

_sessions = itertools.count(1)


def _default_name(keys: str | os.PathLike[str] | None) -> str:
    if keys is None:
        return f"session{next(_sessions)}-{os.getpid()}"
    secrets = sorted(Path(keys).glob("*.key_secret"))
    if len(secrets) == 1:
        return secrets[0].name.removesuffix(".key_secret")
    raise ValueError(
        f"{keys}: pass name=... to pick this session's key pair "
        f"(found {len(secrets)} secret keys; create one with `beamrl keys generate {keys} --name shell`)"
    )


class Session:
    """A blocking handle on a remote node; see the module docstring."""

    def __init__(
        self,
        address: str,
        *,
        keys: str | os.PathLike[str] | None = None,
        name: str | None = None,
        timeout: float = 5.0,
        cookie: bytes | None = None,
        cookie_file: str | os.PathLike[str] | None = None,
    ) -> None:
        self.timeout = timeout
        # Not hidden: the session joins the mesh, so every node of the cluster is reachable by name.
        self.node = Node(
            name or _default_name(keys), keys=keys, cookie=cookie, cookie_file=cookie_file
        )  # bad names fail before a thread starts
        _install_uvloop_policy()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="beamrl-session", daemon=True)
        self._thread.start()
        self._closed = False
        try:
            self._run(self.node.start_node(), timeout)
            self.peer: str = self._run(self.node.connect(address, timeout), timeout + 1.0)
        except BaseException:
            self.close()
            raise

    def _run(self, coro: Coroutine[Any, Any, Any], timeout: float | None = None) -> Any:
        if self._closed:
            coro.close()
            raise RuntimeError("this session is closed")
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(None if timeout is None else timeout + 1.0)

    def _target(self, target: Any) -> Any:
        return (target, self.peer) if isinstance(target, str) else target

    def call(self, target: Any, request: Any, timeout: float | None = None) -> Any:
        """``call`` on the connected node; bare names are looked up there."""
        timeout = self.timeout if timeout is None else timeout
        return self._run(self.node.call(self._target(target), request, timeout=timeout), timeout)

    def cast(self, target: Any, request: Any) -> None:
        """``cast`` (never raises)."""
        self._loop.call_soon_threadsafe(self.node.cast, self._target(target), request)

    def send(self, target: Any, message: Any) -> None:
        """``send`` a message to a process's ``handle_info``."""

        async def send() -> None:
            self.node.send(self._target(target), message)

        self._run(send(), self.timeout)

    def proxy(self, target: Any, timeout: float | None = None) -> SyncProxy:
        """A proxy whose methods block: ``s.proxy("env").step(1)``."""
        return SyncProxy(self, self._target(target), timeout)

    def registered(self) -> list[str]:
        """Names registered on the connected node."""
        names: list[str] = self.call((NODE_SERVER, self.peer), ["registered"])
        return names

    def tree(self) -> list[dict[str, Any]]:
        """The connected node's live supervision trees (what ``beamrl ps`` prints)."""
        trees: list[dict[str, Any]] = self.call((NODE_SERVER, self.peer), ["tree"])
        return trees

    def close(self) -> None:
        """Disconnect and stop the background loop."""
        if self._closed:
            return
        try:
            if self.node._started:
                asyncio.run_coroutine_threadsafe(self.node.shutdown(), self._loop).result(10)
        finally:
            self._closed = True
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Session {self.node.name!r} -> {getattr(self, 'peer', '?')!r}>"


class SyncProxy:
    """``p.step(1)`` == ``session.call(target, ["step", 1])``; keywords travel as a trailing dict."""

    __slots__ = ("_session", "_target", "_timeout")

    def __init__(self, session: Session, target: Any, timeout: float | None) -> None:
        self._session = session
        self._target = target
        self._timeout = timeout

    def __getattr__(self, method: str) -> Any:
        if method.startswith("_"):
            raise AttributeError(method)
        session, target, timeout = self._session, self._target, self._timeout

        def remote_method(*args: Any, **kwargs: Any) -> Any:
            return session.call(target, request_for(method, args, kwargs), timeout)

        remote_method.__name__ = method
        return remote_method

    def __repr__(self) -> str:
        return f"<SyncProxy {self._target!r}>"


def connect(
    address: str,
    *,
    keys: str | os.PathLike[str] | None = None,
    name: str | None = None,
    timeout: float = 5.0,
    cookie: bytes | None = None,
    cookie_file: str | os.PathLike[str] | None = None,
) -> Session:
    """Open a blocking session on the node at ``address``.

    Without ``keys`` it authenticates with the cookie, as nodes do: by default the same
    file ``beamrl node start`` uses (``~/.config/beamrl/cookie``), so a local node needs
    no extra step.
    """
    return Session(address, keys=keys, name=name, timeout=timeout, cookie=cookie, cookie_file=cookie_file)
