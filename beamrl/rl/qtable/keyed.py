"""``DictQTable``: a row per hashable state, created on first write."""

from __future__ import annotations

import os
from collections.abc import Hashable, Iterable
from typing import Any

import numpy as np

from beamrl.rl.errors import QTableError
from beamrl.rl.qtable.base import BaseQTable, check_alpha


class DictQTable(BaseQTable):
    """Q-table keyed by any hashable state; rows are created (at ``init``) on first write.

    ``to_array()`` and ``save()`` order rows as the states were first written; ``states()``
    lists them. Only integer states or equal-length tuples of integers can be saved.
    """

    __slots__ = ("_init", "_rows")

    def __init__(self, n_actions: int, *, init: float = 0.0, seed: int | None = None) -> None:
        if int(n_actions) < 1:
            raise QTableError(f"a DictQTable needs n_actions >= 1, got {n_actions}")
        super().__init__(n_actions, seed)
        self._init = float(init)
        self._rows: dict[Hashable, np.ndarray] = {}

    @property
    def n_states(self) -> int:
        """Number of states written so far."""
        return len(self._rows)

    @property
    def table(self) -> dict[Hashable, np.ndarray]:
        """The live ``{state: row}`` dict (no copy)."""
        return self._rows

    def states(self) -> list[Hashable]:
        """States with a row, in the order they were first written."""
        return list(self._rows)

    def to_array(self) -> np.ndarray:
        if not self._rows:
            return np.zeros((0, self._n_actions))
        return np.stack(list(self._rows.values()))

    def _key(self, s: Any) -> Hashable:
        if isinstance(s, np.ndarray):
            s = tuple(s.tolist())
        elif isinstance(s, np.generic):
            s = s.item()
        try:
            hash(s)
        except TypeError:
            raise QTableError(f"state {s!r} is not hashable; convert it to a tuple") from None
        return s

    def _row(self, s: Any) -> np.ndarray:
        key = self._key(s)
        row = self._rows.get(key)
        if row is None:
            row = np.full(self._n_actions, self._init)
            self._rows[key] = row
        return row

    def _peek(self, s: Any) -> np.ndarray | None:
        return self._rows.get(self._key(s))

    def get(self, s: Any, a: Any) -> float:
        a = self._action(a)
        row = self._peek(s)
        return self._init if row is None else float(row[a])

    def set(self, s: Any, a: Any, v: float) -> None:
        self._row(s)[self._action(a)] = float(v)
        self.version += 1

    def values(self, s: Any) -> np.ndarray:
        row = self._peek(s)
        return np.full(self._n_actions, self._init) if row is None else row.copy()

    def max_value(self, s: Any) -> float:
        row = self._peek(s)
        return self._init if row is None else float(row.max())

    def _greedy_row(self, s: Any) -> list[float]:
        row = self._peek(s)
        values: list[float] = [self._init] * self._n_actions if row is None else row.tolist()
        return values

    def _all_states(self) -> Iterable[Any]:
        return self.states()

    def td_update(self, states: Any, actions: Any, targets: Any, alpha: Any) -> np.ndarray:
        check_alpha(alpha)
        states = list(states)
        actions = list(actions)
        t = np.asarray(targets, dtype=np.float64).reshape(-1)
        al = np.broadcast_to(np.asarray(alpha, dtype=np.float64), (len(states),))
        if len(actions) != len(states) or t.size != len(states):
            raise QTableError(
                f"states, actions and targets must have equal lengths, got {len(states)}, {len(actions)}, {t.size}"
            )
        acts = [self._action(a) for a in actions]
        err = np.empty(len(states))
        for i, (s, a) in enumerate(zip(states, acts, strict=True)):
            row = self._row(s)
            err[i] = t[i] - row[a]
            row[a] += al[i] * err[i]
        self.version += 1
        return err

    def td_update_one(self, s: Any, a: int, target: float, alpha: float) -> float:
        row = self._row(s)
        err = target - row[a]
        row[a] += alpha * err
        self.version += 1
        return float(err)

    def _arrays(self) -> dict[str, np.ndarray]:
        keys = self.states()
        try:
            st = np.array(keys, dtype=np.int64)
        except (TypeError, ValueError):
            raise QTableError("only integer states or equal-length tuples of integers can be saved") from None
        if len(keys) and st.ndim not in (1, 2):
            raise QTableError("states must be integers or flat tuples of integers to be saved")
        return {"q": self.to_array(), "states": st, "init": np.array(self._init)}

    def _load_arrays(self, arrays: dict[str, np.ndarray], where: str) -> None:
        if "states" not in arrays:
            raise QTableError(f"{where!r} lacks the array 'states' a DictQTable saves")
        q, st = arrays["q"], arrays["states"]
        if len(st) != q.shape[0] or q.shape[1] != self._n_actions:
            raise QTableError(f"'q' {q.shape} and 'states' {st.shape} in {where!r} do not fit {self!r}")
        self._init = float(arrays["init"]) if "init" in arrays else 0.0
        self._rows = {
            (tuple(key) if isinstance(key, list) else key): row.astype(np.float64)
            for key, row in zip(st.tolist(), q, strict=True)
        }

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, seed: int | None = None) -> DictQTable:
        """Read a table written by ``DictQTable.save``."""
        shape = cls._peek_shape(path)
        table = cls(shape[1] if len(shape) == 2 and shape[1] >= 1 else 1, seed=seed)
        table.restore(path)
        return table

    def __repr__(self) -> str:
        return f"DictQTable(n_actions={self._n_actions}, states={len(self._rows)})"
