"""Proxies: a process address whose attribute calls become ``call`` requests.

``p.step(1)`` sends ``["step", 1]``. Keyword arguments travel as one trailing
dict: ``p.reset(seed=0)`` sends ``["reset", {"seed": 0}]`` and
``p.m(1, x=2)`` sends ``["m", 1, {"x": 2}]`` — handlers match on that shape.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from beamrl.local_node import LocalNode


def request_for(method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]:
    """The request a proxy sends for ``method(*args, **kwargs)``."""
    request = [method, *args]
    if kwargs:
        request.append(dict(kwargs))
    return request


class Proxy:
    """``await node.proxy("env").step(1)`` == ``await node.call("env", ["step", 1])``."""

    __slots__ = ("_node", "_target", "_timeout")

    def __init__(self, node: LocalNode, target: Any, timeout: float | None = 5.0) -> None:
        self._node = node
        self._target = target
        self._timeout = timeout

    def __getattr__(self, method: str) -> Any:
        if method.startswith("_"):
            raise AttributeError(method)
        node, target, timeout = self._node, self._target, self._timeout

        async def remote_method(*args: Any, **kwargs: Any) -> Any:
            return await node.call(target, request_for(method, args, kwargs), timeout=timeout)

        remote_method.__name__ = method
        return remote_method

    def __repr__(self) -> str:
        return f"<Proxy {self._target!r} on {self._node.name!r}>"
