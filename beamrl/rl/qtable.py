"""Q-tables: action values for tabular agents, dense (numpy) or dict-backed.

Both classes share one API (the Elixir original's ``q_get`` / ``q_set`` / ``get_q`` /
``get_max_action`` are ``get`` / ``set`` / ``values`` / ``greedy_action``)::

    q = QTable(n_states=16, n_actions=4, seed=0)
    q.get(s, a)                      # 0.0 until written
    q.set(s, a, 1.5)
    q.values(s)                      # copy of the row: every action's value
    q.greedy_action(s)               # argmax, ties broken by the table's seeded rng
    q.td_update([s0, s1], [a0, a1], [t0, t1], alpha=0.1)   # q[s,a] += alpha * (t - q[s,a])
    q.apply_batch([(s0, a0, t0), (s1, a1, t1)], alpha=0.1)  # same, as (s, a, target) rows
    q.save("q.npz"); q2 = QTable.load("q.npz")

Batched updates apply in order: a pair that appears twice is updated twice, the second
time from the value the first left, exactly as two sequential ``td_update`` calls would.

``state_index(space)`` flattens a Tuple of Discrete spaces (Blackjack's
``(32, 11, 2)``) into one index so such environments can use the dense table.
"""

from __future__ import annotations

import operator
import os
import random
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from beamrl.errors import BeamError

__all__ = [
    "DictQTable",
    "QTable",
    "QTableError",
    "StateIndex",
    "state_index",
]

#: an update shipped from an actor to a shared table: (state, action, target)
Update = tuple[Any, int, float]


class QTableError(BeamError, ValueError):
    """A Q-table was given a state, action, shape or file it cannot use."""


def _check_alpha(alpha: Any) -> None:
    a = np.asarray(alpha, dtype=np.float64)
    if not np.all((a > 0.0) & (a <= 1.0)):
        raise QTableError(f"alpha must lie in (0, 1], got {alpha!r}")


class QTable:
    """Dense ``(n_states, n_actions)`` float64 table for discrete state and action spaces."""

    __slots__ = ("_n_actions", "_n_states", "_q", "_rng", "version")

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
        self._n_states = int(n_states)
        self._n_actions = int(n_actions)
        if array is not None:
            arr = np.array(array, dtype=np.float64)
            if arr.shape != (self._n_states, self._n_actions):
                raise QTableError(f"array has shape {arr.shape}, expected ({self._n_states}, {self._n_actions})")
            self._q = arr
        else:
            self._q = np.full((self._n_states, self._n_actions), float(init), dtype=np.float64)
        self._rng = random.Random(seed)
        #: incremented by every write; actors compare it to know their copy is stale
        self.version = 0

    # ------------------------------------------------------------------ shape
    @property
    def n_states(self) -> int:
        """Number of states (rows)."""
        return self._n_states

    @property
    def n_actions(self) -> int:
        """Number of actions (columns)."""
        return self._n_actions

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_states, n_actions)``."""
        return (self._n_states, self._n_actions)

    @property
    def table(self) -> np.ndarray:
        """The live array (no copy): writes to it change the table."""
        return self._q

    def to_array(self) -> np.ndarray:
        """A copy of the whole table, shape ``(n_states, n_actions)``."""
        return self._q.copy()

    def seed(self, seed: int | None) -> None:
        """Reseed the tie-breaking rng."""
        self._rng.seed(seed)

    # ------------------------------------------------------------ validation
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

    def _action(self, a: Any) -> int:
        try:
            i = operator.index(a)
        except TypeError:
            raise QTableError(f"action {a!r} is not an integer index") from None
        if not 0 <= i < self._n_actions:
            raise QTableError(f"action {a!r} is outside [0, {self._n_actions})")
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

    # ------------------------------------------------------------- single
    def get(self, s: Any, a: Any) -> float:
        """``Q(s, a)`` (0.0, or ``init``, until written) — the original's ``q_get``."""
        return float(self._q[self._state(s), self._action(a)])

    def set(self, s: Any, a: Any, v: float) -> None:
        """``Q(s, a) = v`` — the original's ``q_set``."""
        self._q[self._state(s), self._action(a)] = float(v)
        self.version += 1

    def values(self, s: Any) -> np.ndarray:
        """A copy of every action's value in ``s`` — the original's ``get_q``."""
        return self._q[self._state(s)].copy()

    def max_value(self, s: Any) -> float:
        """``max_a Q(s, a)``."""
        return float(self._q[self._state(s)].max())

    def greedy_action(self, s: Any) -> int:
        """``argmax_a Q(s, a)``, ties broken at random — the original's ``get_max_action``."""
        return self._greedy(self._state(s))

    def _greedy(self, s: int) -> int:
        # Hot path: python lists beat numpy for a handful of actions.
        row = self._q[s].tolist()
        m = max(row)
        best = [i for i, v in enumerate(row) if v == m]
        if len(best) == 1:
            return best[0]
        return best[self._rng.randrange(len(best))]

    # ------------------------------------------------------------- batched
    def td_update(self, states: Any, actions: Any, targets: Any, alpha: Any) -> np.ndarray:
        """``q[s,a] += alpha * (target - q[s,a])`` for each row, in order; returns the TD errors.

        ``alpha`` is a scalar or one step size per row. Repeated ``(s, a)`` pairs behave as
        sequential updates.
        """
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
        """Unchecked single-row ``td_update`` for agents' inner loops; returns the TD error."""
        q = self._q
        err = target - q[s, a]
        q[s, a] += alpha * err
        self.version += 1
        return float(err)

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
        s, a, _ = self._index_arrays(states, actions)
        return self._q[s, a].copy()

    def set_batch(self, states: Any, actions: Any, values: Any) -> None:
        """``Q(s_i, a_i) = v_i`` in order (the last write to a repeated pair wins)."""
        s, a, (v,) = self._index_arrays(states, actions, values)
        self._q[s, a] = v
        self.version += 1

    def values_batch(self, states: Any) -> np.ndarray:
        """Rows of the table for several states, shape ``(len(states), n_actions)``."""
        s, _, _ = self._index_arrays(states, np.zeros(len(states), dtype=np.intp))
        return self._q[s].copy()

    def greedy_actions(self, states: Any = None) -> np.ndarray:
        """Greedy action per state (all states when ``states`` is None), ties at random."""
        idx = range(self._n_states) if states is None else [self._state(s) for s in states]
        return np.array([self._greedy(i) for i in idx], dtype=np.int64)

    def assign(self, array: Any) -> None:
        """Replace the whole table (an actor refreshing its local copy from a shared one)."""
        arr = np.asarray(array, dtype=np.float64)
        if arr.shape != self.shape:
            raise QTableError(f"array has shape {arr.shape}, expected {self.shape}")
        self._q[...] = arr
        self.version += 1

    # ------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write ``.npz`` with ``q`` (n_states, n_actions) and ``version``; no pickle."""
        with open(path, "wb") as f:
            np.savez(f, q=self._q, version=np.array(self.version, dtype=np.int64))

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, seed: int | None = None) -> QTable:
        """Read a table written by ``save`` (or any ``.npz`` with a 2-D float array ``q``)."""
        with np.load(path, allow_pickle=False) as data:
            if "q" not in data.files:
                raise QTableError(f"{os.fspath(path)!r} has no array 'q' (found {data.files})")
            q = data["q"]
            version = int(data["version"]) if "version" in data.files else 0
        if q.ndim != 2 or q.dtype.kind not in "fiu":
            raise QTableError(
                f"array 'q' in {os.fspath(path)!r} must be a 2-D numeric array, got shape {q.shape} dtype {q.dtype}"
            )
        table = cls(q.shape[0], q.shape[1], seed=seed, array=q)
        table.version = version
        return table

    def __repr__(self) -> str:
        return f"QTable(n_states={self._n_states}, n_actions={self._n_actions})"


class DictQTable:
    """Q-table keyed by any hashable state; rows are created (at ``init``) on first write.

    Same API as ``QTable``. ``to_array()`` and ``save()`` order rows as the states were
    first written; ``states()`` lists them.
    """

    def __init__(self, n_actions: int, *, init: float = 0.0, seed: int | None = None) -> None:
        if int(n_actions) < 1:
            raise QTableError(f"a DictQTable needs n_actions >= 1, got {n_actions}")
        self._n_actions = int(n_actions)
        self._init = float(init)
        self._rows: dict[Hashable, np.ndarray] = {}
        self._rng = random.Random(seed)
        #: incremented by every write
        self.version = 0

    @property
    def n_actions(self) -> int:
        """Number of actions (columns)."""
        return self._n_actions

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
        """Rows stacked in ``states()`` order, shape ``(n_states, n_actions)``."""
        if not self._rows:
            return np.zeros((0, self._n_actions))
        return np.stack(list(self._rows.values()))

    def seed(self, seed: int | None) -> None:
        """Reseed the tie-breaking rng."""
        self._rng.seed(seed)

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

    def _action(self, a: Any) -> int:
        try:
            i = operator.index(a)
        except TypeError:
            raise QTableError(f"action {a!r} is not an integer index") from None
        if not 0 <= i < self._n_actions:
            raise QTableError(f"action {a!r} is outside [0, {self._n_actions})")
        return i

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
        """``Q(s, a)``; ``init`` for a state never written."""
        a = self._action(a)
        row = self._peek(s)
        return self._init if row is None else float(row[a])

    def set(self, s: Any, a: Any, v: float) -> None:
        """``Q(s, a) = v``."""
        self._row(s)[self._action(a)] = float(v)
        self.version += 1

    def values(self, s: Any) -> np.ndarray:
        """A copy of every action's value in ``s``."""
        row = self._peek(s)
        return np.full(self._n_actions, self._init) if row is None else row.copy()

    def max_value(self, s: Any) -> float:
        """``max_a Q(s, a)``."""
        row = self._peek(s)
        return self._init if row is None else float(row.max())

    def greedy_action(self, s: Any) -> int:
        """``argmax_a Q(s, a)``, ties broken at random."""
        row = self._peek(s)
        vals = [self._init] * self._n_actions if row is None else row.tolist()
        m = max(vals)
        best = [i for i, v in enumerate(vals) if v == m]
        return best[0] if len(best) == 1 else best[self._rng.randrange(len(best))]

    def td_update(self, states: Any, actions: Any, targets: Any, alpha: Any) -> np.ndarray:
        """``q[s,a] += alpha * (target - q[s,a])`` for each row, in order; returns the TD errors."""
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
        """Single-row ``td_update`` for agents' inner loops; returns the TD error."""
        row = self._row(s)
        err = target - row[a]
        row[a] += alpha * err
        self.version += 1
        return float(err)

    def apply_batch(self, updates: Iterable[Sequence[Any]], alpha: Any) -> np.ndarray:
        """Apply ``[(s, a, target), ...]`` as one ``td_update``."""
        rows = list(updates)
        if any(len(r) != 3 for r in rows):
            raise QTableError("each update must be a (state, action, target) triple")
        if not rows:
            return np.zeros(0)
        s, a, t = zip(*rows, strict=True)
        return self.td_update(s, a, t, alpha)

    def get_batch(self, states: Any, actions: Any) -> np.ndarray:
        """``Q(s_i, a_i)`` for each row."""
        return np.array([self.get(s, a) for s, a in zip(states, actions, strict=True)])

    def set_batch(self, states: Any, actions: Any, values: Any) -> None:
        """``Q(s_i, a_i) = v_i`` in order."""
        for s, a, v in zip(states, actions, values, strict=True):
            self.set(s, a, v)

    def values_batch(self, states: Any) -> np.ndarray:
        """Rows for several states, shape ``(len(states), n_actions)``."""
        return np.array([self.values(s) for s in states]).reshape(-1, self._n_actions)

    def greedy_actions(self, states: Any = None) -> np.ndarray:
        """Greedy action per state (every written state when ``states`` is None)."""
        keys = self.states() if states is None else list(states)
        return np.array([self.greedy_action(s) for s in keys], dtype=np.int64)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write ``.npz`` with ``q`` and ``states`` (an int array, one row per state).

        Only integer states or equal-length tuples of integers can be saved.
        """
        keys = self.states()
        try:
            st = np.array(keys, dtype=np.int64)
        except (TypeError, ValueError):
            raise QTableError("only integer states or equal-length tuples of integers can be saved") from None
        if len(keys) and st.ndim not in (1, 2):
            raise QTableError("states must be integers or flat tuples of integers to be saved")
        with open(path, "wb") as f:
            np.savez(
                f,
                q=self.to_array(),
                states=st,
                init=np.array(self._init),
                version=np.array(self.version, dtype=np.int64),
            )

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, seed: int | None = None) -> DictQTable:
        """Read a table written by ``DictQTable.save``."""
        with np.load(path, allow_pickle=False) as data:
            missing = {"q", "states"} - set(data.files)
            if missing:
                raise QTableError(f"{os.fspath(path)!r} lacks arrays {sorted(missing)}")
            q = data["q"]
            st = data["states"]
            init = float(data["init"]) if "init" in data.files else 0.0
            version = int(data["version"]) if "version" in data.files else 0
        if q.ndim != 2 or len(st) != q.shape[0]:
            raise QTableError(f"'q' {q.shape} and 'states' {st.shape} do not match")
        table = cls(q.shape[1], init=init, seed=seed)
        for key, row in zip(st.tolist(), q, strict=True):
            table._rows[tuple(key) if isinstance(key, list) else key] = row.astype(np.float64)
        table.version = version
        return table

    def __repr__(self) -> str:
        return f"DictQTable(n_actions={self._n_actions}, states={len(self._rows)})"


@dataclass(frozen=True, slots=True)
class StateIndex:
    """Maps a tuple of discrete values to one flat index (row-major) and back."""

    #: size of each component
    dims: tuple[int, ...]
    #: the smallest value of each component (a Discrete's ``start``)
    starts: tuple[int, ...]

    @property
    def n(self) -> int:
        """Number of flat indices (product of ``dims``)."""
        return int(np.prod(self.dims))

    def __call__(self, obs: Sequence[Any]) -> int:
        """Flat index of ``obs``; raises ``QTableError`` for a value out of range."""
        if len(obs) != len(self.dims):
            raise QTableError(f"observation {obs!r} has {len(obs)} parts, expected {len(self.dims)}")
        idx = 0
        for x, d, st in zip(obs, self.dims, self.starts, strict=True):
            v = int(x) - st
            if not 0 <= v < d:
                raise QTableError(f"observation {obs!r} is outside the space {self.dims}")
            idx = idx * d + v
        return idx

    def inverse(self, index: int) -> tuple[int, ...]:
        """The tuple whose flat index is ``index``."""
        if not 0 <= int(index) < self.n:
            raise QTableError(f"index {index} is outside [0, {self.n})")
        parts = np.unravel_index(int(index), self.dims)
        return tuple(int(p) + st for p, st in zip(parts, self.starts, strict=True))


def state_index(space: Any) -> StateIndex:
    """A ``StateIndex`` for a Tuple of Discrete spaces (beamrl's or gymnasium's), or dims.

    ``state_index(blackjack.observation_space)`` maps ``(sum, dealer, ace)`` in
    ``(32, 11, 2)`` to ``0..703``; ``state_index((32, 11, 2))`` does the same.
    """
    if isinstance(space, Sequence) and all(isinstance(d, int | np.integer) for d in space):
        dims = tuple(int(d) for d in space)
        starts = (0,) * len(dims)
    else:
        parts = getattr(space, "spaces", None)
        if parts is None:
            raise QTableError(f"state_index needs a Tuple of Discrete spaces or a tuple of sizes, got {space!r}")
        try:
            dims = tuple(int(p.n) for p in parts)
            starts = tuple(int(getattr(p, "start", 0)) for p in parts)
        except AttributeError:
            raise QTableError(f"state_index needs every part of {space!r} to be Discrete (have .n)") from None
    if not dims or any(d < 1 for d in dims):
        raise QTableError(f"state_index needs positive sizes, got {dims}")
    return StateIndex(dims, starts)
