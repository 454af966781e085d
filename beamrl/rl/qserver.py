"""``QServer``: a Q-table as a process, shared by any number of agents on any node.

    await node.start(QServer, 16, 4, checkpoint="runs/q.npz", name="qserver")
    q = node.proxy("qserver")
    await q.get(0, 1)                     # q_get: Q(s, a), 0.0 until written

Requests (the Elixir original's names in brackets):

==================================================  =========================================================
``["get", s, a]``                     [q_get]       Q(s, a) as a float
``["set", s, a, value]``              [q_set]       write one value
``["values", s]``                     [get_q]       all actions' values in ``s`` (array)
``["greedy", s]``                     [get_max_action]  the greedy action, ties broken at random (seeded)
``["table"]``                                       the whole table, shape (n_states, n_actions)
``["td_update", states, actions, targets, alpha]``  ``q[s,a] += alpha * (target - q[s,a])`` in order, batched;
                                                    replies with the TD errors. As a cast: the same, no reply
``["merge", states, actions, values, deltas, base_version]``  what a worker's copy changed in those cells
                                                    (each once): the ``values`` when the table is
                                                    still at ``base_version``, else ``+= deltas``
                                                    (see ``QTable.merge``); a cast, or a call that
                                                    replies whether the values were taken as they are
``["td_fold", states, actions, scale, shift]``      ``q[s,a] = scale * q[s,a] + shift`` (each cell once): a
                                                    worker's batch of TD updates composed per cell;
                                                    a cast, or a call replying None
``["version"]``                                     how many writes the table has seen
``["versioned_table"]``                             ``[version, table]``: a copy and the version it is of
``["info"]``                                        ``{"resumed": from a checkpoint?, "version", "shape"}``
``["checkpoint"]``                                  write the checkpoint now; replies with its path
``["save", name]``                                  a copy of the table named ``name`` beside the checkpoint
==================================================  =========================================================

With ``checkpoint=PATH`` the table is saved there every ``checkpoint_every`` seconds
(only when it changed), on graceful stop and on crash, through ``QTable.save`` (an atomic,
fsynced write: see ``beamrl.persist``); a (re)started QServer that finds the file resumes
from it, so a restart costs at most the last few seconds. The live server holds the
checkpoint's writer fence (``beamrl.fencing``): a server killed while its checkpoint
thread runs cannot write over its successor's file, and a second live server on the same
path fails to start. Started for a peer, ``checkpoint`` must lie inside the node's data
directory (``beamrl.trust``). Every request is checked: a wrong one (a state or action
out of range, a NaN or infinite value or target, a file name that is not plain) is
refused with a ``QTableError`` and the table is unchanged.
"""

from __future__ import annotations

import asyncio
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from beamrl.api import send_after
from beamrl.errors import Rejected
from beamrl.fencing import WriterFence
from beamrl.gen_server import GenServer
from beamrl.reprs import short_repr
from beamrl.rl.errors import QTableError
from beamrl.rl.qtable import QTable

log = logging.getLogger("beamrl.rl")


class QServer(GenServer):
    """A dense Q-table served as a process; see the module docstring for requests."""

    max_cells = 100_000_000
    """The largest table (n_states * n_actions) a QServer allocates: 800 MB of float64."""

    async def init(
        self,
        n_states: int,
        n_actions: int,
        *,
        checkpoint: str | None = None,
        checkpoint_every: float = 2.0,
        init: float = 0.0,
        seed: int | None = 0,
    ) -> None:
        for label, value in (("n_states", n_states), ("n_actions", n_actions)):
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise QTableError(f"QServer: {label} must be an integer >= 1, got {value!r:.80}")
        if int(n_states) * int(n_actions) > self.max_cells:
            raise QTableError(f"QServer: a {n_states} x {n_actions} table exceeds max_cells={self.max_cells}")
        if not _is_number(checkpoint_every) or not checkpoint_every > 0:
            raise QTableError(f"QServer: checkpoint_every must be seconds > 0, got {checkpoint_every!r:.80}")
        if not _is_number(init) or not math.isfinite(init):
            raise QTableError(f"QServer: init must be a finite number, got {init!r:.80}")
        # started for a peer: the path must stay inside the node's data dir (beamrl.trust)
        self.checkpoint_path = None if checkpoint is None else self.node.data_path(checkpoint, "checkpoint")
        self.checkpoint_every = float(checkpoint_every)
        self.resumed = False
        self.q = QTable(n_states, n_actions, init=init, seed=seed)
        self._fence: WriterFence | None = None
        if self.checkpoint_path is not None:
            path = self.checkpoint_path
            # one writer per checkpoint: a server killed mid-write cannot overwrite ours
            lock = path.parent / f".{path.name}.lock"
            self._fence = WriterFence.acquire(path, lambda: self._alive, lock, f".{path.name}.*.tmp")
            if path.exists():
                try:
                    self.q.restore(path)  # a QTableError (init fails) if it holds another shape
                except QTableError:
                    self._fence.release()
                    raise
                self.resumed = True
                log.info("qserver: resumed from %s (version %d)", path, self.q.version)
        self._saved_version = self.q.version
        if self.checkpoint_path is not None:
            send_after(self.checkpoint_every, self.pid, "checkpoint")

    async def handle_call(self, request: Any, from_: Any) -> Any:
        q = self.q
        try:
            match request:
                case ["get", s, a]:
                    return q.get(s, a)
                case ["values", s]:
                    return q.values(s)
                case ["greedy", s]:
                    return q.greedy_action(s)
                case ["table"]:
                    return q.to_array()
                case ["set", s, a, value]:
                    q.set(s, a, _finite(value, "value"))
                    return None
                case ["td_update", states, actions, targets, alpha]:
                    return q.td_update(states, actions, _finite_array(targets), _finite_array(alpha, "alpha"))
                case ["merge", states, actions, values, deltas, int(base)]:
                    return self._merge(states, actions, values, deltas, base)
                case ["td_fold", states, actions, scale, shift]:
                    return q.td_fold(states, actions, _finite_array(scale, "scale"), _finite_array(shift, "shift"))
                case ["version"]:
                    return q.version
                case ["versioned_table"]:  # workers report the version they act with
                    return [q.version, q.to_array()]
                case ["info"]:
                    return {"resumed": self.resumed, "version": q.version, "shape": list(q.table.shape)}
                case ["checkpoint"]:
                    return str(await self._checkpoint(force=True))
                case ["save", name]:
                    return str(await self._save_as(name))
        except (QTableError, TypeError, ValueError, IndexError, OverflowError) as exc:  # refused: state unchanged
            raise QTableError(f"QServer refused {short_repr(request[0], 40)}: {exc}") from exc
        except OSError as exc:  # the disk said no: the table is intact, the caller is told why
            raise QTableError(f"QServer could not write for {short_repr(request[0], 40)}: {exc}") from exc
        raise Rejected(
            f"QServer does not understand {_describe(request)}: use get, values, greedy, table, set, td_update, "
            "merge, td_fold, version, info, checkpoint or save"
        )

    async def handle_cast(self, request: Any) -> None:
        match request:
            case ["td_update", states, actions, targets, alpha]:
                try:
                    self.q.td_update(states, actions, _finite_array(targets), _finite_array(alpha, "alpha"))
                except (QTableError, TypeError, ValueError, IndexError, OverflowError) as exc:
                    log.warning("qserver: dropped a bad td_update cast: %.300s", exc)
            case ["merge", states, actions, values, deltas, int(base)]:
                try:
                    self._merge(states, actions, values, deltas, base)
                except (QTableError, TypeError, ValueError, IndexError, OverflowError) as exc:
                    log.warning("qserver: dropped a bad merge cast: %.300s", exc)
            case ["td_fold", states, actions, scale, shift]:
                try:
                    self.q.td_fold(states, actions, _finite_array(scale, "scale"), _finite_array(shift, "shift"))
                except (QTableError, TypeError, ValueError, IndexError, OverflowError) as exc:
                    log.warning("qserver: dropped a bad td_fold cast: %.300s", exc)
            case _:
                log.warning("qserver: dropped an unknown cast %s", _describe(request))

    async def handle_info(self, message: Any) -> None:
        if message == "checkpoint":
            try:
                await self._checkpoint(force=False)
            except OSError as exc:  # a full disk must not crash the table: try again next time
                log.warning("qserver: checkpoint to %s failed: %s", self.checkpoint_path, exc)
            send_after(self.checkpoint_every, self.pid, "checkpoint")

    async def terminate(self, reason: Any) -> None:
        try:
            await self._checkpoint(force=False)
        finally:
            if self._fence is not None:
                self._fence.release()

    def _merge(self, states: Any, actions: Any, values: Any, deltas: Any, base: int) -> bool:
        return self.q.merge(states, actions, _finite_array(values, "values"), _finite_array(deltas, "deltas"), base)

    async def _checkpoint(self, force: bool) -> Path | None:
        path = self.checkpoint_path
        if path is None or self._fence is None:
            if force:
                raise Rejected("this QServer has no checkpoint path: start it with checkpoint=PATH")
            return None
        if force or self.q.version != self._saved_version:
            snapshot = self.q.copy()  # the thread writes a copy while the table keeps learning
            await asyncio.to_thread(snapshot.save, path, replace=self._fence.replace)
            self._saved_version = snapshot.version
        return path

    async def _save_as(self, name: Any) -> Path:
        """``["save", name]``: a copy of the table beside the checkpoint, under a plain file name."""
        if self.checkpoint_path is None:
            raise Rejected("this QServer has no checkpoint path: start it with checkpoint=PATH")
        if not isinstance(name, str) or not name or Path(name).name != name or name.startswith(".") or "\x00" in name:
            raise Rejected(f"save takes a plain file name (saved beside the checkpoint), got {name!r:.120}")
        if len(name.encode("utf-8", "surrogateescape")) > 255:
            raise Rejected(f"save: the file name is too long ({len(name)} characters; at most 255 bytes)")
        path = self.checkpoint_path.parent / name
        if path == self.checkpoint_path:
            raise Rejected(f"save: {name!r} is the checkpoint itself; use ['checkpoint']")
        await asyncio.to_thread(self.q.copy().save, path)
        return path


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float | np.integer | np.floating)


def _finite(value: Any, what: str) -> float:
    if not _is_number(value):
        raise QTableError(f"{what} must be a number, got {value!r:.80}")
    number = float(value)
    if not math.isfinite(number):
        raise QTableError(f"{what} must be finite, got {number!r}")
    return number


def _finite_array(values: Any, what: str = "targets") -> Any:
    """``values`` as a float array with no NaN or infinity (a scalar stays a scalar)."""
    if isinstance(values, bool | str | bytes | dict) or values is None:
        raise QTableError(f"{what} must be numbers, got {type(values).__name__}")
    arr = np.asarray(values)
    if arr.dtype.kind not in "fiu":
        raise QTableError(f"{what} must be numbers, got an array of dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    if not np.isfinite(arr).all():
        raise QTableError(f"{what} must be finite: NaN or infinity refused")
    return arr


def _describe(request: Any) -> str:
    """A request in an error or a log line, cut to a few hundred characters."""
    return short_repr(request)


def as_update_arrays(updates: list[tuple[Any, int, float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(states, actions, targets) columns for a ``td_update`` request from ``(s, a, target)`` rows."""
    if not updates:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, np.empty(0, dtype=np.float64)
    states, actions, targets = zip(*updates, strict=True)
    return (
        np.asarray(states, dtype=np.int64),
        np.asarray(actions, dtype=np.int64),
        np.asarray(targets, dtype=np.float64),
    )
