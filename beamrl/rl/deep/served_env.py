"""``ServedEnv``: an ``EnvServer`` seen as a local environment, for acting code that runs in a worker thread.

    env = await ServedEnv.connect(node, "env0")            # on the event loop: asks for the spaces
    exp = await asyncio.to_thread(env.step, 1)             # in a worker thread: a call on the loop

Each ``reset``/``step`` is a ``["reset", seed]``/``["step", action]`` call that the
node's event loop carries out (to a local or a remote ``EnvServer``) while the worker
thread waits for the answer, so the ``Acting`` of an ``Actor`` or an ``AgentServer``
steps served environments exactly as it steps its own. Calling it from the event loop's
own thread would wait forever on itself: it raises instead. No torch here.

A call that fails (the server is gone, its node is down, or a server restarted since
refuses to step before a reset) raises ``EnvServerFailed``, never a ``Rejected``: the
acting process must crash, so that its supervisor restarts it from its checkpoint and
it resets its envs (a ``Rejected`` would only be logged, and the acting would stop).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from beamrl.errors import BeamError, CallTimeout, NodeDown, NoProc, ProcessCrashed, Rejected
from beamrl.rl.exp import Exp

__all__ = ["EnvServerFailed", "ServedEnv"]


class EnvServerFailed(BeamError, RuntimeError):
    """A served env's ``reset`` or ``step`` failed; the acting process that made it crashes."""


class ServedEnv:
    """See the module docstring."""

    def __init__(
        self, node: Any, target: Any, spaces: dict[str, Any], loop: asyncio.AbstractEventLoop, timeout: float
    ) -> None:
        self.node, self.target, self.loop, self.timeout = node, target, loop, timeout
        self.observation_space = spaces["observation_space"]
        self.action_space = spaces["action_space"]

    @classmethod
    async def connect(cls, node: Any, target: Any, timeout: float = 30.0, wait: float = 0.0) -> ServedEnv:
        """The ``EnvServer`` at ``target`` (a name, ``(name, node)`` or a pid), reached through ``node``.

        ``wait`` > 0: a server that is not there (yet, or again: a restarted acting process
        finds its servers restarting too) is asked again until ``wait`` seconds have passed.
        """
        deadline = time.monotonic() + wait
        while True:
            try:
                spaces = await node.call(target, ["spaces"], timeout=timeout)
                break
            except (NoProc, NodeDown, CallTimeout):
                if time.monotonic() >= deadline:
                    raise
                await asyncio.sleep(0.2)
        return cls(node, target, spaces, asyncio.get_running_loop(), timeout)

    def _call(self, request: list[Any]) -> Any:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            raise RuntimeError(f"ServedEnv {self.target!r}: call it from a worker thread, not the event loop")
        future = asyncio.run_coroutine_threadsafe(self.node.call(self.target, request, self.timeout), self.loop)
        try:
            return future.result()
        except (Rejected, NoProc, NodeDown, CallTimeout, ProcessCrashed) as e:
            raise EnvServerFailed(f"env server {self.target!r}: {request[0]} failed: {type(e).__name__}: {e}") from e

    def reset(self, seed: int | None = None) -> Exp:
        exp: Exp = self._call(["reset"] if seed is None else ["reset", seed])
        return exp

    def step(self, action: Any) -> Exp:
        exp: Exp = self._call(["step", action])
        return exp

    def close(self) -> None:
        """Nothing to release here: the ``EnvServer`` belongs to its own supervisor."""
