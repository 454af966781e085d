"""Sum and min segment trees over a fixed number of leaves, updated and searched in batches.

Both trees are complete binary trees stored in one flat ``float64`` array of
``2 * size`` entries, ``size`` being the leaf count rounded up to a power of two:
the root is ``tree[1]``, node ``i`` has children ``2i`` and ``2i + 1``, and leaf
``k`` lives at ``tree[size + k]``. Leaves past ``capacity`` hold the identity of the
operation (0 for the sum, +inf for the min), so they never change a result.

Every operation takes a whole batch of leaves and walks the ``log2(size)`` levels
once for all of them with numpy: the cost of updating or sampling ``n`` leaves is
``O(n log N)`` numpy work in ``log N`` vectorised steps, not ``n log N`` Python steps::

    tree = SumTree(1_000_000)
    tree.update(np.array([3, 7]), np.array([0.5, 2.0]))
    tree.total                      # 2.5
    tree.find(np.array([0.1, 1.0])) # leaves whose prefix-sum interval holds each value
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["MinTree", "SumTree"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class _SegmentTree:
    """A complete binary tree of ``float64`` whose parents combine their two children."""

    _identity: float = 0.0

    def __init__(self, capacity: int) -> None:
        if int(capacity) < 1:
            raise ValueError(f"a tree needs at least one leaf, got capacity={capacity}")
        self.capacity = int(capacity)
        size = 1
        while size < self.capacity:
            size *= 2
        self._size = size
        self._depth = size.bit_length() - 1
        self._tree: FloatArray = np.full(2 * size, self._identity, dtype=np.float64)
        self._shifts = np.arange(self._depth + 1, dtype=np.int64)

    # -- the operation that combines two children; vectorised --------------------------
    def _combine(self, left: FloatArray, right: FloatArray) -> FloatArray:
        raise NotImplementedError

    def _accumulate(self, values: FloatArray) -> FloatArray:
        raise NotImplementedError

    # -- reading ------------------------------------------------------------------------
    @property
    def root(self) -> float:
        """The combination of every leaf (sum or min)."""
        return float(self._tree[1])

    @property
    def nodes(self) -> FloatArray:
        """The whole tree (read-only view): ``nodes[1]`` is the root, leaves start at ``size``."""
        view = self._tree.view()
        view.flags.writeable = False
        return view

    @property
    def leaf_offset(self) -> int:
        """Index in ``nodes`` of leaf 0."""
        return self._size

    def get(self, leaves: npt.ArrayLike) -> FloatArray:
        """The values of ``leaves`` (a copy)."""
        return self._tree[np.asarray(leaves, dtype=np.int64) + self._size]

    def leaves(self) -> FloatArray:
        """All ``capacity`` leaf values (a copy)."""
        return self._tree[self._size : self._size + self.capacity].copy()

    # -- writing ------------------------------------------------------------------------
    def update(self, leaves: npt.ArrayLike, values: npt.ArrayLike) -> None:
        """Set ``leaves`` to ``values`` and recompute their ancestors, all at once.

        When a leaf appears more than once, the last value wins. The caller checks
        that leaves lie in ``[0, capacity)``; values are stored as given.
        """
        idx = np.asarray(leaves, dtype=np.int64) + self._size
        if idx.size == 0:
            return
        tree = self._tree
        tree[idx] = values
        # Duplicated parents are written several times with the same value: harmless,
        # and cheaper than deduplicating at every level.
        for _ in range(self._depth):
            idx >>= 1
            tree[idx] = self._combine(tree[2 * idx], tree[2 * idx + 1])

    def update_one(self, leaf: int, value: float) -> None:
        """Set one leaf and its ancestors with a handful of numpy calls (no Python loop).

        Along the path to the root each parent is the previous node combined with
        its sibling, so the path's new values are an accumulation over
        ``[value, sibling_0, sibling_1, ...]`` (``np.add.accumulate`` or
        ``np.minimum.accumulate``): the same operations, in the same order, as
        recomputing each parent from its children.
        """
        path = (int(leaf) + self._size) >> self._shifts  # leaf node, parent, ..., root
        vals = np.empty(path.size)
        vals[0] = value
        vals[1:] = self._tree[path[:-1] ^ 1]
        self._tree[path] = self._accumulate(vals)

    def update_range(self, start: int, values: npt.ArrayLike) -> None:
        """Set the contiguous leaves ``start .. start + len(values) - 1``, using slices only."""
        vals = np.asarray(values, dtype=np.float64)
        if vals.size == 0:
            return
        lo = start + self._size
        hi = lo + vals.size - 1  # inclusive
        tree = self._tree
        tree[lo : hi + 1] = vals
        for _ in range(self._depth):
            lo >>= 1
            hi >>= 1
            tree[lo : hi + 1] = self._combine(tree[2 * lo : 2 * hi + 2 : 2], tree[2 * lo + 1 : 2 * hi + 2 : 2])

    def load_leaves(self, values: npt.ArrayLike) -> None:
        """Replace every leaf (``capacity`` values) and rebuild the tree bottom-up."""
        vals = np.asarray(values, dtype=np.float64)
        if vals.shape != (self.capacity,):
            raise ValueError(f"expected {self.capacity} leaf values, got shape {vals.shape}")
        tree = self._tree
        tree[:] = self._identity
        tree[self._size : self._size + self.capacity] = vals
        lo = self._size
        while lo > 1:
            half = lo // 2
            tree[half:lo] = self._combine(tree[lo : 2 * lo : 2], tree[lo + 1 : 2 * lo : 2])
            lo = half


class SumTree(_SegmentTree):
    """Parents hold the sum of their children: prefix-sum search in ``O(log N)`` per batch step.

    Leaves must be non-negative (the caller checks); ``find`` never returns a leaf
    whose value is 0 while the total is positive.
    """

    _identity = 0.0

    def _combine(self, left: FloatArray, right: FloatArray) -> FloatArray:
        return left + right

    def _accumulate(self, values: FloatArray) -> FloatArray:
        return np.add.accumulate(values)

    @property
    def total(self) -> float:
        """The sum of all leaves."""
        return float(self._tree[1])

    def find(self, prefix: npt.ArrayLike) -> IntArray:
        """For each ``u`` in ``prefix``, the leaf ``k`` with ``S(k) <= u < S(k + 1)``.

        ``S(k)`` is ``sum(leaves[:k])``.

        All values descend the tree together, one numpy step per level. Values at
        or above the total (floating-point rounding) land on the last positive
        leaf instead of an empty one: a step goes right only when the right subtree
        has positive mass. Raises ``ValueError`` when the total is not positive.
        """
        if not self._tree[1] > 0.0:
            raise ValueError("cannot search a sum tree whose total is not positive")
        u = np.array(prefix, dtype=np.float64, copy=True)
        idx = np.ones(u.shape, dtype=np.int64)
        tree = self._tree
        for _ in range(self._depth):
            left = 2 * idx
            left_sum = tree[left]
            right = (u >= left_sum) & (tree[left + 1] > 0.0)
            u -= np.where(right, left_sum, 0.0)
            idx = left + right
        return idx - self._size

    def sample_stratified(self, n: int, rng: np.random.Generator) -> IntArray:
        """``n`` leaves drawn proportionally to their values, one per equal slice of the total.

        The total is cut into ``n`` equal segments and one uniform point is drawn in
        each (Schaul et al. 2016, appendix B.2.1): every leaf is drawn with
        probability ``value / total`` per draw on average, with lower variance than
        independent draws. The result is ordered by segment, i.e. by leaf position.
        """
        total = self.total
        points = (np.arange(n, dtype=np.float64) + rng.random(n)) * (total / n)
        return self.find(points)


class MinTree(_SegmentTree):
    """Parents hold the minimum of their children; empty leaves hold +inf."""

    _identity = float("inf")

    def _combine(self, left: FloatArray, right: FloatArray) -> FloatArray:
        return np.minimum(left, right)

    def _accumulate(self, values: FloatArray) -> FloatArray:
        return np.minimum.accumulate(values)

    @property
    def min(self) -> float:
        """The smallest leaf (+inf when every leaf is empty)."""
        return float(self._tree[1])
