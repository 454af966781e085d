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
``["version"]``                                     how many writes the table has seen
``["info"]``                                        ``{"resumed": from a checkpoint?, "version", "shape"}``
``["checkpoint"]``                                  write the checkpoint now; replies with its path
``["save", name]``                                  a copy of the table named ``name`` beside the checkpoint
==================================================  =========================================================

With ``checkpoint=PATH`` the table is saved there every ``checkpoint_every`` seconds
(only when it changed), on graceful stop and on crash, through ``QTable.save`` (an atomic,
fsynced write: see ``beamrl.persist``); a (re)started QServer that finds the file resumes
from it, so a restart costs at most the last few seconds.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import numpy as np

from beamrl.api import send_after
from beamrl.errors import Rejected
from beamrl.gen_server import GenServer
from beamrl.reprs import short_repr
from beamrl.rl.errors import QTableError
from beamrl.rl.qtable import QTable

log = logging.getLogger("beamrl.rl")


class QServer(GenServer):
    """A dense Q-table served as a process; see the module docstring for requests."""

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
        self.checkpoint_path = Path(checkpoint) if checkpoint is not None else None
        self.checkpoint_every = float(checkpoint_every)
        self.resumed = False
        self.q = QTable(n_states, n_actions, init=init, seed=seed)
        if self.checkpoint_path is not None and self.checkpoint_path.exists():
            self.q.restore(self.checkpoint_path)  # a QTableError (init fails) if it holds another shape
            self.resumed = True
            log.info("qserver: resumed from %s (version %d)", self.checkpoint_path, self.q.version)
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
                    q.set(s, a, value)
                    return None
                case ["td_update", states, actions, targets, alpha]:
                    return q.td_update(states, actions, targets, alpha)
                case ["version"]:
                    return q.version
                case ["info"]:
                    return {"resumed": self.resumed, "version": q.version, "shape": list(q.table.shape)}
                case ["checkpoint"]:
                    return str(await self._checkpoint(force=True))
                case ["save", name]:
                    return str(await self._save_as(name))
        except (QTableError, TypeError, ValueError) as exc:  # a refusal: the caller gets a QTableError
            raise QTableError(f"QServer refused {short_repr(request[0])}: {exc}") from exc
        raise Rejected(f"QServer does not understand {short_repr(request)}")

    async def handle_cast(self, request: Any) -> None:
        match request:
            case ["td_update", states, actions, targets, alpha]:
                try:
                    self.q.td_update(states, actions, targets, alpha)
                except (QTableError, TypeError, ValueError) as exc:
                    log.warning("qserver: dropped a bad td_update cast: %s", exc)
            case _:
                log.warning("qserver: dropped an unknown cast %s", short_repr(request))

    async def handle_info(self, message: Any) -> None:
        if message == "checkpoint":
            await self._checkpoint(force=False)
            send_after(self.checkpoint_every, self.pid, "checkpoint")

    async def terminate(self, reason: Any) -> None:
        await self._checkpoint(force=False)

    async def _checkpoint(self, force: bool) -> Path | None:
        path = self.checkpoint_path
        if path is None:
            if force:
                raise Rejected("this QServer has no checkpoint path: start it with checkpoint=PATH")
            return None
        if force or self.q.version != self._saved_version:
            snapshot = self.q.copy()  # the thread writes a copy while the table keeps learning
            await asyncio.to_thread(snapshot.save, path)
            self._saved_version = snapshot.version
        return path

    async def _save_as(self, name: Any) -> Path:
        """``["save", name]``: a copy of the table beside the checkpoint, under a plain file name."""
        if self.checkpoint_path is None:
            raise Rejected("this QServer has no checkpoint path: start it with checkpoint=PATH")
        if not isinstance(name, str) or not name or Path(name).name != name or name.startswith("."):
            raise Rejected(f"save takes a plain file name (saved beside the checkpoint), got {name!r}")
        path = self.checkpoint_path.parent / name
        await asyncio.to_thread(self.q.copy().save, path)
        return path


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
