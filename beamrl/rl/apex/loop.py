"""``LearnerLoop``: the learner side of Ape-X: sample the replay, learn, send priorities back.

    child("beamrl.rl.apex.loop:LearnerLoop", "replay", "learner", 512, name="learner-loop")
    child("beamrl.rl.apex.loop:LearnerLoop", ["replay-0", "replay-1"], "learner", 512, ...)   # shards
    await node.call("learner-loop", ["stats"])      # updates, waits, errors (and per shard)

The ``Learner`` (``beamrl.rl.deep.learner``: torch, target network every M updates,
checkpoints, versioned parameters) stays a plain request/answer process; this loop
drives it::

    batch = call(shard, ["sample", batch_size])      # None: the rate limiter held it back
    batch["weights"] /= batch["weights"].max()       # importance weights, per batch (see below)
    reply = call(learner, ["learn", batch])          # one update; |TD errors| in reply["td"]
    cast(shard, ["update_priorities", batch["indices"], reply["td"], batch["incarnation"]])

The priorities go back to the shard the batch came from, naming the shard process
(``incarnation``) that sampled it: a shard restarted since drops them instead of
setting them on whatever its ids name now (``beamrl.rl.replay_server``). A batch without
an ``incarnation`` (a replay that does not tag its batches) gets the three-item update.

``replay`` is one replay, or a list of R shards (``ReplayServer`` s that actors hash to).
Each shard has one fetcher: a process linked to the loop, started with it, that makes
one sample request each time the loop tells it to and sends the batch, or why there is
none, back as a message; the loop learns from batches in the order they arrive, and
asks a shard's fetcher for the next batch as it takes that shard's current one. So each
shard has one request in flight or one batch waiting, the next batch of a shard is
sampled while the learner computes the current one (as Ape-X's learner prefetches),
and no process is started per batch. A shard away or refusing is the fetcher's answer,
not its end; a fetcher that dies anyway (killed) is started again (the loop traps its
exit) and asked again. With several shards the loop takes whichever has a batch ready:
a shard whose rate limiter holds back (its actors have not fed it enough yet) or that is
away (restarting) delays only its own requests. Each shard's limiter keeps its samples
at ``samples_per_insert`` × its inserts, so the shards are sampled in proportion to what
their actors feed them, with no central view of their sizes. A batch's ``indices`` are
ids of the shard it came from: its priorities go back to that shard only.

While a shard or the learner is away, the loop retries every 0.1 s and counts it; it
never crashes for them. The replay trims itself to its capacity (a ring buffer).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Any

import numpy as np

from beamrl.api import call, cast, exit, send, send_after, spawn
from beamrl.errors import BeamError, Rejected
from beamrl.gen_server import GenServer, Stop
from beamrl.pid import Pid
from beamrl.process import NORMAL, Exit, From
from beamrl.reprs import short_repr
from beamrl.task import receive

__all__ = ["LearnerLoop"]

log = logging.getLogger("beamrl.rl.apex")
_RETRY_S = 0.1
_SAMPLED = "beamrl.apex:sampled"  # [_SAMPLED, shard, batch or None] from a fetcher
_FAILED = "beamrl.apex:sample_failed"  # [_FAILED, shard, why]
_REFETCH = "beamrl.apex:refetch"  # [_REFETCH, shard]: a retry after a failure
_FETCH = "beamrl.apex:fetch"  # loop -> fetcher: sample the next batch


async def _fetcher(loop: Pid, shard: int, replay: Any, batch_size: int) -> None:
    """Shard ``shard``'s fetcher: for each ``_FETCH`` from ``loop``, one ``["sample", batch_size]``
    to ``replay``, answered to ``loop`` as ``_SAMPLED`` or ``_FAILED``. It runs until the loop ends it."""
    while True:
        message = await receive()
        if message != _FETCH:
            log.debug("fetcher of shard %d ignored %s", shard, short_repr(message))
            continue
        try:
            batch = await call(replay, ["sample", batch_size], timeout=30.0)
        except BeamError as exc:  # the shard is away or refused: the loop asks again shortly
            send(loop, [_FAILED, shard, f"{type(exc).__name__}: {exc}"])
            continue
        send(loop, [_SAMPLED, shard, batch])


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
        """``replay``: one replay's address, or a list of shards' addresses. ``priorities``: send
        |TD errors| back to the replay (a prioritized one). ``decay_updates``: each batch carries
        ``progress`` = updates / decay_updates (capped at 1), which the learner's learning-rate
        schedule follows (None: no progress)."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.shards: list[Any] = list(replay) if isinstance(replay, list) else [replay]
        if not self.shards:
            raise ValueError("replay: give one replay's address or a non-empty list of shards")
        self.learner, self.batch_size, self.priorities = learner, batch_size, priorities
        self.decay_updates = decay_updates
        self.updates = 0  #: updates this loop asked for and got
        self.version = 0  #: the learner's version after the last update
        self.held_back = 0  #: samples the rate limiter answered with None
        self.errors = 0  #: failed rounds (a shard or the learner away)
        self.last_error = ""
        self.per_shard = [{"updates": 0, "held_back": 0, "errors": 0} for _ in self.shards]
        self.started = time.monotonic()
        self.paused = False
        self._ready: deque[tuple[int, dict[str, Any]]] = deque()  # (shard, batch), in arrival order
        self._fetching: set[int] = set()  # shards with a request in flight
        self._resume_at = 0.0  # after a failed learn: not before this
        self._logged: dict[int | None, str] = {}  # the last failure logged, per shard (None: the learner)
        self.trap_exit = True  # a fetcher that dies is started again (the parent's exit still stops us)
        self.fetchers: list[Pid] = []
        for k in range(len(self.shards)):
            self.fetchers.append(await self._start_fetcher(k))
            self._fetch(k)

    async def _start_fetcher(self, k: int) -> Pid:
        return await spawn(_fetcher, self.pid, k, self.shards[k], self.batch_size, link=True)

    def _fetch(self, k: int) -> None:
        """Ask shard ``k``'s fetcher for its next batch, unless it has a request in flight."""
        if k not in self._fetching:
            self._fetching.add(k)
            send(self.fetchers[k], _FETCH)

    async def terminate(self, reason: Any) -> None:
        for pid in self.fetchers:  # linked, but a normal stop does not travel along links
            exit(pid, "shutdown")

    def _failed(self, k: int | None, why: str) -> None:
        """Count a failed round with shard ``k`` (None: the learner); log it when its reason changed."""
        self.errors += 1
        if k is not None:
            self.per_shard[k]["errors"] += 1
        if why != self._logged.get(k):
            log.warning("learner loop: %s (retrying)", why)
        self._logged[k] = self.last_error = why

    async def _learn(self) -> None:
        if self.paused or not self._ready or time.monotonic() < self._resume_at:
            return
        k, batch = self._ready.popleft()
        self._fetch(k)  # this shard's next batch comes while the learner computes this one
        _batch_normalised(batch)
        if self.decay_updates:
            batch["progress"] = np.array(min(1.0, self.version / self.decay_updates))
        try:
            learned = await call(self.learner, ["learn", batch], timeout=60.0)
        except BeamError as exc:  # the learner restarting, or its node away: retry shortly
            self._failed(None, f"{type(exc).__name__}: {exc}")
            self._resume_at = time.monotonic() + _RETRY_S
            send_after(_RETRY_S, self.pid, "tick")
            return
        self.updates += 1
        self.per_shard[k]["updates"] += 1
        self.version = int(learned["version"])
        if self.priorities and "td" in learned:
            update = ["update_priorities", batch["indices"], learned["td"]]
            if "incarnation" in batch:  # the shard process that sampled it: a restarted one drops it
                update.append(batch["incarnation"])
            cast(self.shards[k], update)
        if self._ready:
            cast(self.pid, ["tick"])  # through the mailbox, so calls (stats, pause) interleave

    async def handle_cast(self, request: Any) -> None:
        if request == ["tick"]:
            await self._learn()

    async def handle_info(self, message: Any) -> Stop | None:
        match message:
            case "tick":  # the retry after a failed learn
                self._resume_at = 0.0
                await self._learn()
            case [str(tag), int(k), batch] if tag == _SAMPLED and k in self._fetching:
                self._fetching.discard(k)
                if batch is None:  # held back for sample_wait: ask again at once (the shard waits, not us)
                    self.held_back += 1
                    self.per_shard[k]["held_back"] += 1
                    self._fetch(k)
                else:
                    self._ready.append((k, batch))
                    await self._learn()
            case [str(tag), int(k), str(why)] if tag == _FAILED and k in self._fetching:
                self._fetching.discard(k)
                self._failed(k, f"shard {k} ({short_repr(self.shards[k], 60)}): {why}")
                send_after(_RETRY_S, self.pid, [_REFETCH, k])
            case [str(tag), int(k)] if tag == _REFETCH and 0 <= k < len(self.shards):
                self._fetch(k)
            case Exit(pid=pid, reason=reason) if pid in self.fetchers:
                k = self.fetchers.index(pid)
                self._failed(k, f"shard {k}: its fetcher exited ({reason}); a new one takes over")
                self.fetchers[k] = await self._start_fetcher(k)
                self._fetching.discard(k)  # its request, if any, died with it
                self._fetch(k)
            case Exit(reason=reason) if reason != NORMAL:
                return Stop(reason)  # trapped for the fetchers only: another linked process's crash ends us
            case _:
                log.debug("learner loop ignored %s", short_repr(message))
        return None

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
                    "shards": [s | {"fetcher": pid} for s, pid in zip(self.per_shard, self.fetchers, strict=True)],
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
