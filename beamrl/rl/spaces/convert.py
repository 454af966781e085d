"""Spaces to and from gymnasium, and to and from wire data (registered with the codec here)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from beamrl import codec
from beamrl.rl.spaces.base import BOX_DTYPES, MAX_DEPTH, MAX_ELEMENTS, Space, _is_int, gymnasium_module
from beamrl.rl.spaces.composite import Dict, Tuple
from beamrl.rl.spaces.simple import Box, Discrete, MultiBinary, MultiDiscrete


def from_gym(space: Any) -> Space:
    """The beamrl space equivalent to a gymnasium space (Discrete/Box/Multi*/Tuple/Dict)."""
    gs = gymnasium_module().spaces
    if isinstance(space, gs.Discrete):
        return Discrete(int(space.n), start=int(space.start))
    if isinstance(space, gs.Box):
        return Box(space.low, space.high, space.shape, space.dtype)
    if isinstance(space, gs.MultiDiscrete):
        if np.any(space.start != 0):
            raise ValueError(f"MultiDiscrete with a non-zero start is not supported: {space}")
        return MultiDiscrete(space.nvec)
    if isinstance(space, gs.MultiBinary):
        return MultiBinary(space.n)
    if isinstance(space, gs.Tuple):
        return Tuple(from_gym(s) for s in space.spaces)
    if isinstance(space, gs.Dict):
        return Dict({k: from_gym(s) for k, s in space.spaces.items()})
    raise ValueError(f"no beamrl space for gymnasium space {space!r}")


# -- wire --------------------------------------------------------------------------------


def space_from_data(data: Any) -> Space:
    """Rebuild a space from ``Space.to_data()``; ``ValueError`` names what is malformed."""
    return _from_data(data, 0)


def _field(data: Mapping[str, Any], key: str, kind: str) -> Any:
    if key not in data:
        raise ValueError(f"{kind} space data lacks {key!r}")
    return data[key]


def _int_field(data: Mapping[str, Any], key: str, kind: str) -> int:
    value = _field(data, key, kind)
    if not _is_int(value):
        raise ValueError(f"{kind} space data: {key!r} must be an int, got {type(value).__name__}")
    return int(value)


def _array_field(data: Mapping[str, Any], key: str, kind: str, kinds: str) -> np.ndarray:
    value = _field(data, key, kind)
    if not isinstance(value, np.ndarray | list | int | float):
        raise ValueError(f"{kind} space data: {key!r} must be an array, got {type(value).__name__}")
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{kind} space data: {key!r} is not a regular array ({e})")
    if arr.dtype.kind not in kinds:
        raise ValueError(f"{kind} space data: {key!r} has dtype {arr.dtype}, wanted kind {kinds}")
    if arr.size > MAX_ELEMENTS:
        raise ValueError(f"{kind} space data: {key!r} has {arr.size} elements (> {MAX_ELEMENTS})")
    return arr


def _from_data(data: Any, depth: int) -> Space:
    if depth > MAX_DEPTH:
        raise ValueError(f"space data nested deeper than {MAX_DEPTH}")
    if not isinstance(data, Mapping):
        raise ValueError(f"space data must be a dict, got {type(data).__name__}")
    kind = data.get("type")
    try:
        if kind == "Discrete":
            return Discrete(_int_field(data, "n", kind), _int_field(data, "start", kind))
        if kind == "Box":
            dtype = _field(data, "dtype", kind)
            if not isinstance(dtype, str) or dtype not in BOX_DTYPES:
                raise ValueError(f"Box space data: dtype must be one of {sorted(BOX_DTYPES)}")
            low = _array_field(data, "low", kind, "iuf")
            high = _array_field(data, "high", kind, "iuf")
            if low.shape != high.shape:
                raise ValueError(f"Box space data: low {low.shape} and high {high.shape} differ")
            return Box(low, high, low.shape, dtype)
        if kind == "MultiDiscrete":
            return MultiDiscrete(_array_field(data, "nvec", kind, "iu"))
        if kind == "MultiBinary":
            n = _field(data, "n", kind)
            if not isinstance(n, list) or not n or not all(_is_int(d) for d in n):
                raise ValueError("MultiBinary space data: 'n' must be a list of ints")
            if math.prod(n) > MAX_ELEMENTS:
                raise ValueError(f"MultiBinary space data: more than {MAX_ELEMENTS} elements")
            return MultiBinary(n)
        if kind == "Tuple":
            subs = _field(data, "spaces", kind)
            if not isinstance(subs, list | tuple):
                raise ValueError("Tuple space data: 'spaces' must be a list")
            return Tuple(_from_data(s, depth + 1) for s in subs)
        if kind == "Dict":
            keys, subs = _field(data, "keys", kind), _field(data, "spaces", kind)
            if not isinstance(keys, list | tuple) or not isinstance(subs, list | tuple):
                raise ValueError("Dict space data: 'keys' and 'spaces' must be lists")
            if len(keys) != len(subs) or not all(isinstance(k, str) for k in keys):
                raise ValueError("Dict space data: 'keys' must be strs, one per space")
            if len(set(keys)) != len(keys):
                raise ValueError("Dict space data: duplicate keys")
            return Dict({k: _from_data(s, depth + 1) for k, s in zip(keys, subs, strict=True)})
    except (TypeError, OverflowError, ValueError) as e:
        if isinstance(e, ValueError) and "space data" in str(e):
            raise
        raise ValueError(f"{kind} space data is malformed: {e}")
    raise ValueError(f"unknown space type {kind!r}")


def _space_to_data(space: Space) -> dict[str, Any]:
    return space.to_data()


# spaces travel as extension codes 16..21 (beamrl's layers own 16..63)
for _code, _cls in enumerate((Discrete, Box, MultiDiscrete, MultiBinary, Tuple, Dict), start=16):
    codec.register(_code, _cls, _space_to_data, space_from_data)
