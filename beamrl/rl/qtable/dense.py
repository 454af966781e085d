"""``QTable``: a dense ``(n_states, n_actions)`` float64 array, for integer states."""

from __future__ import annotations

import operator
import os
from collections.abc import Iterable
from typing import Any

import numpy as np

from beamrl.rl.errors import QTableError
from beamrl.rl.qtable.base import BaseQTable, check_alpha


class QTable(BaseQTable):
    """Dense ``(n_states, n_actions)`` float64 table for discrete state and action spaces."""

    __slots__ = ("_n_states", "_q")

    def __init__(
        self,
        n_states: int,
        n_actions: int,
        *,
        init: float = 0.0,
        seed: int | None = None,
        array: np.ndarray | None = None,
    ) -> None:
        if int(n_states) < 1 or int(n_actions) < 1:
            raise QTableError(f"a QTable needs n_states >= 1 and n_actions >= 1, got ({n_states}, {n_actions})")
        super().__init__(n_actions, seed)
        self._n_states = int(n_states)
        self._q = np.full((self._n_states, self._n_actions), float(init), dtype=np.float64)
        if array is not None:
            self.assign(array)
            self.version = 0

    @property
    def n_states(self) -> int:
        """Number of states (rows)."""
        return self._n_states

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_states, n_actions)``."""
        return (self._n_states, self._n_actions)

    @property
    def table(self) -> np.ndarray:
        """The live array (no copy): writes to it change the table."""
        return self._q

    def to_array(self) -> np.ndarray:
        return self._q.copy()

    def copy(self) -> QTable:
        """An independent table with the same values and version (e.g. to save in a thread)."""
        twin = QTable(self._n_states, self._n_actions, array=self._q)
        twin.version = self.version
        return twin

    def _state(self, s: Any) -> int:
        try:
            i = operator.index(s)
        except TypeError:
            raise QTableError(
                f"state {s!r} is not an integer index; use DictQTable for other states "
                "or state_index(space) to flatten a Tuple observation"
            ) from None
        if not 0 <= i < self._n_states:
            raise QTableError(f"state {s!r} is outside [0, {self._n_states})")
        return i

    def _index_arrays(self, states: Any, actions: Any, *others: Any) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        s = np.asarray(states)
        a = np.asarray(actions)
        if s.ndim != 1 or a.shape != s.shape:
            raise QTableError(f"states and actions must be 1-D and of equal length, got shapes {s.shape} and {a.shape}")
        rest = []
        for o in others:
            arr = np.asarray(o, dtype=np.float64)
            if arr.ndim == 0:
                arr = np.broadcast_to(arr, s.shape)
            if arr.shape != s.shape:
                raise QTableError(f"expected {s.shape[0]} values to match the states, got shape {arr.shape}")
            rest.append(arr)
        if s.size:
            if s.dtype.kind not in "iu" or a.dtype.kind not in "iu":
                raise QTableError(f"states and actions must be integers, got dtypes {s.dtype} and {a.dtype}")
            if s.min() < 0 or s.max() >= self._n_states:
                raise QTableError(f"a state in the batch is outside [0, {self._n_states})")
            if a.min() < 0 or a.max() >= self._n_actions:
                raise QTableError(f"an action in the batch is outside [0, {self._n_actions})")
        return s.astype(np.intp, copy=False), a.astype(np.intp, copy=False), rest

    def get(self, s: Any, a: Any) -> float:
        return float(self._q[self._state(s), self._action(a)])

    def set(self, s: Any, a: Any, v: float) -> None:
        self._q[self._state(s), self._action(a)] = float(v)
        self.version += 1

    def values(self, s: Any) -> np.ndarray:
        return self._q[self._state(s)].copy()

    def max_value(self, s: Any) -> float:
        return float(self._q[self._state(s)].max())

    def _greedy_row(self, s: Any) -> list[float]:
        row: list[float] = self._q[self._state(s)].tolist()
        return row

    def _greedy(self, s: int) -> int:
        """``greedy_action`` for a state index already checked (agents' inner loops)."""
        return self._pick(self._q[s].tolist())

    def _all_states(self) -> Iterable[Any]:
        return range(self._n_states)

    def td_update(self, states: Any, actions: Any, targets: Any, alpha: Any) -> np.ndarray:
        check_alpha(alpha)
        s, a, (t, al) = self._index_arrays(states, actions, targets, alpha)
        if s.size == 0:
            return np.zeros(0)
        flat = s * self._n_actions + a
        q = self._q.reshape(-1)
        if s.size == 1 or np.unique(flat).size == flat.size:
            err = t - q[flat]
            q[flat] += al * err
        else:  # a cell written twice: in order, on Python floats (the same doubles, far fewer numpy calls)
            cells = np.unique(flat)
            now = dict(zip(cells.tolist(), q[cells].tolist(), strict=True))
            errors = []
            for j, target, step in zip(flat.tolist(), t.tolist(), al.tolist(), strict=True):
                e = target - now[j]
                now[j] += step * e
                errors.append(e)
            q[cells] = [now[j] for j in cells.tolist()]
            err = np.asarray(errors)
        self.version += 1
        return err

    def merge(self, states: Any, actions: Any, values: Any, deltas: Any, base_version: int) -> bool:
        """Fold in what a learner with a copy of this table changed in cells ``(states, actions)``.

        ``base_version`` is the version of this table the copy's earlier state reflects: when
        nothing else wrote since (the version is still that), the cells take the copy's
        ``values`` exactly; otherwise its changes ``deltas`` add to what is here (asynchronous,
        Hogwild-style). Each cell at most once. Returns whether the values were taken as they are.
        """
        s, a, (v, d) = self._index_arrays(states, actions, values, deltas)
        flat = s * self._n_actions + a
        if np.unique(flat).size != flat.size:
            raise QTableError("merge takes each cell at most once")
        exact = self.version == base_version
        q = self._q.reshape(-1)
        if exact:
            q[flat] = v
        else:
            q[flat] += d
        self.version += 1
        return exact

    def td_fold(self, states: Any, actions: Any, scale: Any, shift: Any) -> None:
        """``q[s,a] = scale * q[s,a] + shift``, each cell at most once: a run of TD updates of a
        cell, ``q <- (1 - alpha) q + alpha target`` in order, composed into one (a worker folds
        its batch; applying the fold to the shared value replays the batch against it)."""
        s, a, (k, b) = self._index_arrays(states, actions, scale, shift)
        flat = s * self._n_actions + a
        if np.unique(flat).size != flat.size:
            raise QTableError("td_fold takes each cell at most once")
        q = self._q.reshape(-1)
        q[flat] = k * q[flat] + b
        self.version += 1

    def td_update_one(self, s: int, a: int, target: float, alpha: float) -> float:
        q = self._q
        err = target - q[s, a]
        q[s, a] += alpha * err
        self.version += 1
        return float(err)

    def get_batch(self, states: Any, actions: Any) -> np.ndarray:
        s, a, _ = self._index_arrays(states, actions)
        return self._q[s, a].copy()

    def set_batch(self, states: Any, actions: Any, values: Any) -> None:
        s, a, (v,) = self._index_arrays(states, actions, values)
        self._q[s, a] = v
        self.version += 1

    def values_batch(self, states: Any) -> np.ndarray:
        s, _, _ = self._index_arrays(states, np.zeros(len(states), dtype=np.intp))
        return self._q[s].copy()

    def assign(self, array: Any) -> None:
        """Replace the whole table (an actor refreshing its local copy from a shared one)."""
        arr = np.asarray(array, dtype=np.float64)
        if arr.shape != self.shape:
            raise QTableError(f"array has shape {arr.shape}, expected {self.shape}")
        self._q[...] = arr
        self.version += 1

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"q": self._q}

    def _load_arrays(self, arrays: dict[str, np.ndarray], where: str) -> None:
        if arrays["q"].shape != self.shape:
            raise QTableError(f"{where!r} holds a {arrays['q'].shape} table, expected {self.shape}")
        self._q[...] = arrays["q"]

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, seed: int | None = None) -> QTable:
        """Read a table written by ``save`` (or any ``.npz`` with a 2-D numeric array ``q``)."""
        shape = cls._peek_shape(path)
        table = cls(*shape[:2], seed=seed) if len(shape) == 2 else cls(1, 1, seed=seed)
        table.restore(path)
        return table

    def __repr__(self) -> str:
        return f"QTable(n_states={self._n_states}, n_actions={self._n_actions})"
