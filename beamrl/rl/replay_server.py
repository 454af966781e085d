"""``ReplayServer``: a ``ReplayMemory`` as a process, fed by actors and sampled by learners.

    pid = await node.start(ReplayServer, 100_000, prioritized=True, checkpoint_dir="ckpt/replay", name="replay")
    node.cast("replay", ["add_batch", {"state": s, "action": a, ...}, None])   # an actor
    batch = await node.call("replay", ["sample", 512])                           # a learner
    node.cast("replay", ["update_priorities", batch["indices"], abs(td_error)])

Requests (casts never answer; a call answers with the value shown):

=============================================  ===================================================
``["add", exp]``                               cast or call: one ``Exp`` -> ids stored (``int64``)
``["add", exp, priority]``                     ... with its initial priority (None: the max)
``["add", exp, priority, stream]``             ... into n-step window ``stream`` (see below)
``["add_batch", batch]``                       cast or call: ``batch`` is a dict of columns
                                               (``state``, ``action``, ``reward``,
                                               ``next_state``, ``terminated``, ``truncated``)
                                               or a list of ``Exp`` -> ids stored
``["add_batch", batch, priorities]``           ... with one initial priority per row (or None)
``["add_batch", batch, priorities, stream]``   ... into n-step window ``stream``
``["sample", n]``                              call: ``n`` random transitions -> a dict of
                                               numpy arrays: the ``COLUMNS``, ``indices``
                                               (global ids) and ``weights`` (IS weights; all
                                               1.0 for a uniform memory), and
                                               ``incarnation`` (an int: see below)
``["sample", n, "random" | "latest"]``         call: the same, or the ``n`` most recent
``["update_priorities", indices, prios]``      cast: evicted ids are skipped (counted in
                                               ``stats["stale_skipped"]``); call: evicted ids
                                               raise ``StaleIndex`` and nothing changes ->
                                               how many were set
``["update_priorities", indices, prios, inc]`` ... for ids sampled from incarnation ``inc``
``["update_priorities", indices, prios, "skip"]``  call: skip evicted ids, like the cast
``["update_priorities", i, p, "skip", inc]``   ... for ids sampled from incarnation ``inc``
``["flush"]`` / ``["flush", stream]``          cast or call: close n-step windows -> ids stored
``["len"]``                                    call: transitions held
``["stats"]``                                  call: a dict, see ``stats`` below
``["checkpoint"]``                             call: write a checkpoint now -> bytes written
=============================================  ===================================================

Incarnations. Each server process picks a random ``incarnation`` (a 53-bit integer) when
it starts, restored from a checkpoint or not, and every batch it samples carries it. A
learner names it when it sends the batch's priorities back: a server restarted since
(killed, restored from its checkpoint) hands restored and lost ids out again, so ids
from the batch of an earlier process may name other transitions now. An update naming
another incarnation is dropped whole, never applied: a cast is counted in
``stats["foreign_updates"]`` and logged; a call raises ``StaleIndex`` (also counted). An
update that names no incarnation (the three-item form, what callers sent before there
were incarnations) is taken as meant for this one: right against a server that never
restarted, and what a caller that does not keep the batch's ``incarnation`` still gets;
a caller whose batches can outlive a restart should name it.

Rate limiter. Started with ``rate_limiter={"min_size": M, "samples_per_insert": R,
"error_buffer": E}`` (``beamrl.rl.replay.ratelimit``), a ``["sample", ...]`` call waits
until the limiter allows it: the memory holds ``M`` transitions and the transitions
sampled stay within ``E`` of ``R`` per transition inserted. One that is not allowed within
``sample_wait`` seconds answers ``None`` (so a learner's loop stays responsive and can
retry); waiting samples are served in order as inserts arrive. ``["insert_headroom"]``
(a call) answers how many transitions may still be inserted before the sampler lags the
target by more than ``E`` (None without a limiter): actors pause while it is <= 0, as
Reverb's inserters block. ``stats["rate_limiter"]``
shows the counts, the actual ratio, and ``behind`` (the sampler lags the target).

Bad input. In a call, bad input (wrong shape or dtype for what the memory holds,
sampling more than it holds or from an empty memory, NaN or negative priorities,
stale ids, unknown requests) raises ``beamrl.rl.errors.ReplayError`` (a ``Rejected``)
at the caller (on another node too: ``rl/errors.py`` registers its errors with the
codec, so they arrive as their own class);
the memory is unchanged and the server keeps running. In a cast the same
errors are logged as a warning naming the request, counted in
``stats["rejected_casts"]``, and the memory is unchanged.

n-step windows. With ``n_step > 1`` each actor must add into its own ``stream``
(any string or integer, e.g. the actor's id): consecutive steps of one stream
form the n-step returns, and interleaved actors on one stream would be mixed up.
Steps still in a window are not stored yet, so they are neither sampled nor
checkpointed until their window closes.

Persistence. With ``checkpoint_dir`` the server writes an incremental
``ReplayMemory.checkpoint`` there every ``checkpoint_every`` seconds (when
something changed), on ``["checkpoint"]``, and in ``terminate`` (a graceful stop,
a supervisor's shutdown, a crash, or an exit signal other than ``kill``: the
server traps exits so that ``exit(pid, reason)`` still saves). Checkpoints are
written from a worker thread so the node's other processes keep running. Beside
them, after every insert, it writes ``ledger.json``: the memory's total-added counter
(``ReplayMemory.count``), one small record overwritten in place
(``beamrl.rl.replay.ledger``: no rename, no fsync, ~8 µs; it guards against the process
dying, not the machine). ``ledger_every=S`` writes it every S seconds instead.

A server started with a ``checkpoint_dir`` that holds a checkpoint restores it
(ignoring ``seed``: the sampler continues where it was) and compares the
restored total with the ledger's::

    lost = ledger total - restored total      (0 after a graceful stop or a crash)

It logs that figure and reports it in ``stats`` (``restored``, ``restored_total``,
``lost``): the transitions added after the checkpoint it restored, exactly (with
``ledger_every=S``, a lower bound short of up to S seconds' worth). Steps waiting in
n-step windows were never added, so they are not counted. The ids of lost transitions are handed out again to the
next ones added. A checkpoint written with a different ``capacity``,
``prioritized``, ``alpha``, ``n_step`` or ``gamma`` is refused: ``start`` fails
with a ``ReplayError`` instead of mixing two configurations. Under a supervisor,
give the child a ``shutdown`` long enough to write a checkpoint of the memory's
changes (the default 5 s is plenty for incremental ones). A ``kill`` that lands
while a checkpoint is being written cannot stop its thread: the restarted server
may restore the checkpoint before it (and count the difference as lost), and it
takes the directory's writer fence over (``beamrl.fencing``), so the old thread can
no longer rename or delete anything there. A second live server on the same
directory fails to start (``CheckpointInUse``). Started for a peer (a remote
``start_child``), ``checkpoint_dir`` must lie inside the node's data directory
(``beamrl.trust``).

``lost`` is this restore's figure. The ledger also keeps counts over every incarnation
of the directory (``beamrl.rl.replay.ledger.Ledger``), so that ``lost_total`` (``lost``
of every restore, summed) and ``foreign_updates_total`` survive further kills; an
incarnation's foreign updates reach the ledger with its next write (a kill before it
loses them from the total).

``stats`` keys: ``incarnation``, ``len``, ``capacity``, ``total_added`` (ids handed out so far,
including restored history), ``added`` (transitions stored by this incarnation),
``prioritized``, ``n_step``, ``beta``, ``samples`` (batches served),
``rejected_casts``, ``stale_skipped``, ``checkpoint_dir``, ``checkpoints``
(written by this incarnation), ``last_checkpoint`` (Unix time or None),
``last_checkpoint_bytes``, ``last_checkpoint_seconds``, ``ledger_total`` (the
count the ledger last recorded), ``restored`` (transitions held after the
restore), ``restored_total``, ``lost``, ``lost_total``, ``foreign_updates`` (updates
naming another incarnation, dropped by this one) and ``foreign_updates_total`` (by
every incarnation of the checkpoint directory; this one's without a directory).

About 570 lines (130 of them this docstring), past the ~400 aim: the request table above
is one process's, and its validation, incarnations, checkpoint fencing and rate limiting
each touch most requests; the storage, persistence, ledger and limiter themselves already
live in ``beamrl.rl.replay``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import secrets
import time
from collections import deque
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from beamrl.api import cancel_timer, reply, send_after
from beamrl.fencing import WriterFence
from beamrl.gen_server import GenServer, NoReply, Stop
from beamrl.process import NORMAL, Exit
from beamrl.reprs import short_repr, short_text
from beamrl.rl.errors import ReplayError, StaleIndex
from beamrl.rl.exp import Exp
from beamrl.rl.replay import ReplayMemory
from beamrl.rl.replay.ledger import LEDGER, Ledger, check_config, read_ledger, write_ledger
from beamrl.rl.replay.ratelimit import RateLimiter
from beamrl.rl.replay.segments import has_checkpoint

__all__ = ["LEDGER", "ReplayServer"]

log = logging.getLogger("beamrl.replay")

"""The file beside the checkpoint that records the total-added counter."""

_CHECKPOINT_TICK = "beamrl.replay:checkpoint"
_LEDGER_TICK = "beamrl.replay:ledger"
_SAMPLE_EXPIRED = "beamrl.replay:sample_expired"

# The codec rebuilds only the errors of beamrl.rl.errors as their class; these live in replay.py.


class ReplayServer(GenServer):
    """Hosts one ``ReplayMemory``; see the module docstring for the requests and persistence."""

    async def init(
        self,
        capacity: int,
        *,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        checkpoint_every: float | None = 30.0,
        ledger_every: float | None = None,
        rate_limiter: Mapping[str, Any] | None = None,
        sample_wait: float = 1.0,
        **memory_kwargs: Any,
    ) -> None:
        """``capacity`` and ``memory_kwargs`` (prioritized, alpha, beta, eps, n_step, gamma,
        beta_steps, seed) build the ``ReplayMemory``. ``checkpoint_dir``: where to save and
        restore (None: nothing is saved). ``checkpoint_every``: seconds between periodic
        checkpoints (None: only on request and in ``terminate``). ``ledger_every``: seconds
        between writes of the total-added ledger (None: after every insert, so ``lost`` is
        exact). ``rate_limiter``: the fields of a ``RateLimiter`` (None: samples are never
        held back); ``sample_wait``: seconds a held-back sample waits before it answers None."""
        pairs = (("checkpoint_every", checkpoint_every), ("ledger_every", ledger_every), ("sample_wait", sample_wait))
        for label, value in pairs:
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or value <= 0):
                raise ReplayError(f"{label} must be a positive number of seconds, got {value!r}")
        self.trap_exit = True  # exit(pid, reason) runs terminate, which saves; kill still cannot be trapped
        self.incarnation = secrets.randbits(53)  # new for every process: what priority updates must name
        self.memory = ReplayMemory(capacity, **memory_kwargs)
        if rate_limiter is not None and not isinstance(rate_limiter, Mapping):
            raise ReplayError(f"rate_limiter must be a mapping of RateLimiter fields, got {rate_limiter!r}")
        try:
            self.limiter = None if rate_limiter is None else RateLimiter.from_data(dict(rate_limiter))
        except (TypeError, ValueError) as exc:
            raise ReplayError(str(exc)) from None
        self.sample_wait = float(sample_wait)
        self._waiting: deque[tuple[Any, Any, Any, int]] = deque()  # (from_, n, mode, token)
        self._tokens = itertools.count()
        self.rate_timeouts = 0
        # started for a peer: the directory must stay inside the node's data dir (beamrl.trust)
        self.dir = None if checkpoint_dir is None else self.node.data_path(checkpoint_dir, "checkpoint_dir")
        self.checkpoint_every = checkpoint_every
        self.ledger_every = None if ledger_every is None else float(ledger_every)
        self.samples = 0
        self.rejected_casts = 0
        self.stale_skipped = 0
        self.checkpoints = 0
        self.last_checkpoint: float | None = None
        self.last_checkpoint_bytes = 0
        self.last_checkpoint_seconds = 0.0
        self.restored = 0
        self.restored_total = 0
        self.lost = 0
        self.foreign_updates = 0
        self.before = Ledger(0)  # the counts over earlier incarnations, from the ledger
        self.ledger = Ledger(0)  # what the ledger last recorded
        self._changed = False
        self._timers: dict[str, Any] = {}
        self._fence: WriterFence | None = None
        if self.dir is not None:
            # one writer per checkpoint directory: a server killed mid-checkpoint cannot write over ours
            self._fence = WriterFence.acquire(self.dir, lambda: self._alive, self.dir / ".writer.lock", ".*.tmp")
            try:
                await self._restore(self.dir)
            except BaseException:
                self._fence.release()
                raise
            if self.ledger_every is not None:
                self._arm(_LEDGER_TICK, self.ledger_every)
            if self.checkpoint_every is not None:
                self._arm(_CHECKPOINT_TICK, self.checkpoint_every)
        if self.limiter is not None:
            self.limiter.restored(len(self.memory))  # as if sampled at the ratio: no burst on old data

    async def terminate(self, reason: Any) -> None:
        for ref in self._timers.values():
            cancel_timer(ref)
        self._timers.clear()
        if self.dir is not None:
            try:
                if self._changed:
                    await self._checkpoint()
                self._write_ledger()
            finally:
                if self._fence is not None:
                    self._fence.release()

    # -- requests -----------------------------------------------------------------------
    async def handle_call(self, request: Any, from_: Any) -> Any:
        match request:
            case ["sample", n]:
                return self._limited_sample(n, "random", from_)
            case ["sample", n, mode]:
                return self._limited_sample(n, mode, from_)
            case ["update_priorities", indices, priorities]:
                return self._update(indices, priorities, "raise")
            case ["update_priorities", indices, priorities, "skip"]:
                return self._update(indices, priorities, "skip")
            case ["update_priorities", indices, priorities, incarnation]:
                return self._update(indices, priorities, "raise", incarnation)
            case ["update_priorities", indices, priorities, "skip", incarnation]:
                return self._update(indices, priorities, "skip", incarnation)
            case ["len"]:
                return len(self.memory)
            case ["insert_headroom"]:
                return None if self.limiter is None else float(self.limiter.insert_headroom())
            case ["stats"]:
                return self.stats()
            case ["checkpoint"]:
                if self.dir is None:
                    raise ReplayError("this ReplayServer has no checkpoint_dir: start it with checkpoint_dir=DIR")
                try:
                    return await self._checkpoint()
                except OSError as exc:  # the memory is intact; the caller learns why nothing was written
                    raise ReplayError(f"checkpoint to {self.dir} failed: {exc}") from exc
        return self._added(self._add(request))

    async def handle_cast(self, request: Any) -> None:
        try:
            match request:
                case ["update_priorities", indices, priorities] | ["update_priorities", indices, priorities, "skip"]:
                    self._update(indices, priorities, "skip")
                case ["update_priorities", indices, priorities, incarnation]:
                    self._update(indices, priorities, "skip", incarnation)
                case ["update_priorities", indices, priorities, "skip", incarnation]:
                    self._update(indices, priorities, "skip", incarnation)
                case ["sample", *_] | ["len"] | ["stats"] | ["checkpoint"]:
                    raise ReplayError(f"{short_repr(request[0], 40)} is a call, not a cast: nothing to answer to")
                case _:
                    self._added(self._add(request))
        except ReplayError as exc:
            self.rejected_casts += 1
            log.warning("%s dropped the cast %s: %s (the memory is unchanged)", self, _describe(request), exc)

    async def handle_info(self, message: Any) -> Any:
        if message == _LEDGER_TICK:
            if self._record() != self.ledger:
                self._write_ledger()
            assert self.ledger_every is not None
            self._arm(_LEDGER_TICK, self.ledger_every)
        elif message == _CHECKPOINT_TICK:
            if self._changed:
                try:
                    await self._checkpoint()
                except OSError as exc:  # a full disk must not crash the memory: retried next tick
                    log.warning("%s: checkpoint to %s failed: %s", self, self.dir, exc)
            assert self.checkpoint_every is not None
            self._arm(_CHECKPOINT_TICK, self.checkpoint_every)
        elif isinstance(message, list) and len(message) == 2 and message[0] == _SAMPLE_EXPIRED:
            self._expire(message[1])
        elif isinstance(message, Exit):
            # trapped only to save on exit: a linked process's abnormal exit still ends us
            if message.reason != NORMAL:
                return Stop(message.reason)
        else:
            log.debug("%s ignored message %s", self, short_repr(message))
        return None

    # -- the work -----------------------------------------------------------------------
    def _add(self, request: Any) -> np.ndarray:
        match request:
            case ["add_batch", batch, *rest] if len(rest) <= 2:
                priorities = rest[0] if rest else None
                stream = _stream(rest[1]) if len(rest) == 2 else 0
                if not isinstance(batch, Mapping | list | tuple):
                    raise ReplayError(
                        f"add_batch takes a dict of columns or a list of Exp, got a {type(batch).__name__}"
                    )
                ids = self.memory.add_batch(batch, priorities=priorities, stream=stream)
            case ["add", exp, *rest] if len(rest) <= 2:
                if not isinstance(exp, Exp):
                    raise ReplayError(f"add takes an Exp, got a {type(exp).__name__}: use add_batch for columns")
                priority = rest[0] if rest else None
                if priority is not None and (
                    isinstance(priority, bool) or not isinstance(priority, int | float | np.integer | np.floating)
                ):
                    raise ReplayError(f"priority must be a number or None, got {priority!r}")
                stream = _stream(rest[1]) if len(rest) == 2 else 0
                ids = self.memory.add(exp, None if priority is None else float(priority), stream=stream)
            case ["flush"]:
                ids = self.memory.flush()
            case ["flush", stream]:
                ids = self.memory.flush(_stream(stream))
            case _:
                raise ReplayError(
                    f"ReplayServer does not understand {_describe(request)}: use add, add_batch, sample, "
                    "update_priorities, flush, len, stats or checkpoint"
                )
        if ids.size:
            self._changed = True
            if self.dir is not None and self.ledger_every is None:
                self._write_ledger()  # what a kill from now on loses is counted exactly
        return ids

    def _limited_sample(self, n: Any, mode: Any, from_: Any) -> Any:
        """A batch now, or (rate-limited) later through ``reply``; None once ``sample_wait`` passed."""
        if self.limiter is None:
            return self._sample(n, mode)
        if not isinstance(n, int | np.integer) or isinstance(n, bool) or n < 1:
            raise ReplayError(f"batch size must be a positive integer, got {n!r}")
        if mode not in ("random", "latest"):
            raise ReplayError(f"mode must be 'random' or 'latest', got {short_repr(mode, 40)}")
        if not self._waiting and self.limiter.can_sample(int(n), len(self.memory)):
            batch = self._sample(n, mode)
            self.limiter.sampled(int(n))
            return batch
        token = next(self._tokens)
        self._waiting.append((from_, n, mode, token))
        send_after(self.sample_wait, self.pid, [_SAMPLE_EXPIRED, token])
        return NoReply

    def _added(self, ids: np.ndarray) -> np.ndarray:
        """Count inserted transitions for the limiter and serve the samples they allow."""
        limiter = self.limiter
        if limiter is not None and ids.size:
            limiter.inserted(int(ids.size))
            while self._waiting and limiter.can_sample(int(self._waiting[0][1]), len(self.memory)):
                from_, n, mode, _ = self._waiting.popleft()
                reply(from_, self._sample(n, mode))  # checked when it arrived; the memory holds n
                limiter.sampled(int(n))
        return ids

    def _expire(self, token: Any) -> None:
        for i, (from_, _, _, t) in enumerate(self._waiting):
            if t == token:
                del self._waiting[i]
                self.rate_timeouts += 1
                reply(from_, None)
                return

    def _sample(self, n: Any, mode: Any) -> dict[str, np.ndarray]:
        batch: dict[str, Any] = self.memory.get_batch(n, mode)
        if "weights" not in batch:
            batch["weights"] = np.ones(batch["indices"].shape[0], dtype=np.float32)
        batch["incarnation"] = self.incarnation
        self.samples += 1
        return batch

    def _update(self, indices: Any, priorities: Any, stale: Any, incarnation: Any = None) -> int:
        """Set priorities; ``incarnation``: the one the ids were sampled from (None: this one)."""
        if incarnation is not None and self._foreign(incarnation, indices, stale):
            return 0
        held = len(self.memory)
        oldest = self.memory.count - held
        ids = np.asarray(indices)
        done = self.memory.update_priorities(ids, priorities, stale=stale)
        if stale == "skip" and ids.ndim == 1 and ids.dtype.kind in "iu":
            self.stale_skipped += int((ids < oldest).sum())
        if done:
            self._changed = True
        return done

    def _foreign(self, incarnation: Any, indices: Any, stale: Any) -> bool:
        """True (and counted) when an update names another incarnation: it is dropped whole."""
        if isinstance(incarnation, bool) or not isinstance(incarnation, int | np.integer):
            raise ReplayError(
                "update_priorities takes 'skip' or the batch's incarnation (an integer) after the priorities, "
                f"got {short_repr(incarnation, 40)}"
            )
        if incarnation == self.incarnation:
            return False
        self.foreign_updates += 1
        if self.dir is not None and self.ledger_every is None:
            self._write_ledger()
        rows = len(indices) if isinstance(indices, list | tuple) or getattr(indices, "ndim", 0) == 1 else "some"
        why = (
            f"priorities for {rows} ids sampled from incarnation {int(incarnation)}, not this one "
            f"({self.incarnation}): the replay restarted since, so those ids may name other transitions now"
        )
        if stale == "raise":
            raise StaleIndex(f"{why}; nothing changed: sample again")
        log.info("%s dropped %s (%d such updates dropped so far)", self, why, self.foreign_updates)
        return True

    def stats(self) -> dict[str, Any]:
        """What ``["stats"]`` answers (see the module docstring)."""
        m = self.memory
        return {
            "incarnation": self.incarnation,
            "len": len(m),
            "capacity": m.capacity,
            "total_added": m.count,
            "added": m.count - self.restored_total,
            "prioritized": m.prioritized,
            "n_step": m.n_step,
            "beta": m.beta,
            "samples": self.samples,
            "rejected_casts": self.rejected_casts,
            "stale_skipped": self.stale_skipped,
            "checkpoint_dir": None if self.dir is None else str(self.dir),
            "checkpoints": self.checkpoints,
            "last_checkpoint": self.last_checkpoint,
            "last_checkpoint_bytes": self.last_checkpoint_bytes,
            "last_checkpoint_seconds": self.last_checkpoint_seconds,
            "ledger_total": self.ledger.total_added,
            "restored": self.restored,
            "restored_total": self.restored_total,
            "lost": self.lost,
            "lost_total": self.before.lost + self.lost,
            "foreign_updates": self.foreign_updates,
            "foreign_updates_total": self.before.foreign_updates + self.foreign_updates,
            "rate_limiter": None
            if self.limiter is None
            else {**self.limiter.stats(), "waiting": len(self._waiting), "timeouts": self.rate_timeouts},
        }

    # -- persistence ----------------------------------------------------------------------
    async def _restore(self, d: Path) -> None:
        ledger = read_ledger(d)
        if has_checkpoint(d):  # a lost manifest.json: the newest complete segment set
            memory = await asyncio.to_thread(ReplayMemory.restore, d)
            check_config(memory, self.memory, d)
            self.memory = memory
            self.restored = len(memory)
            self.restored_total = memory.count
        self.ledger = Ledger(self.restored_total)
        if ledger is None:
            if self.restored_total:
                log.info(
                    "%s restored %d transitions (%d added in all) from %s; no ledger, so losses are unknown",
                    self,
                    self.restored,
                    self.restored_total,
                    d,
                )
            return
        self.lost = max(0, ledger.total_added - self.restored_total)
        self.before = ledger._replace(total_added=0)
        log_at = logging.WARNING if self.lost else logging.INFO
        log.log(
            log_at,
            "%s restored %d transitions (%d added in all) from %s and lost %d added after the last checkpoint "
            "(ledger: %d)",
            self,
            self.restored,
            self.restored_total,
            d,
            self.lost,
            ledger.total_added,
        )
        self._write_ledger()  # the ledger now counts from what was restored

    async def _checkpoint(self) -> int:
        assert self.dir is not None
        t0 = time.perf_counter()
        # The server handles nothing else while it waits, so the memory cannot change under the thread.
        written = await asyncio.to_thread(self.memory.checkpoint, self.dir, fence=self._fence)
        self.last_checkpoint_seconds = time.perf_counter() - t0
        self.last_checkpoint_bytes = written
        self.last_checkpoint = time.time()
        self.checkpoints += 1
        self._changed = False
        self._write_ledger()
        return written

    def _record(self) -> Ledger:
        """What the ledger should say now: the ids handed out, and the counts over every incarnation."""
        lost, foreign = self.before.lost + self.lost, self.before.foreign_updates + self.foreign_updates
        return Ledger(self.memory.count, lost, foreign)

    def _write_ledger(self) -> None:
        assert self.dir is not None
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ledger = write_ledger(self.dir, self._record())

    def _arm(self, tick: str, seconds: float) -> None:
        self._timers[tick] = send_after(seconds, self.pid, tick)


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------


def _stream(key: Any) -> Hashable:
    """An n-step stream key from the wire: strings and integers (lists become tuples)."""
    if isinstance(key, list):
        key = tuple(key)
    try:
        hash(key)
    except TypeError:
        raise ReplayError(f"a stream must be a string or an integer, got {key!r}") from None
    return key


def _describe(request: Any) -> str:
    """A short name for a request in a log line or error (never the whole batch)."""
    if isinstance(request, list | tuple) and request and isinstance(request[0], str):
        rest = request[1:]
        parts = []
        for item in rest[:8]:
            if isinstance(item, np.ndarray):
                parts.append(f"array{item.shape}")
            elif isinstance(item, Mapping):
                keys = [short_repr(k, 20) if not isinstance(k, str) else k[:20] for k in itertools.islice(item, 8)]
                parts.append(f"{{{', '.join(keys)}{', ...' if len(item) > 8 else ''}}}")
            elif isinstance(item, list | tuple):
                parts.append(f"<{len(item)} items>")
            else:
                parts.append(short_repr(item, 40))
        return short_text(f"[{', '.join([short_repr(request[0], 40), *parts])}{', ...' if len(rest) > 8 else ''}]")
    return short_repr(request, 80)
