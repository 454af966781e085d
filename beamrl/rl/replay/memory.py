"""``ReplayMemory``: the ring buffer's public face (see ``beamrl.rl.replay`` for the semantics)."""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from beamrl.rl.errors import ReplayError, StaleIndex
from beamrl.rl.exp import Exp
from beamrl.rl.replay.nstep import NStepWindow, Out
from beamrl.rl.replay.persistence import ReplayPersistence
from beamrl.rl.replay.storage import Batch, ColumnSpec
from beamrl.rl.sumtree import MinTree, SumTree

_FLAG_TYPES = (bool, np.bool_)
_REAL_TYPES = (int, float, np.float32, np.float64, np.int64, np.int32)


class ReplayMemory(ReplayPersistence):
    """A fixed-capacity replay memory; see the module docstring for the exact semantics.

    ``capacity``: transitions kept. ``prioritized``: sample by priority instead of
    uniformly. ``alpha``: priority exponent (0 is uniform). ``beta``: initial
    importance-sampling exponent. ``eps``: added to every priority so none is 0.
    ``n_step``/``gamma``: n-step returns and their discount. ``beta_steps``: anneal β
    linearly to 1.0 over this many prioritized ``get_batch`` calls (None: constant).
    ``seed``: seeds the sampler.
    """

    def __init__(
        self,
        capacity: int,
        *,
        prioritized: bool = False,
        alpha: float = 0.6,
        beta: float = 0.4,
        eps: float = 1e-6,
        n_step: int = 1,
        gamma: float = 0.99,
        beta_steps: int | None = None,
        seed: int | None = None,
    ) -> None:
        _require(
            isinstance(capacity, int | np.integer) and capacity >= 1,
            f"capacity must be a positive integer, got {capacity!r}",
        )
        _require(
            isinstance(n_step, int | np.integer) and n_step >= 1,
            f"n_step must be a positive integer, got {n_step!r}",
        )
        _require(0.0 <= gamma <= 1.0, f"gamma must lie in [0, 1], got {gamma!r}")
        _require(alpha >= 0.0 and np.isfinite(alpha), f"alpha must be >= 0, got {alpha!r}")
        _require(0.0 <= beta <= 1.0, f"beta must lie in [0, 1], got {beta!r}")
        _require(eps > 0.0 and np.isfinite(eps), f"eps must be > 0, got {eps!r}")
        _require(
            beta_steps is None or (isinstance(beta_steps, int | np.integer) and beta_steps >= 1),
            f"beta_steps must be a positive integer or None, got {beta_steps!r}",
        )
        self.capacity = int(capacity)
        self.prioritized = bool(prioritized)
        self.alpha = float(alpha)
        self.eps = float(eps)
        self.n_step = int(n_step)
        self.gamma = float(gamma)
        self._beta0 = float(beta)
        self._beta_steps = None if beta_steps is None else int(beta_steps)
        self._beta_t = 0  # prioritized batches drawn so far (for annealing)
        self._rng = np.random.default_rng(seed)

        self._spec: ColumnSpec | None = None
        self._cols: dict[str, np.ndarray] = {}  # views into _rows, one per column
        self._rows = np.zeros(0, dtype=np.dtype((np.void, 1)))
        self._width = 1
        self._layout: list[tuple[str, int, np.dtype[Any], tuple[int, ...], tuple[int, ...]]] = []
        self._cursor = 0  # next slot to write
        self._count = 0  # transitions ever stored == the id of the next one
        self._size = 0
        self._max_priority = 1.0  # the largest (p + eps) seen
        self._sum: SumTree | None = SumTree(self.capacity) if self.prioritized else None
        self._min: MinTree | None = MinTree(self.capacity) if self.prioritized else None
        self._windows: dict[Hashable, NStepWindow] = {}
        # incremental checkpoints: what changed since the last one, and where it went
        self._dirty_rows = np.zeros(0, dtype=bool)
        self._dirty_prio = np.zeros(0, dtype=bool)
        self._ckpt_dir: Path | None = None
        self._ckpt_token: str | None = None

    # -- small accessors ----------------------------------------------------------------
    def __len__(self) -> int:
        """Transitions currently held (at most ``capacity``)."""
        return self._size

    def __repr__(self) -> str:
        kind = "prioritized" if self.prioritized else "uniform"
        return f"<ReplayMemory {kind} {self._size}/{self.capacity} n_step={self.n_step}>"

    @property
    def count(self) -> int:
        """Transitions ever stored; also the id the next one will get."""
        return self._count

    @property
    def beta(self) -> float:
        """The importance-sampling exponent the next prioritized batch will use."""
        if self._beta_steps is None:
            return self._beta0
        frac = min(1.0, self._beta_t / self._beta_steps)
        return self._beta0 + (1.0 - self._beta0) * frac

    def set_beta(self, beta: float) -> None:
        """Fix β from now on (stops any ``beta_steps`` annealing)."""
        _require(0.0 <= beta <= 1.0, f"beta must lie in [0, 1], got {beta!r}")
        self._beta0 = float(beta)
        self._beta_steps = None

    @property
    def spec(self) -> dict[str, tuple[tuple[int, ...], str]] | None:
        """Per column ``(shape of one item, dtype string)``, or None before the first add."""
        if self._spec is None:
            return None
        return {k: (shape, dt.str) for k, (shape, dt) in self._spec.items()}

    # -- adding -------------------------------------------------------------------------
    def add(self, exp: Exp, priority: float | None = None, *, stream: Hashable = 0) -> np.ndarray:
        """Add one step; return the ids of the transitions it stored (``int64``).

        With ``n_step == 1`` that is one id. With n-step returns, the step joins the
        window of ``stream`` and 0..n transitions come out (see the module docstring);
        ``priority`` belongs to the transition that *starts* at this step.
        """
        if self.n_step == 1 and self._spec is not None:
            ids = self._add_one(exp, priority)
            if ids is not None:
                return ids
        prio = None if priority is None else [priority]
        return self.add_batch([exp], priorities=prio, stream=stream)

    def _add_one(self, exp: Exp, priority: float | None) -> np.ndarray | None:
        """Store one plain step in place, or return None to let ``add_batch`` handle it.

        Only input whose types and shapes need no conversion takes this path (an
        actor's usual ndarray/int/float/bool step); anything else, including every
        bad input, goes through ``add_batch``, which owns the checks and messages.
        """
        assert self._spec is not None
        (sshape, sdt), (ashape, adt) = self._spec["state"], self._spec["action"]
        state, nxt, action, reward = exp.state, exp.next_state, exp.action, exp.reward
        term, trunc = exp.terminated, exp.truncated
        if not (
            type(state) is np.ndarray
            and type(nxt) is np.ndarray
            and state.dtype == sdt
            and nxt.dtype == sdt
            and state.shape == sshape
            and nxt.shape == sshape
            and type(term) in _FLAG_TYPES
            and type(trunc) in _FLAG_TYPES
            and type(reward) in _REAL_TYPES
            and math.isfinite(reward)
        ):
            return None
        if type(action) is int:
            if not (adt == np.int64 and -(2**63) <= action < 2**63):
                return None
        elif not (isinstance(action, np.ndarray | np.generic) and action.dtype == adt and action.shape == ashape):
            return None
        leaf = 0.0
        if self._sum is not None:
            if priority is None:
                q = self._max_priority
            elif type(priority) in _REAL_TYPES and 0.0 <= priority < math.inf:
                q = float(priority) + self.eps
            else:
                return None
            leaf = q**self.alpha
            self._max_priority = max(self._max_priority, q)
        slot = self._cursor
        cols = self._cols
        cols["state"][slot] = state
        cols["next_state"][slot] = nxt
        cols["action"][slot] = action
        cols["reward"][slot] = reward
        cols["terminated"][slot] = term
        cols["truncated"][slot] = trunc
        cols["discount"][slot] = 0.0 if term else self.gamma
        self._dirty_rows[slot] = True
        if self._sum is not None and self._min is not None:
            self._sum.update_one(slot, leaf)
            self._min.update_one(slot, leaf)
        ids = np.array([self._count], dtype=np.int64)
        self._count += 1
        self._cursor = (slot + 1) % self.capacity
        self._size = min(self.capacity, self._size + 1)
        return ids

    def add_batch(
        self,
        exps: Sequence[Exp] | Mapping[str, npt.ArrayLike] | None = None,
        /,
        *,
        priorities: npt.ArrayLike | None = None,
        stream: Hashable = 0,
        **columns: npt.ArrayLike,
    ) -> np.ndarray:
        """Add many steps at once; return the ids of the transitions stored (``int64``).

        Either a list of ``Exp``, or columns with a leading batch dimension, given as
        keywords or as one mapping: ``state``, ``action``, ``reward``, ``next_state``,
        ``terminated``, ``truncated``; optionally ``discount`` (in [0, 1]) when the
        sender computed n-step returns itself (an Ape-X actor): then ``reward`` is
        that return, ``next_state`` the state it bootstraps from, and the memory
        (``n_step=1`` only) stores them as given. ``priorities`` (one per row, >= 0) are the
        initial priorities; without them each item gets the current max. With
        n-step returns the rows are consecutive steps of ``stream``. The batch is
        checked whole before anything is stored: a bad batch changes nothing.
        """
        if exps is not None and columns:
            raise ReplayError("give either a list of Exp / a mapping of columns, or column keywords")
        if exps is None:
            cols = self._parse_columns(columns)
        elif isinstance(exps, Mapping):
            cols = self._parse_columns(exps)
        else:
            cols = self._parse_exps(exps)
        rows, spec = self._validate(cols)
        prios = None if priorities is None else self._check_priorities(priorities, rows)
        if self._spec is None:
            self._allocate(spec)
        if self.n_step == 1:
            if "discount" not in cols:
                cols["discount"] = np.where(cols["terminated"], 0.0, self.gamma).astype(np.float32)
            return self._write(cols, prios)
        if "discount" in cols:
            raise ReplayError(
                f"a discount column carries returns computed by the sender: use a memory with n_step=1, "
                f"not {self.n_step} (it would compute n-step returns of n-step returns)"
            )
        window = self._windows.get(stream)
        if window is None:
            window = self._windows[stream] = NStepWindow(self.n_step, self.gamma)
        out: list[Out] = []
        s, a, r = cols["state"], cols["action"], cols["reward"]
        ns, te, tr = cols["next_state"], cols["terminated"], cols["truncated"]
        for i in range(rows):
            p = None if prios is None else float(prios[i])
            # copies: a window outlives the caller's arrays, which it may reuse
            step = (
                s[i].copy(),
                a[i].copy(),
                float(r[i]),
                ns[i].copy(),
                bool(te[i]),
                bool(tr[i]),
                p,
            )
            window.push(step, out)
        return self._write_steps(out)

    def flush(self, stream: Hashable | None = None) -> np.ndarray:
        """Store the steps still waiting in n-step windows (of ``stream``, or of all streams).

        They are stored as if the episode had been cut there: shorter returns that
        bootstrap from the last ``next_state`` seen. Use it when an actor stops
        mid-episode. Returns the ids stored.
        """
        out: list[Out] = []
        keys = list(self._windows) if stream is None else [stream]
        for key in keys:
            window = self._windows.pop(key, None)
            if window is not None:
                window.close(out)
        return self._write_steps(out)

    # -- sampling -----------------------------------------------------------------------
    def get_batch(self, n: int, mode: Literal["random", "latest"] = "random") -> Batch:
        """A batch of ``n`` transitions as a plain ``dict`` of numpy arrays.

        ``mode="random"``: uniform draws with replacement, or proportional to
        priority (stratified; the items then come ordered by slot) when prioritized. ``mode="latest"``: the ``n`` most
        recent transitions, oldest first. Keys: the ``COLUMNS`` (each with a
        leading dimension ``n``), ``indices`` (global ids, ``int64``) and, when
        prioritized, ``weights`` (``float32``, normalised by the memory-wide max).
        Asking for more than ``len(self)`` (or 0) raises ``ReplayError``.
        """
        if not isinstance(n, int | np.integer) or isinstance(n, bool) or n < 1:
            raise ReplayError(f"batch size must be a positive integer, got {n!r}")
        if self._size == 0:
            raise ReplayError("cannot sample from an empty replay memory")
        if n > self._size:
            raise ReplayError(f"asked for {n} transitions but the memory holds {self._size}")
        cap = self.capacity
        if mode == "random":
            if self._sum is not None:
                slots = self._sum.sample_stratified(int(n), self._rng)
            else:
                slots = self._rng.integers(0, self._size, size=int(n))
            ids = slots + cap * ((self._count - 1 - slots) // cap)
        elif mode == "latest":
            ids = np.arange(self._count - n, self._count, dtype=np.int64)
            slots = ids % cap
        else:
            raise ReplayError(f"mode must be 'random' or 'latest', got {mode!r}")
        batch = self._gather(slots)
        batch["indices"] = ids
        if self._sum is not None and self._min is not None:
            leaf = self._sum.get(slots)
            batch["weights"] = np.power(leaf / self._min.min, -self.beta).astype(np.float32)
            self._beta_t += 1
        return batch

    def update_priorities(
        self,
        indices: npt.ArrayLike,
        priorities: npt.ArrayLike,
        *,
        stale: Literal["raise", "skip"] = "raise",
    ) -> int:
        """Set the priorities (>= 0, finite) of the transitions with these ids.

        An id whose transition has been evicted raises ``StaleIndex`` (nothing is
        updated), or is left out with ``stale="skip"``; an id never handed out always
        raises. When an id repeats, its last priority wins. Returns how many were set.
        """
        if self._sum is None or self._min is None:
            raise ReplayError("update_priorities needs a memory created with prioritized=True")
        ids = np.asarray(indices)
        if ids.ndim != 1 or not (ids.dtype.kind in "iu" or ids.size == 0):
            raise ReplayError(f"indices must be a 1-d integer array, got shape {ids.shape} dtype {ids.dtype}")
        ids = ids.astype(np.int64, copy=False)
        prios = self._check_priorities(priorities, ids.size)
        if stale not in ("raise", "skip"):
            raise ReplayError(f"stale must be 'raise' or 'skip', got {stale!r}")
        unknown = (ids < 0) | (ids >= self._count)
        if unknown.any():
            raise StaleIndex(f"index {int(ids[unknown][0])} was never handed out (ids so far: 0..{self._count - 1})")
        evicted = ids < self._count - self._size
        if evicted.any():
            if stale == "raise":
                raise StaleIndex(
                    f"index {int(ids[evicted][0])} was evicted: its slot now holds a newer "
                    f"transition (oldest id held: {self._count - self._size}); "
                    "pass stale='skip' to ignore such ids"
                )
            keep = ~evicted
            ids, prios = ids[keep], prios[keep]
        if ids.size == 0:
            return 0
        uniq, last = np.unique(ids[::-1], return_index=True)
        if uniq.size < ids.size:  # repeated ids: keep each one's last priority
            ids, prios = uniq, prios[::-1][last]
        slots = ids % self.capacity
        q = prios + self.eps
        leaf = np.power(q, self.alpha)
        self._sum.update(slots, leaf)
        self._min.update(slots, leaf)
        self._max_priority = max(self._max_priority, float(q.max()))
        self._dirty_prio[slots] = True
        return int(ids.size)

    def to_columns(self) -> Batch:
        """Every stored transition, oldest first, as a dict of numpy arrays (copies).

        Same keys as a batch: the ``COLUMNS``, ``indices`` and, when prioritized,
        ``priorities`` (the stored ``(p + eps) ** alpha``).
        """
        ids = np.arange(self._count - self._size, self._count, dtype=np.int64)
        slots = ids % self.capacity
        out = self._gather(slots) if self._spec is not None else {}
        out["indices"] = ids
        if self._sum is not None:
            out["priorities"] = self._sum.get(slots)
        return out


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ReplayError(message)
