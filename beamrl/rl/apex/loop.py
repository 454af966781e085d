"""``LearnerLoop``: the learner side of Ape-X: sample the replay, learn, send priorities back.

    child("beamrl.rl.apex.loop:LearnerLoop", "replay", "learner", 512, name="learner-loop")
    await node.call("learner-loop", ["stats"])      # updates, waits, errors

The ``Learner`` (``beamrl.rl.deep.learner``: torch, target network every M updates,
checkpoints, versioned parameters) stays a plain request/answer process; this loop
drives it::

    batch = call(replay, ["sample", batch_size])     # None: the rate limiter held it back
    batch["weights"] /= batch["weights"].max()       # importance weights, per batch (see below)
    reply = call(learner, ["learn", batch])          # one update; |TD errors| in reply["td"]
    cast(replay, ["update_priorities", batch["indices"], reply["td"]])

The next batch is sampled while the learner computes this one (as Ape-X's learner
prefetches), so the replay and the learner work side by side. While the replay or the
learner is away (restarting), the loop retries every 0.1 s and counts it; it never
crashes for them. The replay trims itself to its capacity (a ring buffer).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import numpy as np

from beamrl.api import call, cast, send_after
from beamrl.errors import BeamError, Rejected
from beamrl.gen_server import GenServer
from beamrl.process import From
from beamrl.reprs import short_repr

__all__ = ["LearnerLoop"]

log = logging.getLogger("beamrl.rl.apex")
_RETRY_S = 0.1


class LearnerLoop(GenServer):
    """See the module docstring."""

    async def init(
        self,
        replay: Any = "replay",
        learner: Any = "learner",
        batch_size: int = 512,
        priorities: bool = True,
        decay_updates: int | None = None,
    ) -> None:
        """``priorities``: send |TD errors| back to the replay (a prioritized one). ``decay_updates``:
        each batch carries ``progress`` = updates / decay_updates (capped at 1), which the
        learner's learning-rate schedule follows (None: no progress)."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.replay, self.learner, self.batch_size, self.priorities = replay, learner, batch_size, priorities
        self.decay_updates = decay_updates
        self.updates = 0  #: updates this loop asked for and got
        self.version = 0  #: the learner's version after the last update
        self.held_back = 0  #: samples the rate limiter answered with None
        self.errors = 0  #: failed rounds (the replay or the learner away)
        self.last_error = ""
        self.started = time.monotonic()
        self.paused = False
        self._next: dict[str, Any] | None = None
        cast(self.pid, ["tick"])

    async def _sample(self) -> dict[str, Any] | None:
        batch: dict[str, Any] | None = await call(self.replay, ["sample", self.batch_size], timeout=30.0)
        if batch is None:
            self.held_back += 1
        return batch

    async def _tick(self) -> None:
        try:
            batch = self._next if self._next is not None else await self._sample()
            self._next = None
            if batch is None:
                cast(self.pid, ["tick"])
                return
            _batch_normalised(batch)
            if self.decay_updates:
                batch["progress"] = np.array(min(1.0, self.version / self.decay_updates))
            learned, self._next = await asyncio.gather(
                call(self.learner, ["learn", batch], timeout=60.0), self._sample()
            )
        except BeamError as exc:  # replay or learner restarting, or a node away: retry shortly
            self._next = None
            self.errors += 1
            if str(exc) != self.last_error:
                log.warning("learner loop: %s: %s (retrying)", type(exc).__name__, exc)
            self.last_error = str(exc)
            send_after(_RETRY_S, self.pid, "tick")
            return
        self.updates += 1
        self.version = int(learned["version"])
        if self.priorities and "td" in learned:
            cast(self.replay, ["update_priorities", batch["indices"], learned["td"]])
        cast(self.pid, ["tick"])

    async def handle_cast(self, request: Any) -> None:
        if request == ["tick"] and not self.paused:
            await self._tick()

    async def handle_info(self, message: Any) -> None:
        if message == "tick" and not self.paused:
            await self._tick()

    async def handle_call(self, request: Any, from_: From) -> Any:
        match request:
            case ["stats"]:
                return {
                    "updates": self.updates,
                    "version": self.version,
                    "held_back": self.held_back,
                    "errors": self.errors,
                    "last_error": self.last_error,
                    "uptime_s": time.monotonic() - self.started,
                }
            case ["pause"]:
                self.paused = True
                return self.updates
        raise Rejected(f"learner loop: unknown request {short_repr(request)}")


def _batch_normalised(batch: dict[str, Any]) -> None:
    """Scale the importance weights so the batch's largest is 1.

    The replay normalises by the largest weight in the whole memory, which belongs to
    its smallest priority; actors' initial priorities can be ~0 (a transition the actor
    already predicted well), which would shrink every weight, and so the step size, by
    orders of magnitude. Per-batch normalisation keeps the relative weights and the step.
    """
    weights = batch.get("weights")
    if weights is not None and len(weights) and weights.max() > 0:
        batch["weights"] = weights / weights.max()
