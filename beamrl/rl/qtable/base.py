"""``BaseQTable``: the API every Q-table offers agents and servers; subclasses store the rows."""

from __future__ import annotations

import operator
import os
import random
import zipfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np

from beamrl.persist import atomic_write
from beamrl.rl.errors import QTableError

#: an update shipped from an actor to a shared table: (state, action, target)
Update = tuple[Any, int, float]


def check_alpha(alpha: Any) -> None:
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
        if row.count(m) == 1:  # the common case, without building the list of ties
            return row.index(m)
        best = [i for i, v in enumerate(row) if v == m]
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

    def save(self, path: str | os.PathLike[str], *, replace: Callable[[Path, Path], None] = os.replace) -> None:
        """Write the table as ``.npz`` (``q``, ``version`` and the subclass's arrays) atomically.

        ``replace`` does the final rename (a checkpoint fence's, see ``beamrl.fencing``)."""
        arrays = {**self._arrays(), "version": np.array(self.version, dtype=np.int64)}
        with atomic_write(path, replace=replace) as f:
            np.savez(f, allow_pickle=False, **arrays)

    def restore(self, path: str | os.PathLike[str]) -> None:
        """Replace this table's values and version with those ``save`` wrote to ``path``."""
        where = os.fspath(path)
        try:
            with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
            raise QTableError(f"cannot read a Q-table from {where!r}: {_problem(exc)}") from exc
        if "q" not in arrays:
            raise QTableError(f"{where!r} has no array 'q' (found {sorted(arrays)})")
        q = arrays["q"]
        if q.ndim != 2 or q.dtype.kind not in "fiu":
            raise QTableError(
                f"array 'q' in {where!r} must be a 2-D numeric array, got shape {q.shape} dtype {q.dtype}"
            )
        version = arrays.get("version", np.zeros((), dtype=np.int64))
        if version.shape != () or version.dtype.kind not in "iu" or int(version) < 0:
            raise QTableError(f"array 'version' in {where!r} must be one integer >= 0, got {version!r:.80}")
        self._load_arrays(arrays, where)
        self.version = int(version)

    @classmethod
    @abstractmethod
    def load(cls, path: str | os.PathLike[str], *, seed: int | None = None) -> Self:
        """A new table read from a file ``save`` wrote."""

    @staticmethod
    def _peek_shape(path: str | os.PathLike[str]) -> tuple[int, ...]:
        try:
            with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as data:
                if "q" not in data.files:
                    raise QTableError(f"{os.fspath(path)!r} has no array 'q' (found {data.files})")
                return tuple(data["q"].shape)
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
            if isinstance(exc, QTableError):
                raise
            raise QTableError(f"cannot read a Q-table from {os.fspath(path)!r}: {_problem(exc)}") from exc


def _problem(exc: BaseException) -> str:
    """What is wrong with a file, in words (not a bare ``KeyError: 'q'``)."""
    if isinstance(exc, zipfile.BadZipFile | EOFError):
        return f"not a complete .npz file (truncated or corrupt: {exc})"
    if isinstance(exc, KeyError):
        return f"an entry of the .npz file is missing or unreadable ({exc})"
    return f"{type(exc).__name__}: {exc}"
