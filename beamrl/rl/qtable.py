"""Q-tables: action values for tabular agents, dense (numpy) or dict-backed.

``BaseQTable`` is the API agents and servers use; ``QTable`` stores a dense
``(n_states, n_actions)`` array, ``DictQTable`` a row per hashable state, created on first
write. The Elixir original's ``q_get`` / ``q_set`` / ``get_q`` / ``get_max_action`` are
``get`` / ``set`` / ``values`` / ``greedy_action``::

    q = QTable(n_states=16, n_actions=4, seed=0)
    q.get(s, a)                      # 0.0 until written
    q.set(s, a, 1.5)
    q.values(s)                      # copy of the row: every action's value
    q.greedy_action(s)               # argmax, ties broken by the table's seeded rng
    q.td_update([s0, s1], [a0, a1], [t0, t1], alpha=0.1)   # q[s,a] += alpha * (t - q[s,a])
    q.apply_batch([(s0, a0, t0), (s1, a1, t1)], alpha=0.1)  # same, as (s, a, target) rows
    q.save("q.npz"); q2 = QTable.load("q.npz"); q.restore("q.npz")

Batched updates apply in order: a pair that appears twice is updated twice, the second
time from the value the first left, exactly as two sequential ``td_update`` calls would.

Tables are ``beamrl.persist.Saveable``: ``save`` writes an ``.npz`` (no pickle) atomically.
``StateIndex``/``state_index`` (flattening Tuple observations) live in ``beamrl.rl.spaces``
and are importable from here as before.
"""

from __future__ import annotations

import operator
import os
import random
from abc import ABC, abstractmethod
from collections.abc import Hashable, Iterable, Sequence
from typing import Any, Self

import numpy as np

from beamrl.persist import atomic_write
from beamrl.rl.errors import QTableError
from beamrl.rl.spaces import StateIndex, state_index

__all__ = [
    "BaseQTable",
    "DictQTable",
    "QTable",
    "QTableError",
    "StateIndex",
    "state_index",
]

#: an update shipped from an actor to a shared table: (state, action, target)
Update = tuple[Any, int, float]


def _check_alpha(alpha: Any) -> None:
    a = np.asarray(alpha, dtype=np.float64)
    if not np.all((a > 0.0) & (a <= 1.0)):
        raise QTableError(f"alpha must lie in (0, 1], got {alpha!r}")


class BaseQTable(ABC):
    """What every Q-table offers; subclasses decide how rows are stored.

    A subclass implements ``get``, ``set``, ``values``, ``max_value``, ``_greedy_row``
    (the row ``greedy_action`` picks from), ``td_update``, ``td_update_one``, ``to_array``,
    ``_arrays`` and ``_load_arrays`` (its ``.npz`` form); the rest is shared.
    """

    __slots__ = ("_n_actions", "_rng", "version")

    def __init__(self, n_actions: int, seed: int | None) -> None:
        self._n_actions = int(n_actions)
        self._rng = random.Random(seed)
        #: incremented by every write; actors compare it to know their copy is stale
        self.version = 0

    @property
    def n_actions(self) -> int:
        """Number of actions (columns)."""
        return self._n_actions

    @property
    @abstractmethod
    def n_states(self) -> int:
        """Number of states (rows)."""

    def seed(self, seed: int | None) -> None:
        """Reseed the tie-breaking rng."""
        self._rng.seed(seed)

    def _action(self, a: Any) -> int:
        try:
            i = operator.index(a)
        except TypeError:
            raise QTableError(f"action {a!r} is not an integer index") from None
        if not 0 <= i < self._n_actions:
            raise QTableError(f"action {a!r} is outside [0, {self._n_actions})")
        return i

    # ---------------------------------------------------------- single entries
    @abstractmethod
    def get(self, s: Any, a: Any) -> float:
        """``Q(s, a)`` (``init`` until written) — the original's ``q_get``."""

    @abstractmethod
    def set(self, s: Any, a: Any, v: float) -> None:
        """``Q(s, a) = v`` — the original's ``q_set``."""

    @abstractmethod
    def values(self, s: Any) -> np.ndarray:
        """A copy of every action's value in ``s`` — the original's ``get_q``."""

    @abstractmethod
    def max_value(self, s: Any) -> float:
        """``max_a Q(s, a)``."""

    @abstractmethod
    def _greedy_row(self, s: Any) -> list[float]:
        """The values of ``s`` as a list (python lists beat numpy for a handful of actions)."""

    def greedy_action(self, s: Any) -> int:
        """``argmax_a Q(s, a)``, ties broken at random — the original's ``get_max_action``."""
        return self._pick(self._greedy_row(s))

    def _pick(self, row: list[float]) -> int:
        """The index of the largest value, a tie broken by the table's seeded rng."""
        m = max(row)
        best = [i for i, v in enumerate(row) if v == m]
        if len(best) == 1:
            return best[0]
        return best[self._rng.randrange(len(best))]

    # ---------------------------------------------------------------- batches
    @abstractmethod
    def td_update(self, states: Any, actions: Any, targets: Any, alpha: Any) -> np.ndarray:
        """``q[s,a] += alpha * (target - q[s,a])`` for each row, in order; returns the TD errors.

        ``alpha`` is a scalar or one step size per row. Repeated ``(s, a)`` pairs behave as
        sequential updates.
        """

    @abstractmethod
    def td_update_one(self, s: Any, a: int, target: float, alpha: float) -> float:
        """Unchecked single-row ``td_update`` for agents' inner loops; returns the TD error."""

    def apply_batch(self, updates: Iterable[Sequence[Any]], alpha: Any) -> np.ndarray:
        """Apply ``[(s, a, target), ...]`` as one ``td_update``; what an actor ships to a QServer."""
        rows = list(updates)
        if any(len(r) != 3 for r in rows):
            raise QTableError("each update must be a (state, action, target) triple")
        if not rows:
            return np.zeros(0)
        s, a, t = zip(*rows, strict=True)
        return self.td_update(list(s), list(a), list(t), alpha)

    def get_batch(self, states: Any, actions: Any) -> np.ndarray:
        """``Q(s_i, a_i)`` for each row."""
        return np.array([self.get(s, a) for s, a in zip(states, actions, strict=True)])

    def set_batch(self, states: Any, actions: Any, values: Any) -> None:
        """``Q(s_i, a_i) = v_i`` in order (the last write to a repeated pair wins)."""
        for s, a, v in zip(states, actions, values, strict=True):
            self.set(s, a, v)

    def values_batch(self, states: Any) -> np.ndarray:
        """Rows of the table for several states, shape ``(len(states), n_actions)``."""
        return np.array([self.values(s) for s in states]).reshape(-1, self._n_actions)

    @abstractmethod
    def _all_states(self) -> Iterable[Any]:
        """The states ``greedy_actions()`` covers when given none."""

    def greedy_actions(self, states: Any = None) -> np.ndarray:
        """Greedy action per state (every state when ``states`` is None), ties at random."""
        keys = self._all_states() if states is None else states
        return np.array([self.greedy_action(s) for s in keys], dtype=np.int64)

    @abstractmethod
    def to_array(self) -> np.ndarray:
        """A copy of the values, shape ``(n_states, n_actions)``."""

    # ------------------------------------------------------------ persistence
    @abstractmethod
    def _arrays(self) -> dict[str, np.ndarray]:
        """The table as the plain arrays ``save`` writes."""

    @abstractmethod
    def _load_arrays(self, arrays: dict[str, np.ndarray], where: str) -> None:
        """Take the state held in ``arrays`` (read from ``where``); raise ``QTableError`` if unfit."""

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the table as ``.npz`` (``q``, ``version`` and the subclass's arrays) atomically."""
        arrays = {**self._arrays(), "version": np.array(self.version, dtype=np.int64)}
        with atomic_write(path) as f:
            np.savez(f, allow_pickle=False, **arrays)

    def restore(self, path: str | os.PathLike[str]) -> None:
        """Replace this table's values and version with those ``save`` wrote to ``path``."""
        where = os.fspath(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except (OSError, ValueError, EOFError) as exc:
            raise QTableError(f"cannot read a Q-table from {where!r}: {exc}") from exc
        if "q" not in arrays:
            raise QTableError(f"{where!r} has no array 'q' (found {sorted(arrays)})")
        q = arrays["q"]
        if q.ndim != 2 or q.dtype.kind not in "fiu":
            raise QTableError(
                f"array 'q' in {where!r} must be a 2-D numeric array, got shape {q.shape} dtype {q.dtype}"
            )
        self._load_arrays(arrays, where)
        self.version = int(arrays["version"]) if "version" in arrays else 0

    @classmethod
    @abstractmethod
    def load(cls, path: str | os.PathLike[str], *, seed: int | None = None) -> Self:
        """A new table read from a file ``save`` wrote."""

    @staticmethod
    def _peek_shape(path: str | os.PathLike[str]) -> tuple[int, ...]:
        try:
            with np.load(path, allow_pickle=False) as data:
                if "q" not in data.files:
                    raise QTableError(f"{os.fspath(path)!r} has no array 'q' (found {data.files})")
                return tuple(data["q"].shape)
        except (OSError, ValueError, EOFError) as exc:
            if isinstance(exc, QTableError):
                raise
            raise QTableError(f"cannot read a Q-table from {os.fspath(path)!r}: {exc}") from exc


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
        _check_alpha(alpha)
        s, a, (t, al) = self._index_arrays(states, actions, targets, alpha)
        if s.size == 0:
            return np.zeros(0)
        flat = s * self._n_actions + a
        q = self._q.reshape(-1)
        if s.size == 1 or np.unique(flat).size == flat.size:
            err = t - q[flat]
            q[flat] += al * err
        else:
            err = np.empty(s.size)
            for i in range(s.size):
                j = flat[i]
                err[i] = t[i] - q[j]
                q[j] += al[i] * err[i]
        self.version += 1
        return err

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
        _check_alpha(alpha)
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
