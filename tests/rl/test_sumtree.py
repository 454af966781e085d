"""Sum and min trees: invariants under random batched updates, prefix search, sampling."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beamrl.rl.sumtree import MinTree, SumTree


def check_invariants(s: SumTree, m: MinTree, leaves: np.ndarray) -> None:
    nodes, off = s.nodes, s.leaf_offset
    for i in range(1, off):
        assert nodes[i] == nodes[2 * i] + nodes[2 * i + 1]
    mins = m.nodes
    for i in range(1, off):
        assert mins[i] == min(mins[2 * i], mins[2 * i + 1])
    np.testing.assert_array_equal(s.leaves(), leaves)
    # integer-valued leaves: every partial sum is exact, whatever the order
    assert s.total == leaves.sum()


# operations: ("set", leaves, values) or ("range", start, values); values are whole numbers
op = st.one_of(
    st.tuples(
        st.just("set"),
        st.lists(st.integers(0, 1000), min_size=1, max_size=20),
        st.lists(st.integers(0, 50), min_size=1, max_size=20),
    ),
    st.tuples(st.just("one"), st.integers(0, 1000), st.lists(st.integers(0, 50), min_size=1)),
    st.tuples(
        st.just("range"),
        st.integers(0, 1000),
        st.lists(st.integers(0, 50), min_size=1, max_size=20),
    ),
)


@settings(max_examples=150, deadline=None)
@given(capacity=st.integers(1, 40), ops=st.lists(op, min_size=1, max_size=12), seed=st.integers(0, 9))
def test_trees_keep_their_invariants_under_random_updates(capacity, ops, seed):
    s, m = SumTree(capacity), MinTree(capacity)
    leaves = np.zeros(capacity)
    m.load_leaves(np.full(capacity, np.inf))
    mins = np.full(capacity, np.inf)
    for kind, a, values in ops:
        if kind == "set":
            idx = np.array([i % capacity for i in a])
            vals = np.array([float(values[k % len(values)]) for k in range(idx.size)])
            # the last write to a repeated leaf wins; give repeats one value to stay defined
            for i, v in zip(idx, vals, strict=True):
                vals[idx == i] = v
            s.update(idx, vals)
            m.update(idx, np.where(vals > 0, vals, 1.0))
            leaves[idx] = vals
            mins[idx] = np.where(vals > 0, vals, 1.0)
        elif kind == "one":
            leaf, v = a % capacity, float(values[0])
            s.update_one(leaf, v)
            m.update_one(leaf, v if v > 0 else 1.0)
            leaves[leaf] = v
            mins[leaf] = v if v > 0 else 1.0
        else:
            start = a % capacity
            vals = np.array(values[: capacity - start], dtype=float)
            s.update_range(start, vals)
            m.update_range(start, np.where(vals > 0, vals, 1.0))
            leaves[start : start + vals.size] = vals
            mins[start : start + vals.size] = np.where(vals > 0, vals, 1.0)
        check_invariants(s, m, leaves)
        np.testing.assert_array_equal(m.leaves(), mins)
        assert m.min == mins.min()
        if s.total > 0:
            rng = np.random.default_rng(seed)
            # points anywhere in [0, total], including the very end and beyond
            u = np.concatenate([rng.random(64) * s.total, [0.0, s.total, s.total * 1.5]])
            found = s.find(u)
            assert (leaves[found] > 0).all()
            assert ((found >= 0) & (found < capacity)).all()
            inside = u < s.total
            expected = np.searchsorted(np.cumsum(leaves), u[inside], side="right")
            np.testing.assert_array_equal(found[inside], expected)
            drawn = s.sample_stratified(32, rng)
            assert (leaves[drawn] > 0).all()


def test_load_leaves_rebuilds_the_tree():
    s = SumTree(5)
    s.load_leaves(np.array([1.0, 2.0, 0.0, 4.0, 8.0]))
    assert s.total == 15.0
    np.testing.assert_array_equal(s.find(np.array([0.0, 0.99, 1.0, 3.0, 7.0, 14.9])), [0, 0, 1, 3, 4, 4])
    m = MinTree(5)
    m.load_leaves(np.array([3.0, 2.0, 7.0, 4.0, 8.0]))
    assert m.min == 2.0
    assert MinTree(3).min == np.inf


def test_stratified_sampling_follows_the_leaf_values():
    s = SumTree(4)
    s.update(np.arange(4), np.array([1.0, 2.0, 3.0, 4.0]))
    rng = np.random.default_rng(0)
    counts = np.bincount(np.concatenate([s.sample_stratified(10, rng) for _ in range(2000)]), minlength=4)
    np.testing.assert_allclose(counts / counts.sum(), [0.1, 0.2, 0.3, 0.4], atol=0.01)


def test_bad_use_is_refused():
    with pytest.raises(ValueError, match="at least one leaf"):
        SumTree(0)
    with pytest.raises(ValueError, match="total is not positive"):
        SumTree(4).find(np.array([0.0]))
    with pytest.raises(ValueError, match="expected 4 leaf values"):
        SumTree(4).load_leaves(np.ones(3))
