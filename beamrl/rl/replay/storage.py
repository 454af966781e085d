"""A replay memory's storage: packed rows at a cursor, column views, input checks.

``ReplayStorage`` is the base of ``ReplayMemory``: it owns the ring buffer (one packed
row of bytes per slot, a strided view per column), its cursor and counters, the
priority trees' leaves, and the checks every input passes before anything is stored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from beamrl.rl.errors import ReplayError
from beamrl.rl.exp import Exp
from beamrl.rl.replay.nstep import Out
from beamrl.rl.sumtree import MinTree, SumTree

INPUT_COLUMNS = ("state", "action", "reward", "next_state", "terminated", "truncated")
COLUMNS = (*INPUT_COLUMNS, "discount")
"""The columns a memory stores, and the keys of every batch besides ``indices``/``weights``."""
OPTIONAL_COLUMNS = ("discount",)
"""Columns an input may add: ``discount`` for transitions whose n-step return the sender computed."""

NUMERIC_KINDS = "biuf"
Batch = dict[str, np.ndarray]
ColumnSpec = dict[str, tuple[tuple[int, ...], np.dtype[Any]]]


class ReplayStorage:
    """The ring buffer under a ``ReplayMemory``; the attributes below are its whole state."""

    capacity: int
    alpha: float
    eps: float
    gamma: float
    _spec: ColumnSpec | None
    _cols: dict[str, np.ndarray]
    _rows: np.ndarray
    _width: int
    _layout: list[tuple[str, int, np.dtype[Any], tuple[int, ...], tuple[int, ...]]]
    _cursor: int
    _count: int
    _size: int
    _max_priority: float
    _sum: SumTree | None
    _min: MinTree | None
    _dirty_rows: np.ndarray
    _dirty_prio: np.ndarray

    # -- input --------------------------------------------------------------------------
    def _parse_exps(self, exps: Sequence[Exp]) -> dict[str, np.ndarray]:
        if len(exps) == 0:
            raise ReplayError("empty batch: nothing to add")
        for i, e in enumerate(exps):
            if not isinstance(e, Exp):
                raise ReplayError(f"item {i} of the batch is a {type(e).__name__}, not an Exp")
            if e.state is None or e.action is None:
                raise ReplayError(
                    f"item {i} has no state or action (an Exp from reset()?): "
                    "only transitions from step() can be stored"
                )
        try:
            return {name: np.asarray([getattr(e, name) for e in exps]) for name in INPUT_COLUMNS}
        except ValueError as exc:
            raise ReplayError(f"the Exps of the batch do not share one shape: {exc}") from exc

    def _parse_columns(self, columns: Mapping[str, npt.ArrayLike]) -> dict[str, np.ndarray]:
        missing = [c for c in INPUT_COLUMNS if c not in columns]
        extra = [c for c in columns if c not in INPUT_COLUMNS and c not in OPTIONAL_COLUMNS]
        if missing or extra:
            raise ReplayError(
                f"columns must be exactly {', '.join(INPUT_COLUMNS)} (and optionally {', '.join(OPTIONAL_COLUMNS)})"
                + (f"; missing {missing}" if missing else "")
                + (f"; unknown {extra}" if extra else "")
            )
        names = [*INPUT_COLUMNS, *(c for c in OPTIONAL_COLUMNS if c in columns)]
        try:
            return {name: np.asarray(columns[name]) for name in names}
        except ValueError as exc:
            raise ReplayError(f"a column is not a regular array: {exc}") from exc

    def _validate(self, cols: dict[str, np.ndarray]) -> tuple[int, ColumnSpec]:
        """Check ``cols`` against the stored spec (or derive one); cast them in place."""
        reward = cols["reward"]
        if reward.ndim != 1 or reward.size == 0:
            raise ReplayError(f"reward must be a non-empty 1-d column (one per row), got shape {reward.shape}")
        rows = reward.shape[0]
        for name, arr in cols.items():
            if arr.ndim == 0 or arr.shape[0] != rows:
                raise ReplayError(
                    f"column {name!r} has shape {arr.shape}: expected a leading dimension of {rows} like reward"
                )
        spec = self._spec
        if spec is None:
            spec = {}
            for name in ("state", "action"):
                arr = cols[name]
                if arr.dtype.kind not in NUMERIC_KINDS:
                    raise ReplayError(f"{name} must be numeric or bool, got dtype {arr.dtype}")
                spec[name] = (tuple(arr.shape[1:]), arr.dtype)
            spec["next_state"] = spec["state"]
        for name in ("state", "next_state", "action"):
            shape, dtype = spec[name]
            arr = cols[name]
            if arr.shape[1:] != shape:
                raise ReplayError(f"{name} items have shape {arr.shape[1:]}, the memory holds {shape}")
            if arr.dtype != dtype:
                if arr.dtype.kind not in NUMERIC_KINDS or not np.can_cast(arr.dtype, dtype, casting="same_kind"):
                    raise ReplayError(
                        f"{name} has dtype {arr.dtype}, which does not cast to the memory's "
                        f"{dtype} (same kind required)"
                    )
                cols[name] = arr.astype(dtype)
        if reward.dtype.kind not in "iuf":
            raise ReplayError(f"reward must be a real number, got dtype {reward.dtype}")
        if reward.dtype.kind == "f" and not np.isfinite(reward).all():
            raise ReplayError("reward contains NaN or infinity")
        cols["reward"] = reward.astype(np.float32, copy=False)
        for name in ("terminated", "truncated"):
            arr = cols[name]
            if arr.shape != (rows,):
                raise ReplayError(f"{name} must be 1-d (one flag per row), got shape {arr.shape}")
            if arr.dtype.kind != "b":
                if arr.dtype.kind not in "iu" or not np.isin(arr, (0, 1)).all():
                    raise ReplayError(f"{name} must be bool (or 0/1), got dtype {arr.dtype}")
                cols[name] = arr.astype(bool)
        if "discount" in cols:
            disc = cols["discount"]
            if disc.shape != (rows,) or disc.dtype.kind not in "iuf":
                raise ReplayError(f"discount must be 1-d real numbers (one per row), got shape {disc.shape}")
            if not (np.isfinite(disc).all() and (disc >= 0).all() and (disc <= 1).all()):
                raise ReplayError("discount values must lie in [0, 1]")
            cols["discount"] = disc.astype(np.float32, copy=False)
        return rows, spec

    def _check_priorities(self, priorities: npt.ArrayLike, rows: int) -> np.ndarray:
        try:
            p = np.asarray(priorities, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ReplayError(f"priorities must be numbers: {exc}") from exc
        if p.shape != (rows,):
            raise ReplayError(f"expected {rows} priorities (1-d), got shape {p.shape}")
        if not np.isfinite(p).all():
            raise ReplayError("priorities contain NaN or infinity")
        if (p < 0).any():
            raise ReplayError(f"priorities must be >= 0, got {float(p.min())}")
        return p

    # -- storage ------------------------------------------------------------------------
    def _allocate(self, spec: ColumnSpec) -> None:
        """Create the storage: one packed row of bytes per slot, a strided view per column.

        Keeping a transition's columns side by side in one row means a random batch
        touches one or two cache lines per item instead of one per column, which
        makes gathers from a large memory about twice as fast (``get_batch``).
        Columns are laid out by decreasing item size, so each one is aligned.
        """
        full = dict(spec)
        full["reward"] = ((), np.dtype(np.float32))
        full["terminated"] = ((), np.dtype(bool))
        full["truncated"] = ((), np.dtype(bool))
        full["discount"] = ((), np.dtype(np.float32))
        self._spec = full
        order = sorted(COLUMNS, key=lambda name: -full[name][1].itemsize)  # stable
        layout: list[tuple[str, int, np.dtype[Any], tuple[int, ...], tuple[int, ...]]] = []
        offset = 0
        for name in order:
            shape, dtype = full[name]
            layout.append((name, offset, dtype, shape, _c_strides(shape, dtype.itemsize)))
            offset += int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        align = max(dt.itemsize for _, dt in full.values())
        width = max(align, -(-offset // align) * align)
        cap = self.capacity
        self._width = width
        self._layout = layout
        self._rows = np.zeros(cap, dtype=np.dtype((np.void, width)))
        self._cols = {name: self._unpack(self._rows, name) for name in COLUMNS}
        self._dirty_rows = np.zeros(cap, dtype=bool)
        self._dirty_prio = np.zeros(cap, dtype=bool)

    def _unpack(self, rows: np.ndarray, only: str | None = None) -> np.ndarray:
        """A strided view of column ``only`` inside packed ``rows``."""
        for name, offset, dtype, shape, strides in self._layout:
            if name == only:
                return np.ndarray(
                    (rows.shape[0], *shape),
                    dtype=dtype,
                    buffer=rows,
                    offset=offset,
                    strides=(self._width, *strides),
                )
        raise KeyError(only)

    def _gather(self, slots: np.ndarray) -> Batch:
        """The columns at ``slots`` as contiguous arrays: one row gather, then one copy each."""
        rows = self._rows[slots]
        n, width = rows.shape[0], self._width
        return {
            name: np.ndarray((n, *shape), dtype=dtype, buffer=rows, offset=offset, strides=(width, *strides)).copy()
            for name, offset, dtype, shape, strides in self._layout
        }

    def _write_steps(self, out: list[Out]) -> np.ndarray:
        if not out:
            return np.zeros(0, dtype=np.int64)
        cols = {
            "state": np.stack([o[0] for o in out]),
            "action": np.stack([o[1] for o in out]),
            "reward": np.array([o[2] for o in out], dtype=np.float32),
            "next_state": np.stack([o[3] for o in out]),
            "terminated": np.array([o[4] for o in out], dtype=bool),
            "truncated": np.array([o[5] for o in out], dtype=bool),
            "discount": np.array([o[6] for o in out], dtype=np.float32),
        }
        given = [o[7] for o in out]
        prios = None
        if any(p is not None for p in given):
            fill = self._max_priority - self.eps
            prios = np.array([fill if p is None else p for p in given], dtype=np.float64)
        return self._write(cols, prios)

    def _write(self, cols: dict[str, np.ndarray], prios: np.ndarray | None) -> np.ndarray:
        """Store validated rows at the cursor (two slice copies at most); return their ids."""
        rows = cols["reward"].shape[0]
        cap = self.capacity
        skip = max(0, rows - cap)  # rows that would be overwritten within this same batch
        if skip:
            cols = {k: v[skip:] for k, v in cols.items()}
            prios = None if prios is None else prios[skip:]
            self._count += skip
            self._cursor = (self._cursor + skip) % cap
            rows -= skip
        leaf = None
        if self._sum is not None:
            if prios is None:
                leaf = np.full(rows, self._max_priority**self.alpha)
            else:
                q = prios + self.eps
                self._max_priority = max(self._max_priority, float(q.max()))
                leaf = np.power(q, self.alpha)
        start = self._cursor
        first = min(rows, cap - start)
        for name, col in self._cols.items():
            src = cols[name]
            col[start : start + first] = src[:first]
            if first < rows:
                col[: rows - first] = src[first:]
        self._dirty_rows[start : start + first] = True
        self._dirty_rows[: rows - first] = True
        if leaf is not None and self._sum is not None and self._min is not None:
            for tree in (self._sum, self._min):
                tree.update_range(start, leaf[:first])
                if first < rows:
                    tree.update_range(0, leaf[first:])
        ids = np.arange(self._count, self._count + rows, dtype=np.int64)
        self._count += rows
        self._cursor = (start + rows) % cap
        self._size = min(cap, self._size + rows)
        return ids

    def _load_leaves(self, leaves: np.ndarray, n: int) -> None:
        assert self._sum is not None
        assert self._min is not None
        if not (np.isfinite(leaves[:n]).all() and (leaves[:n] > 0).all()):
            raise ReplayError("stored priorities must be finite and > 0")
        self._sum.load_leaves(leaves)
        mins = leaves.copy()
        mins[n:] = np.inf
        self._min.load_leaves(mins)


def _c_strides(shape: tuple[int, ...], itemsize: int) -> tuple[int, ...]:
    """Byte strides of a C-contiguous array of ``shape`` (without the leading axis)."""
    strides = []
    step = itemsize
    for dim in reversed(shape):
        strides.append(step)
        step *= dim
    return tuple(reversed(strides))
