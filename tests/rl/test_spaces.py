"""Spaces: sampling, membership, gymnasium round trips and the wire form."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beamrl.rl.spaces import (
    Box,
    Dict,
    Discrete,
    MultiBinary,
    MultiDiscrete,
    Space,
    Tuple,
    from_gym,
    space_from_data,
)

shapes = st.lists(st.integers(1, 4), min_size=0, max_size=3).map(tuple)
finite = st.floats(-1e6, 1e6, allow_nan=False)


@st.composite
def boxes(draw: st.DrawFn) -> Box:
    shape = draw(shapes)
    dtype = draw(st.sampled_from(["float32", "float64", "int8", "int64", "uint8"]))
    if dtype.startswith(("int", "uint")):
        info = np.iinfo(dtype)
        a = draw(st.integers(int(info.min), int(info.max)))
        b = draw(st.integers(int(info.min), int(info.max)))
    else:
        a = draw(st.one_of(finite, st.just(-np.inf)))
        b = draw(st.one_of(finite, st.just(np.inf)))
    low, high = (a, b) if a <= b else (b, a)
    return Box(low, high, shape, dtype)


leaves = st.one_of(
    st.builds(Discrete, st.integers(1, 1000), st.integers(-50, 50)),
    boxes(),
    st.builds(MultiDiscrete, st.lists(st.integers(1, 9), min_size=1, max_size=4)),
    st.builds(MultiBinary, st.one_of(st.integers(1, 6), shapes.filter(bool))),
)
spaces_st = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.builds(Tuple, st.lists(children, max_size=3)),
        st.builds(Dict, st.dictionaries(st.text("abc", min_size=1, max_size=3), children)),
    ),
    max_leaves=6,
)


@settings(max_examples=150, deadline=None)
@given(spaces_st, st.integers(0, 2**32))
def test_samples_belong_and_are_reproducible(space: Space, seed: int) -> None:
    space.seed(seed)
    first = [space.sample() for _ in range(3)]
    for x in first:
        assert space.contains(x), (space, x)
    space.seed(seed)
    again = [space.sample() for _ in range(3)]
    assert repr(first) == repr(again)


@settings(max_examples=150, deadline=None)
@given(spaces_st)
def test_gym_and_wire_round_trips(space: Space) -> None:
    assert from_gym(space.to_gym()) == space
    assert space_from_data(space.to_data()) == space


@given(st.integers(1, 50), st.integers(-5, 5))
def test_discrete_membership(n: int, start: int) -> None:
    space = Discrete(n, start)
    space.seed(0)
    x = space.sample()
    assert type(x) is int
    assert space.contains(np.int64(x))
    assert space.contains(np.uint8(max(x, 0))) == (x >= 0)
    assert not space.contains(float(x))
    assert not space.contains(start - 1)
    assert not space.contains(start + n)
    assert not space.contains(True)
    assert not space.contains(np.bool_(True))
    assert not space.contains(str(x))
    assert not space.contains(np.array([x]))


def test_discrete_sample_matches_gymnasium() -> None:
    ours, theirs = Discrete(7, start=2), gym.spaces.Discrete(7, start=2)
    ours.seed(42)
    theirs.seed(42)
    assert [ours.sample() for _ in range(50)] == [int(theirs.sample()) for _ in range(50)]


@settings(max_examples=100, deadline=None)
@given(boxes())
def test_box_refuses_wrong_types_shapes_and_bounds(box: Box) -> None:
    box.seed(1)
    x = box.sample()
    assert box.contains(x)
    assert not box.contains(np.zeros((*box.shape, 2), dtype=box.dtype))
    assert not box.contains(x.astype(str))
    assert not box.contains("x")
    assert not box.contains(None)
    if box.dtype.kind in "iu":
        assert not box.contains(x.astype(np.float64))
    if np.isfinite(box.high.astype(np.float64)).all() and box.dtype.kind == "f" and box.shape:
        assert not box.contains(
            (box.high.astype(np.float64) + np.abs(box.high.astype(np.float64)) + 1).astype(box.dtype)
        )
    if box.shape:
        nan = np.full(box.shape, np.nan)
        assert not box.contains(nan)


def test_box_constructor_checks() -> None:
    with pytest.raises(ValueError, match="low <= high"):
        Box(1.0, 0.0, (2,))
    with pytest.raises(ValueError, match="finite bounds"):
        Box(-np.inf, 0, (1,), np.int64)
    with pytest.raises(ValueError, match="dtype"):
        Box(0, 1, (1,), np.complex64)
    assert Box(np.zeros(3), np.ones(3)).shape == (3,)


def test_multi_and_composite_membership() -> None:
    md = MultiDiscrete([3, 2])
    assert md.contains(np.array([2, 1]))
    assert not md.contains(np.array([3, 0]))
    assert not md.contains(np.array([1.0, 0.0]))
    assert not md.contains(np.array([1]))
    mb = MultiBinary(3)
    assert mb.contains(np.array([0, 1, 1]))
    assert not mb.contains(np.array([0, 2, 1]))
    t = Tuple([Discrete(2), mb])
    assert t.contains((1, np.array([1, 0, 0])))
    assert not t.contains((1,))
    d = Dict({"a": Discrete(2)})
    assert d.contains({"a": 1})
    assert not d.contains({"a": 1, "b": 0})
    assert not d.contains([1])


GARBAGE = [
    None,
    1,
    "Discrete",
    [],
    {},
    {"type": "Nope"},
    {"type": "Discrete"},
    {"type": "Discrete", "n": "3", "start": 0},
    {"type": "Discrete", "n": 0, "start": 0},
    {"type": "Discrete", "n": True, "start": 0},
    {"type": "Box", "low": [0.0], "high": [1.0], "dtype": "object"},
    {"type": "Box", "low": [0.0], "high": [1.0, 2.0], "dtype": "float32"},
    {"type": "Box", "low": [[0.0], [1.0, 2.0]], "high": [1.0], "dtype": "float32"},
    {"type": "Box", "low": ["a"], "high": ["b"], "dtype": "float32"},
    {"type": "Box", "low": [2.0], "high": [1.0], "dtype": "float32"},
    {"type": "Box", "low": b"\x00", "high": b"\x01", "dtype": "uint8"},
    {"type": "MultiDiscrete", "nvec": [0, 1]},
    {"type": "MultiDiscrete", "nvec": [1.5]},
    {"type": "MultiBinary", "n": [10**9, 10**9]},
    {"type": "MultiBinary", "n": 3},
    {"type": "Tuple", "spaces": [{"type": "Discrete"}]},
    {"type": "Tuple", "spaces": "abc"},
    {"type": "Dict", "keys": ["a", "a"], "spaces": [Discrete(2).to_data()] * 2},
    {"type": "Dict", "keys": [1], "spaces": [Discrete(2).to_data()]},
    {"type": "Dict", "keys": ["a"], "spaces": []},
]


@pytest.mark.parametrize("data", GARBAGE, ids=range(len(GARBAGE)))
def test_space_from_data_refuses_garbage(data: object) -> None:
    with pytest.raises(ValueError, match="space"):
        space_from_data(data)


def test_space_from_data_refuses_deep_nesting() -> None:
    data: dict = Discrete(2).to_data()
    for _ in range(40):
        data = {"type": "Tuple", "spaces": [data]}
    with pytest.raises(ValueError, match="nested deeper"):
        space_from_data(data)


json_like = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8)),
    lambda c: st.one_of(st.lists(c, max_size=4), st.dictionaries(st.text(max_size=6), c, max_size=4)),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        json_like,
        st.fixed_dictionaries(
            {"type": st.sampled_from(["Discrete", "Box", "MultiDiscrete", "MultiBinary", "Tuple", "Dict"])},
            optional={k: json_like for k in ("n", "start", "low", "high", "dtype", "nvec", "spaces", "keys")},
        ),
    )
)
def test_space_from_data_raises_only_value_error(data: object) -> None:
    try:
        space = space_from_data(data)
    except ValueError:
        return
    assert space_from_data(space.to_data()) == space
