"""``ReplayMemory``: a ring buffer of transitions, uniform or prioritized, with n-step returns.

Usage loop (an actor adds, a learner samples and updates priorities)::

    memory = ReplayMemory(100_000, prioritized=True, n_step=3, gamma=0.99, seed=0)
    exp = env.reset(seed=0)
    while not exp.done:
        exp = env.step(policy(exp.next_state))
        memory.add(exp)                                    # priority: the current max
    batch = memory.get_batch(32)                           # a plain dict of numpy arrays
    target = batch["reward"] + batch["discount"] * q_next(batch["next_state"]).max(-1)
    memory.update_priorities(batch["indices"], abs(target - q(batch)))

Storage. Columns are numpy arrays allocated on the first ``add`` from the shapes and
dtypes seen (``state``/``next_state`` and ``action`` keep theirs; ``reward`` and
``discount`` are ``float32``; ``terminated``/``truncated`` are ``bool``). Later input
must have the same shapes and a dtype that casts to the stored one within its kind
(float64 into float32 is fine, float into an int action is not). ``Exp.info`` is not
stored. When full, the oldest transition is overwritten.

Indices. Every stored transition gets a global id, the number of transitions added
before it (0, 1, 2, ...). ``get_batch`` returns these ids as ``indices``; its slot is
``id % capacity``. ``update_priorities`` refuses an id whose slot has since been
overwritten (``StaleIndex``), so a slow learner never re-prioritises the wrong item.

n-step returns. With ``n_step = n``, each stream of consecutive steps (``stream=``,
one per environment) is held back in a window of ``n`` steps and each step ``t``
is stored as::

    reward     = r_t + γ r_{t+1} + ... + γ^{k-1} r_{t+k-1}
    next_state = s_{t+k}        (the next_state of step t+k-1)
    discount   = 0 if the episode terminated within those k steps, else γ^k

where ``k = n``, or fewer when the episode ended (``terminated`` or ``truncated``)
before ``n`` steps. ``terminated``/``truncated`` are those of step ``t+k-1``. So a
learner always computes ``target = reward + discount * max_a Q(next_state, a)``:
no bootstrap through a terminal state, a bootstrap through a time limit. With
``n_step = 1`` this is the usual ``discount = γ (1 - terminated)``. Steps still in
a window are not visible, not saved and not checkpointed until their window
closes (``n`` later steps, the episode's end, or ``flush()``).

Prioritized replay (Schaul et al. 2016, proportional variant). An item's priority
``p`` (e.g. ``|TD error|``) is stored as ``(p + eps) ** alpha`` in a sum tree and a
min tree; sampling draws item ``i`` with ``P(i) = (p_i + eps)^α / Σ_j (p_j + eps)^α``,
one draw in each of ``n`` equal slices of the total (stratified). A new item gets
the given priority or, without one, the largest priority seen so far (1.0 at
first). Importance-sampling weights are ``w_i = (N P(i))^-β / max_j w_j`` with the
maximum taken **over the whole memory** (``j`` ranges over every stored item, so
``max_j w_j`` belongs to the item of smallest priority, as in Ape-X and OpenAI
baselines): weights lie in ``(0, 1]`` and do not depend on which other items the
batch happened to draw. β is ``beta``, raised linearly to 1.0 over ``beta_steps``
prioritized batches when ``beta_steps`` is given; ``set_beta(b)`` fixes it.

On disk. ``save(path)`` writes one ``.npz`` (see ``state_dict``); ``checkpoint(dir)``
writes only what changed since its last call into ``dir`` (see ``checkpoint``).
Neither uses pickle: every entry is a plain numeric array, the metadata is JSON text
stored as a ``uint8`` array, and loading passes ``allow_pickle=False``.
"""

from __future__ import annotations

import json
import math
import os
import uuid
import zipfile
from collections import deque
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from beamrl.rl.errors import ReplayError, StaleIndex
from beamrl.rl.exp import Exp
from beamrl.rl.sumtree import MinTree, SumTree

__all__ = ["COLUMNS", "ReplayError", "ReplayMemory", "StaleIndex"]

FORMAT = "beamrl.replay/1"
CHECKPOINT_FORMAT = "beamrl.replay-checkpoint/1"
MANIFEST = "manifest.json"

INPUT_COLUMNS = ("state", "action", "reward", "next_state", "terminated", "truncated")
COLUMNS = (*INPUT_COLUMNS, "discount")
"""The columns a memory stores, and the keys of every batch besides ``indices``/``weights``."""

_NUMERIC_KINDS = "biuf"
_FLAG_TYPES = (bool, np.bool_)
_REAL_TYPES = (int, float, np.float32, np.float64, np.int64, np.int32)
Batch = dict[str, np.ndarray]


# ---------------------------------------------------------------------------------------
# n-step windows
# ---------------------------------------------------------------------------------------

# A step as held in a window: state, action, reward, next_state, terminated, truncated, priority
_Step = tuple[np.ndarray, np.ndarray, float, np.ndarray, bool, bool, float | None]
# A stored transition: the above with the n-step reward and a discount before the priority
_Out = tuple[np.ndarray, np.ndarray, float, np.ndarray, bool, bool, float, float | None]


class _NStepWindow:
    """Holds the last ``n`` steps of one stream and emits n-step transitions as they close."""

    def __init__(self, n: int, gamma: float) -> None:
        self.n = n
        self.gamma = gamma
        self.steps: deque[_Step] = deque()

    def push(self, step: _Step, out: list[_Out]) -> None:
        self.steps.append(step)
        if step[4] or step[5]:  # the episode ended: every pending step closes now
            self.close(out)
        elif len(self.steps) == self.n:
            s0 = self.steps[0]
            ret = 0.0
            for s in reversed(self.steps):
                ret = s[2] + self.gamma * ret
            out.append((s0[0], s0[1], ret, step[3], False, False, self.gamma**self.n, s0[6]))
            self.steps.popleft()

    def close(self, out: list[_Out]) -> None:
        """Emit every pending step, bootstrapping from the last next_state unless terminated."""
        if not self.steps:
            return
        last = self.steps[-1]
        m = len(self.steps)
        returns = [0.0] * m
        ret = 0.0
        for i in range(m - 1, -1, -1):
            ret = self.steps[i][2] + self.gamma * ret
            returns[i] = ret
        for i, s in enumerate(self.steps):
            discount = 0.0 if last[4] else self.gamma ** (m - i)
            out.append((s[0], s[1], returns[i], last[3], last[4], last[5], discount, s[6]))
        self.steps.clear()


# ---------------------------------------------------------------------------------------
# the memory
# ---------------------------------------------------------------------------------------


class ReplayMemory:
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

        self._spec: dict[str, tuple[tuple[int, ...], np.dtype[Any]]] | None = None
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
        self._windows: dict[Hashable, _NStepWindow] = {}
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
        ``terminated``, ``truncated``. ``priorities`` (one per row, >= 0) are the
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
            cols["discount"] = np.where(cols["terminated"], 0.0, self.gamma).astype(np.float32)
            return self._write(cols, prios)
        window = self._windows.get(stream)
        if window is None:
            window = self._windows[stream] = _NStepWindow(self.n_step, self.gamma)
        out: list[_Out] = []
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
        out: list[_Out] = []
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

    # -- saving and loading -------------------------------------------------------------
    def state_dict(self) -> Batch:
        """The whole memory as a flat dict of numpy arrays: what ``save`` writes.

        ``meta``: UTF-8 JSON as ``uint8`` (format, config, cursor, count, max
        priority, β progress, sampler state, column spec). ``col.<name>``: the filled
        slots ``0 .. len-1`` of each column, in slot order (the oldest item sits at
        ``cursor`` once the memory is full). ``leaf``: the sum-tree leaves
        ``(p + eps) ** alpha`` of those slots (prioritized memories only). Pending
        n-step windows are not included.
        """
        out: Batch = {"meta": _json_bytes(self._meta(FORMAT))}
        n = self._size
        for name, col in self._cols.items():
            out[f"col.{name}"] = col[:n]
        if self._sum is not None:
            out["leaf"] = self._sum.get(np.arange(n))
        return out

    @classmethod
    def from_state_dict(cls, state: Mapping[str, np.ndarray]) -> ReplayMemory:
        """Rebuild a memory from ``state_dict()`` output (or an opened ``.npz``)."""
        meta = _parse_meta(state, FORMAT)
        memory = cls._from_meta(meta)
        n = int(meta["size"])
        if memory._spec is not None:
            for name in COLUMNS:
                arr = _entry(state, f"col.{name}")
                memory._check_loaded(name, arr, n)
                memory._cols[name][:n] = arr
        if memory._sum is not None and memory._min is not None:
            leaf = _entry(state, "leaf")
            if leaf.shape != (n,):
                raise ReplayError(f"'leaf' has shape {leaf.shape}, expected ({n},)")
            leaves = np.zeros(memory.capacity)
            leaves[:n] = leaf
            memory._load_leaves(leaves, n)
        return memory

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the memory to one uncompressed ``.npz`` file (see ``state_dict``)."""
        _write_npz(Path(path), self.state_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ReplayMemory:
        """Read a memory written by ``save``."""
        try:
            with np.load(Path(path), allow_pickle=False) as data:
                return cls.from_state_dict({k: data[k] for k in data.files})
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            if isinstance(exc, ReplayError):
                raise
            raise ReplayError(f"cannot read a replay memory from {path}: {exc}") from exc

    def checkpoint(self, directory: str | os.PathLike[str]) -> int:
        """Write what changed since the last checkpoint into ``directory``; return bytes written.

        Layout: ``manifest.json`` (format, a token naming the latest checkpoint, the
        metadata of ``state_dict`` and the ordered list of segment files) and
        ``seg-NNNNNNNN.npz`` segments. A segment holds ``rows`` (slots) with
        ``col.<name>`` values for them, and ``prio_slots`` with their ``leaf``
        values; restoring applies segments in order onto an empty memory. The first
        checkpoint into a directory (or one whose manifest this memory did not write)
        is a base segment of every filled slot; later ones hold only the slots added
        or re-prioritised since. When the segments hold more than twice the memory's
        rows (or 64 segments), a new base replaces them. Segments and the manifest
        are written to temporary names and renamed, so a crash leaves the previous
        checkpoint readable.
        """
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        manifest = self._chain_manifest(d)
        n = self._size
        if manifest is None:
            rows = np.arange(n, dtype=np.int64)
            prio_slots = rows
            segments: list[dict[str, Any]] = []
            seq = 0
        else:
            rows = np.flatnonzero(self._dirty_rows[:n])
            prio_slots = np.flatnonzero(self._dirty_rows[:n] | self._dirty_prio[:n])
            segments = list(manifest["segments"])
            seq = int(manifest["next_seq"])
            stored = sum(int(s["rows"]) for s in segments) + rows.size
            if stored > 2 * max(n, 1) or len(segments) >= 64:  # compact into a new base
                rows = np.arange(n, dtype=np.int64)
                prio_slots = rows
                segments = []
        # A fresh token per checkpoint: a memory whose last checkpoint is no longer the
        # head of the chain (another memory restored from it and wrote since) starts over.
        token = uuid.uuid4().hex
        seg: Batch = {"rows": rows}
        for name, col in self._cols.items():
            seg[f"col.{name}"] = col[rows]
        if self._sum is not None:
            seg["prio_slots"] = prio_slots
            seg["leaf"] = self._sum.get(prio_slots)
        name = f"seg-{seq:08d}.npz"
        written = _write_npz(d / name, seg)
        segments.append({"file": name, "rows": int(rows.size)})
        doc = {
            "format": CHECKPOINT_FORMAT,
            "token": token,
            "next_seq": seq + 1,
            "segments": segments,
            "meta": self._meta(FORMAT),
        }
        written += _write_bytes(d / MANIFEST, json.dumps(doc, indent=1).encode())
        keep = {s["file"] for s in segments}
        for old in d.glob("seg-*.npz"):
            if old.name not in keep:
                old.unlink()
        self._ckpt_dir = d.resolve()
        self._ckpt_token = token
        self._dirty_rows[:] = False
        self._dirty_prio[:] = False
        return written

    @classmethod
    def restore(cls, directory: str | os.PathLike[str]) -> ReplayMemory:
        """Rebuild a memory from a ``checkpoint`` directory; later checkpoints there stay
        incremental."""
        d = Path(directory)
        try:
            doc = json.loads((d / MANIFEST).read_text())
        except (OSError, ValueError) as exc:
            raise ReplayError(f"cannot read {d / MANIFEST}: {exc}") from exc
        if not isinstance(doc, dict) or doc.get("format") != CHECKPOINT_FORMAT:
            raise ReplayError(f"{d / MANIFEST} is not a {CHECKPOINT_FORMAT} manifest")
        meta = doc["meta"]
        memory = cls._from_meta(meta)
        n = int(meta["size"])
        leaves = np.zeros(memory.capacity)
        for entry in doc["segments"]:
            path = d / entry["file"]
            try:
                with np.load(path, allow_pickle=False) as data:
                    seg = {k: data[k] for k in data.files}
            except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
                raise ReplayError(f"cannot read checkpoint segment {path}: {exc}") from exc
            rows = _entry(seg, "rows").astype(np.int64)
            if rows.size and (rows.min() < 0 or rows.max() >= n):
                raise ReplayError(f"{path}: rows outside 0..{n - 1}")
            # a segment written before the first add has no columns
            if memory._spec is not None and rows.size:
                for name in COLUMNS:
                    arr = _entry(seg, f"col.{name}")
                    memory._check_loaded(name, arr, rows.size)
                    memory._cols[name][rows] = arr
            if memory._sum is not None:
                ps = _entry(seg, "prio_slots").astype(np.int64)
                if ps.size and (ps.min() < 0 or ps.max() >= n):
                    raise ReplayError(f"{path}: prio_slots outside 0..{n - 1}")
                leaves[ps] = _entry(seg, "leaf")
        if memory._sum is not None:
            memory._load_leaves(leaves, n)
        memory._ckpt_dir = d.resolve()
        memory._ckpt_token = str(doc["token"])
        return memory

    # -- internals: input ---------------------------------------------------------------
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
        extra = [c for c in columns if c not in INPUT_COLUMNS]
        if missing or extra:
            raise ReplayError(
                f"columns must be exactly {', '.join(INPUT_COLUMNS)}"
                + (f"; missing {missing}" if missing else "")
                + (f"; unknown {extra}" if extra else "")
            )
        try:
            return {name: np.asarray(columns[name]) for name in INPUT_COLUMNS}
        except ValueError as exc:
            raise ReplayError(f"a column is not a regular array: {exc}") from exc

    def _validate(self, cols: dict[str, np.ndarray]) -> tuple[int, dict[str, tuple[tuple[int, ...], np.dtype[Any]]]]:
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
                if arr.dtype.kind not in _NUMERIC_KINDS:
                    raise ReplayError(f"{name} must be numeric or bool, got dtype {arr.dtype}")
                spec[name] = (tuple(arr.shape[1:]), arr.dtype)
            spec["next_state"] = spec["state"]
        for name in ("state", "next_state", "action"):
            shape, dtype = spec[name]
            arr = cols[name]
            if arr.shape[1:] != shape:
                raise ReplayError(f"{name} items have shape {arr.shape[1:]}, the memory holds {shape}")
            if arr.dtype != dtype:
                if arr.dtype.kind not in _NUMERIC_KINDS or not np.can_cast(arr.dtype, dtype, casting="same_kind"):
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

    # -- internals: storage -------------------------------------------------------------
    def _allocate(self, spec: dict[str, tuple[tuple[int, ...], np.dtype[Any]]]) -> None:
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

    def _write_steps(self, out: list[_Out]) -> np.ndarray:
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

    # -- internals: persistence ---------------------------------------------------------
    def _meta(self, fmt: str) -> dict[str, Any]:
        return {
            "format": fmt,
            "config": {
                "capacity": self.capacity,
                "prioritized": self.prioritized,
                "alpha": self.alpha,
                "beta": self._beta0,
                "eps": self.eps,
                "n_step": self.n_step,
                "gamma": self.gamma,
                "beta_steps": self._beta_steps,
            },
            "cursor": self._cursor,
            "count": self._count,
            "size": self._size,
            "max_priority": self._max_priority,
            "beta_t": self._beta_t,
            "rng": self._rng.bit_generator.state,
            "spec": None if self._spec is None else {k: [list(shape), dt.str] for k, (shape, dt) in self._spec.items()},
        }

    @classmethod
    def _from_meta(cls, meta: Mapping[str, Any]) -> ReplayMemory:
        try:
            memory = cls(**meta["config"])
            memory._cursor = int(meta["cursor"])
            memory._count = int(meta["count"])
            memory._size = int(meta["size"])
            memory._max_priority = float(meta["max_priority"])
            memory._beta_t = int(meta["beta_t"])
            memory._rng.bit_generator.state = meta["rng"]
            spec = meta["spec"]
            if spec is not None:
                memory._allocate(
                    {
                        k: (tuple(int(d) for d in spec[k][0]), np.dtype(spec[k][1]))
                        for k in ("state", "action", "next_state")
                    }
                )
                for k, (shape, dt) in (memory._spec or {}).items():
                    if [list(shape), dt.str] != [list(spec[k][0]), spec[k][1]]:
                        raise ReplayError(f"column {k!r}: stored spec {spec[k]} is not supported")
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ReplayError):
                raise
            raise ReplayError(f"bad replay metadata: {exc!r}") from exc
        cap = memory.capacity
        ok = (
            0 <= memory._size <= cap
            and memory._count >= memory._size
            and memory._cursor == memory._count % cap
            and (memory._size == cap or memory._size == memory._count)
        )
        if not ok:
            raise ReplayError("bad replay metadata: cursor, count and size disagree")
        return memory

    def _check_loaded(self, name: str, arr: np.ndarray, rows: int) -> None:
        assert self._spec is not None
        shape, dtype = self._spec[name]
        if arr.shape != (rows, *shape) or arr.dtype != dtype:
            raise ReplayError(
                f"column {name!r} has shape {arr.shape} dtype {arr.dtype}, expected {(rows, *shape)} {dtype}"
            )

    def _chain_manifest(self, d: Path) -> dict[str, Any] | None:
        """The manifest in ``d`` if this memory's last checkpoint wrote it, else None."""
        if self._ckpt_dir is None or self._ckpt_dir != d.resolve():
            return None
        try:
            doc = json.loads((d / MANIFEST).read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(doc, dict) or doc.get("token") != self._ckpt_token:
            return None
        if not all((d / s["file"]).exists() for s in doc.get("segments", [])):
            return None
        return doc


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ReplayError(message)


def _c_strides(shape: tuple[int, ...], itemsize: int) -> tuple[int, ...]:
    """Byte strides of a C-contiguous array of ``shape`` (without the leading axis)."""
    strides = []
    step = itemsize
    for dim in reversed(shape):
        strides.append(step)
        step *= dim
    return tuple(reversed(strides))


def _json_bytes(obj: Any) -> np.ndarray:
    return np.frombuffer(json.dumps(obj).encode(), dtype=np.uint8)


def _parse_meta(state: Mapping[str, np.ndarray], fmt: str) -> dict[str, Any]:
    raw = _entry(state, "meta")
    try:
        meta = json.loads(np.asarray(raw, dtype=np.uint8).tobytes().decode())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ReplayError(f"'meta' is not JSON: {exc}") from exc
    found = meta.get("format") if isinstance(meta, dict) else None
    if found != fmt:
        raise ReplayError(f"not a {fmt} replay memory (format {found!r})")
    return meta


def _entry(state: Mapping[str, np.ndarray], key: str) -> np.ndarray:
    try:
        arr = np.asarray(state[key])
    except KeyError:
        raise ReplayError(f"entry {key!r} is missing") from None
    if arr.dtype.kind not in _NUMERIC_KINDS:
        raise ReplayError(f"entry {key!r} has non-numeric dtype {arr.dtype}")
    return arr


def _write_bytes(path: Path, data: bytes) -> int:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return len(data)


def _write_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> int:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, allow_pickle=False, **arrays)
        f.flush()
        os.fsync(f.fileno())
        size = f.tell()
    os.replace(tmp, path)
    return size
