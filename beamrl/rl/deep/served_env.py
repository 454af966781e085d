"""``ServedEnv``: an ``EnvServer`` seen as a local environment, for acting code that runs in a worker thread.

    env = await ServedEnv.connect(node, "env0")            # on the event loop: asks for the spaces
    exp = await asyncio.to_thread(env.step, 1)             # in a worker thread: a call on the loop

Each ``reset``/``step`` is a ``["reset", seed]``/``["step", action]`` call that the
node's event loop carries out (to a local or a remote ``EnvServer``) while the worker
thread waits for the answer, so the ``Acting`` of an ``Actor`` or an ``AgentServer``
steps served environments exactly as it steps its own. Calling it from the event loop's
own thread would wait forever on itself: it raises instead. No torch here.
"""

from __future__ import annotations

import asyncio
from typing import Any

from beamrl.rl.exp import Exp

__all__ = ["ServedEnv"]


class ServedEnv:
    """See the module docstring."""

    def __init__(
        self, node: Any, target: Any, spaces: dict[str, Any], loop: asyncio.AbstractEventLoop, timeout: float
    ) -> None:
        self.node, self.target, self.loop, self.timeout = node, target, loop, timeout
        self.observation_space = spaces["observation_space"]
        self.action_space = spaces["action_space"]

    @classmethod
    async def connect(cls, node: Any, target: Any, timeout: float = 30.0) -> ServedEnv:
        """The ``EnvServer`` at ``target`` (a name, ``(name, node)`` or a pid), reached through ``node``."""
        spaces = await node.call(target, ["spaces"], timeout=timeout)
        return cls(node, target, spaces, asyncio.get_running_loop(), timeout)

    def _call(self, request: list[Any]) -> Any:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            raise RuntimeError(f"ServedEnv {self.target!r}: call it from a worker thread, not the event loop")
        return asyncio.run_coroutine_threadsafe(self.node.call(self.target, request, self.timeout), self.loop).result()

    def reset(self, seed: int | None = None) -> Exp:
        exp: Exp = self._call(["reset"] if seed is None else ["reset", seed])
        return exp

    def step(self, action: Any) -> Exp:
        exp: Exp = self._call(["step", action])
        return exp

    def close(self) -> None:
        """Nothing to release here: the ``EnvServer`` belongs to its own supervisor."""
