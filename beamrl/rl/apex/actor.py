"""``ApexActor``: an Ape-X actor as a process (numpy only: what a Raspberry Pi runs).

    child("beamrl.rl.apex.actor:ApexActor", "CartPole-v1", cfg.to_data(), 0, 2, seed,
          ("replay", "learner"), ("learner", "learner"), name="apex-actor-0")
    await node.call("apex-actor-0", ["progress"])   # steps, episodes since the last call, version
    await node.call("apex-actor-0", ["act", obs])   # the greedy action (REPL: actor.act(obs))
    await node.call("apex-actor-0", ["plain_rate", 1.0])   # its loop's steps/s without messaging

It owns an ``ApexActing`` (a vector env, a numpy Q-network, the n-step windows) and
runs it in slices of ~20 ms, so calls interleave. Every ``send_every`` transitions it
casts ``["add_batch", columns, priorities]`` to the replay (a cast: it never waits on
the learner node); every ``pull_every`` env steps it calls the learner's
``["get_params", version]``, which answers only when newer, and asks the replay for its
``insert_headroom``: while the rate limiter has none (the learner lags the target
samples-per-insert ratio), the actor pauses, polling every 10 ms (``throttle``). When the learner or its
node is away the actor keeps acting on the parameters it has (its casts are dropped)
and pulls again at the next period; a fresh actor asks for ``["get_params", None]`` in
``init``, so an actor restarted on a restarted node starts from the current version.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import Any

import numpy as np

from beamrl.api import call, cast, send_after
from beamrl.errors import BeamError, Rejected
from beamrl.gen_server import GenServer
from beamrl.process import From
from beamrl.reprs import short_repr
from beamrl.rl.apex.acting import ApexActing
from beamrl.rl.apex.config import actor_epsilons, apex_config

__all__ = ["ApexActor"]

log = logging.getLogger("beamrl.rl.apex")
_SLICE_S = 0.02
_PULL_TIMEOUT_S = 5.0
_PAUSE_S = 0.01


class ApexActor(GenServer):
    """See the module docstring."""

    async def init(
        self,
        env_id: str,
        config: dict[str, Any],
        index: int,
        count: int,
        seed: int,
        replay: Any = "replay",
        learner: Any = "learner",
    ) -> None:
        self.cfg = apex_config(env_id, config)
        self.index, self.replay, self.learner, self.env_id = int(index), replay, learner, env_id
        self.epsilon = actor_epsilons(index, count, self.cfg)
        spec = await call(learner, ["spec"], timeout=30.0)
        self.acting = ApexActing(env_id, self.cfg, spec, seed + 7_919 * index, self.epsilon)
        self.version = -1
        self.pulls = 0
        self.pull_failures = 0
        self.paused_s = 0.0  #: time spent waiting for the replay's insert headroom
        self.throttled = False
        await self._pull(None)
        if self.version < 0:
            raise RuntimeError(f"actor {index}: the learner {learner!r} gave no parameters")
        self.next_pull = self.cfg.pull_every
        self.episodes: list[tuple[float, int]] = []
        self.started = time.monotonic()
        self.rate = (time.monotonic(), 0)
        self.sps = 0.0
        cast(self.pid, ["tick"])

    async def _pull(self, since: int | None) -> None:
        try:
            got = await call(self.learner, ["get_params", since], timeout=_PULL_TIMEOUT_S)
        except BeamError as exc:  # learner restarting or its node away: act on what we have
            self.pull_failures += 1
            log.info("actor %d: no parameters this time (%s); acting on version %d", self.index, exc, self.version)
            return
        self.pulls += 1
        if got is not None:
            self.version, params = got
            self.acting.set_params(params)

    async def _headroom(self) -> bool:
        """Whether the replay takes more now (no limiter, or it is away: go on acting)."""
        if not self.cfg.throttle:
            return True
        try:
            room = await call(self.replay, ["insert_headroom"], timeout=_PULL_TIMEOUT_S)
        except BeamError:
            return True
        return room is None or room > 0

    # -- the loop -------------------------------------------------------------------------
    async def handle_cast(self, request: Any) -> None:
        if request == ["tick"]:
            await self._tick()

    async def handle_info(self, message: Any) -> None:
        if message == "tick":
            await self._tick()

    async def _tick(self) -> None:
        acting = self.acting
        if self.throttled:  # the learner lags: wait (as Reverb's inserter blocks) and ask again
            t0 = time.monotonic()
            self.throttled = not await self._headroom()
            if self.throttled:
                self.paused_s += time.monotonic() - t0 + _PAUSE_S
                send_after(_PAUSE_S, self.pid, "tick")
                return
        deadline = time.monotonic() + _SLICE_S
        while time.monotonic() < deadline:
            acting.step()
            if acting.ready():
                batch, priorities = acting.take()
                cast(self.replay, ["add_batch", batch, priorities])
            if acting.steps >= self.next_pull:
                self.next_pull = acting.steps + self.cfg.pull_every
                # both round trips at once: the learner and the replay answer independently
                _, room = await asyncio.gather(self._pull(self.version), self._headroom())
                if not room:
                    self.throttled = True
                    break
        self.episodes.extend(acting.envs.drain())
        now = time.monotonic()
        t0, s0 = self.rate
        if now - t0 >= 1.0:
            self.sps, self.rate = (acting.steps - s0) / (now - t0), (now, acting.steps)
        if len(self.episodes) > 10_000:  # nobody polls: keep the newest
            del self.episodes[:-10_000]
        await asyncio.sleep(0)  # let the node's other tasks run (a stop, heartbeats) between slices
        cast(self.pid, ["tick"])

    def _plain_rate(self, seconds: float) -> float:
        """Env steps/s of this actor's loop with no messaging, run here for ``seconds``.

        ``beamrl bench apex``'s floor, measured in the actor's own process between its
        messaging windows (the same CPU, the same moment); this process acts for nothing else
        meanwhile.
        """
        plain = ApexActing(self.env_id, self.cfg, self.acting.policy.spec, 12_345, self.epsilon)
        plain.set_params(self.acting.policy.params)
        plain.run_plain(500)
        t0, s0 = time.perf_counter(), plain.steps
        while time.perf_counter() - t0 < seconds:
            plain.run_plain(200)
        return (plain.steps - s0) / (time.perf_counter() - t0)

    # -- requests -------------------------------------------------------------------------
    async def handle_call(self, request: Any, from_: From) -> Any:
        match request:
            case ["progress"]:
                episodes, self.episodes = self.episodes, []
                return {
                    "index": self.index,
                    "steps": self.acting.steps,
                    "sent": self.acting.sent,
                    "episodes": [[r, n] for r, n in episodes],
                    "version": self.version,
                    "epsilon": self.epsilon,
                    "steps_per_s": self.sps,
                    "pulls": self.pulls,
                    "pull_failures": self.pull_failures,
                    "paused_s": self.paused_s,
                }
            case ["act", obs]:
                try:
                    x = np.asarray(obs, np.float32).reshape(1, -1)
                    return int(self.acting.policy.q_values(x).argmax(axis=1)[0])
                except ValueError as exc:
                    raise Rejected(f"actor {self.index}: cannot act on {obs!r}: {exc}") from None
            case ["plain_rate", seconds] if isinstance(seconds, int | float) and 0 < seconds <= 10:
                return self._plain_rate(float(seconds))
            case ["stats"]:
                return {
                    "index": self.index,
                    "steps": self.acting.steps,
                    "version": self.version,
                    "epsilon": self.epsilon,
                    "torch_loaded": "torch" in sys.modules,  # an actor never needs it (a Pi has none)
                }
        raise Rejected(f"apex actor: unknown request {short_repr(request)}")
