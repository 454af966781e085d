"""Spaces: the sets actions and observations live in.

``Discrete``, ``Box``, ``MultiDiscrete``, ``MultiBinary``, ``Tuple`` and ``Dict`` mirror
gymnasium's spaces of the same names::

    space = Discrete(4)
    space.seed(0)
    a = space.sample()          # a Python int in [0, 4)
    assert space.contains(a)    # also: ``a in space``

Sampling is reproducible: ``seed(s)`` builds the same generator gymnasium builds
(``np.random.Generator(np.random.PCG64(np.random.SeedSequence(s)))``), and ``Discrete``
draws its samples the way gymnasium's does, so a seeded ``Discrete`` yields the same
values as a gymnasium ``Discrete`` seeded alike (as Python ints, not ``np.int64``).

On the wire a space is plain data: ``space.to_data()`` gives a dict of str/int/list/numpy
arrays, ``space_from_data(d)`` rebuilds it and raises ``ValueError`` on anything
malformed (it is fed untrusted bytes). The generator state does not travel.
``to_gym()``/``from_gym()`` convert to and from gymnasium spaces (gymnasium is optional).

``StateIndex``/``state_index`` flatten a Tuple of Discrete spaces (Blackjack's
``(32, 11, 2)``) into one index, so tabular agents can use a dense table.

Longer than beamrl's ~400-line aim on purpose: it mirrors gymnasium's ``spaces``
package, six small classes that share the ``Space`` base, its seeding and its
``to_data``/``space_from_data`` wire form; split, a reader would chase one concept
through several files.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from beamrl import codec
from beamrl.rl.errors import QTableError

__all__ = [
    "Box",
    "Dict",
    "Discrete",
    "MultiBinary",
    "MultiDiscrete",
    "Space",
    "StateIndex",
    "Tuple",
    "from_gym",
    "np_random",
    "space_from_data",
    "state_index",
]

#: dtypes a ``Box`` may hold (and the only dtype names ``space_from_data`` accepts)
BOX_DTYPES = frozenset(
    {"float16", "float32", "float64", "int8", "int16", "int32", "int64"} | {"uint8", "uint16", "uint32", "uint64"}
)
#: the deepest nesting of Tuple/Dict ``space_from_data`` accepts
MAX_DEPTH = 32
#: the most elements a Box/MultiDiscrete/MultiBinary rebuilt from data may hold
MAX_ELEMENTS = 1 << 24

GYM_HINT = "gymnasium is not installed: pip install beamrl[gym]"


def np_random(seed: int | None = None) -> np.random.Generator:
    """The generator gymnasium's ``seeding.np_random(seed)`` builds (fresh entropy for None)."""
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
            raise TypeError(f"seed must be a non-negative int or None, not {type(seed).__name__}")
        if seed < 0:
            raise ValueError(f"seed must be a non-negative int or None, got {seed}")
        seed = int(seed)
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed)))


def gymnasium_module() -> Any:
    """Import gymnasium, or fail with the command that installs it."""
    try:
        import gymnasium
    except ImportError as e:  # pragma: no cover - gymnasium is installed in dev
        raise ImportError(GYM_HINT) from e
    return gymnasium


def _is_int(x: object) -> bool:
    return isinstance(x, int | np.integer) and not isinstance(x, bool | np.bool_)


class Space(ABC):
    """A set with ``sample``, ``contains`` and ``seed``; it converts to gymnasium and to data."""

    def __init__(self) -> None:
        self._rng: np.random.Generator | None = None

    @property
    def np_random(self) -> np.random.Generator:
        """The generator ``sample`` draws from (seeded from fresh entropy on first use)."""
        if self._rng is None:
            self._rng = np_random(None)
        return self._rng

    def seed(self, seed: int | None = None) -> int | None:
        """Reseed ``sample``; returns the seed."""
        self._rng = np_random(seed)
        return seed

    @abstractmethod
    def sample(self) -> Any:
        """A random element of the space."""

    @abstractmethod
    def contains(self, x: Any) -> bool:
        """True when ``x`` is an element of the space (right type, shape and bounds)."""

    def __contains__(self, x: Any) -> bool:
        return self.contains(x)

    @abstractmethod
    def to_data(self) -> dict[str, Any]:
        """Plain data for the wire; ``space_from_data`` rebuilds the space from it."""

    @abstractmethod
    def to_gym(self) -> Any:
        """The equivalent gymnasium space (needs gymnasium)."""

    __hash__ = None  # type: ignore[assignment]  # spaces compare by value, like gymnasium's


class Discrete(Space):
    """The integers ``start, start + 1, ..., start + n - 1``.

    ``sample()`` returns a Python ``int``; ``contains`` accepts Python and numpy integers
    and refuses floats, bools and values out of range.
    """

    def __init__(self, n: int, start: int = 0) -> None:
        super().__init__()
        if not _is_int(n) or n <= 0:
            raise ValueError(f"Discrete needs a positive int n, got {n!r}")
        if not _is_int(start):
            raise ValueError(f"Discrete needs an int start, got {start!r}")
        self.n = int(n)
        self.start = int(start)

    def sample(self) -> int:
        return self.start + int(self.np_random.integers(self.n))

    def contains(self, x: Any) -> bool:
        return _is_int(x) and self.start <= x < self.start + self.n

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Discrete) and (self.n, self.start) == (other.n, other.start)

    def __repr__(self) -> str:
        return f"Discrete({self.n})" if self.start == 0 else f"Discrete({self.n}, start={self.start})"

    def to_data(self) -> dict[str, Any]:
        return {"type": "Discrete", "n": self.n, "start": self.start}

    def to_gym(self) -> Any:
        return gymnasium_module().spaces.Discrete(self.n, start=self.start)


class Box(Space):
    """An n-dimensional box ``low <= x <= high`` of one numeric dtype.

    ``low``/``high`` are scalars or arrays (infinite bounds allowed for float dtypes);
    ``shape`` defaults to their shape. ``contains`` wants a numpy array (or a number for
    a shape ``()`` box) whose values fit the dtype and the bounds.
    """

    def __init__(
        self,
        low: Any,
        high: Any,
        shape: Sequence[int] | None = None,
        dtype: Any = np.float32,
    ) -> None:
        super().__init__()
        self.dtype = np.dtype(dtype)
        if self.dtype.name not in BOX_DTYPES:
            raise ValueError(f"Box dtype must be one of {sorted(BOX_DTYPES)}, got {self.dtype}")
        low_a, high_a = np.asarray(low), np.asarray(high)
        if shape is None:
            shape = np.broadcast_shapes(low_a.shape, high_a.shape)
        self.shape: tuple[int, ...] = tuple(int(d) for d in shape)
        if any(d < 0 for d in self.shape):
            raise ValueError(f"Box shape must not be negative, got {self.shape}")
        try:
            low_b = np.broadcast_to(low_a, self.shape)
            high_b = np.broadcast_to(high_a, self.shape)
        except ValueError:
            raise ValueError(f"Box low {low_a.shape} and high {high_a.shape} do not fit shape {self.shape}")
        if np.isnan(low_b.astype(np.float64)).any() or np.isnan(high_b.astype(np.float64)).any():
            raise ValueError("Box bounds must not be NaN")
        if self.dtype.kind in "iu" and (
            not np.isfinite(low_b.astype(np.float64)).all() or not np.isfinite(high_b.astype(np.float64)).all()
        ):
            raise ValueError(f"an integer Box ({self.dtype}) needs finite bounds")
        self.low = low_b.astype(self.dtype)
        self.high = high_b.astype(self.dtype)
        if (self.low > self.high).any():
            raise ValueError("Box needs low <= high everywhere")

    def sample(self) -> np.ndarray:
        rng = self.np_random
        if self.dtype.kind in "iu":
            return rng.integers(self.low, self.high, dtype=self.dtype, endpoint=True)
        low, high = self.low.astype(np.float64), self.high.astype(np.float64)
        lo_ok, hi_ok = np.isfinite(low), np.isfinite(high)
        with np.errstate(over="ignore", invalid="ignore"):
            out = rng.normal(size=self.shape)
            expo = rng.exponential(size=self.shape)
            out = np.where(lo_ok & ~hi_ok, low + expo, out)
            out = np.where(~lo_ok & hi_ok, high - expo, out)
            both = lo_ok & hi_ok
            if both.any():
                # halve first so that huge spans (-max, max) do not overflow
                u = rng.random(size=self.shape)
                mid = low / 2 + high / 2
                out = np.where(both, mid + (2 * u - 1) * (high / 2 - low / 2), out)
            out = np.clip(out, low, high).astype(self.dtype)
        # rounding to a narrower dtype must not step outside the bounds
        return np.clip(out, self.low, self.high)

    def contains(self, x: Any) -> bool:
        if isinstance(x, bool | np.bool_):
            return False
        if not isinstance(x, np.ndarray):
            if self.shape != () or not isinstance(x, int | float | np.number):
                return False
            x = np.asarray(x)
        if x.dtype.kind not in "iuf" or x.shape != self.shape:
            return False
        if self.dtype.kind in "iu" and x.dtype.kind == "f":
            return False
        if not np.can_cast(x.dtype, self.dtype) and not _fits(x, self.dtype):
            return False
        with np.errstate(invalid="ignore"):
            return bool(np.all(x >= self.low) and np.all(x <= self.high))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Box)
            and self.shape == other.shape
            and self.dtype == other.dtype
            and np.array_equal(self.low, other.low)
            and np.array_equal(self.high, other.high)
        )

    def __repr__(self) -> str:
        def bound(a: np.ndarray) -> str:
            return str(a.flat[0]) if a.size and (a == a.flat[0]).all() else str(a.tolist())

        return f"Box({bound(self.low)}, {bound(self.high)}, {self.shape}, {self.dtype.name})"

    def to_data(self) -> dict[str, Any]:
        return {
            "type": "Box",
            "low": self.low.copy(),
            "high": self.high.copy(),
            "dtype": self.dtype.name,
        }

    def to_gym(self) -> Any:
        return gymnasium_module().spaces.Box(self.low, self.high, self.shape, self.dtype)


def _fits(x: np.ndarray, dtype: np.dtype) -> bool:
    """True when every value of ``x`` is representable in ``dtype`` (e.g. float64 -> float32)."""
    if dtype.kind == "f":
        finite = np.isfinite(x)
        with np.errstate(over="ignore"):
            return bool(np.all(np.isfinite(x.astype(dtype)) | ~finite))
    info = np.iinfo(dtype)
    return x.dtype.kind in "iu" and bool(np.all((x >= info.min) & (x <= info.max)))


class MultiDiscrete(Space):
    """Arrays ``x`` with ``0 <= x[i] < nvec[i]`` (int64); ``nvec`` may be any shape."""

    def __init__(self, nvec: Any) -> None:
        super().__init__()
        nvec_a = np.asarray(nvec)
        if nvec_a.dtype.kind not in "iu" or nvec_a.size == 0 or (nvec_a <= 0).any():
            raise ValueError(f"MultiDiscrete needs non-empty positive ints, got {nvec!r}")
        self.nvec = nvec_a.astype(np.int64)
        self.shape = self.nvec.shape

    def sample(self) -> np.ndarray:
        return self.np_random.integers(self.nvec, dtype=np.int64)

    def contains(self, x: Any) -> bool:
        if isinstance(x, list | tuple):
            try:
                x = np.asarray(x)
            except ValueError:
                return False
        if not isinstance(x, np.ndarray) or x.dtype.kind not in "iu" or x.shape != self.shape:
            return False
        return bool(np.all(x >= 0) and np.all(x < self.nvec))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MultiDiscrete) and np.array_equal(self.nvec, other.nvec)

    def __repr__(self) -> str:
        return f"MultiDiscrete({self.nvec.tolist()})"

    def to_data(self) -> dict[str, Any]:
        return {"type": "MultiDiscrete", "nvec": self.nvec.copy()}

    def to_gym(self) -> Any:
        return gymnasium_module().spaces.MultiDiscrete(self.nvec)


class MultiBinary(Space):
    """Arrays of 0s and 1s (int8) of shape ``n`` (an int or a shape)."""

    def __init__(self, n: int | Sequence[int]) -> None:
        super().__init__()
        dims: tuple[Any, ...] = (n,) if isinstance(n, int | np.integer) else tuple(n)
        if not dims or not all(_is_int(d) and d > 0 for d in dims):
            raise ValueError(f"MultiBinary needs a positive int or shape, got {n!r}")
        self.shape: tuple[int, ...] = tuple(int(d) for d in dims)
        self.n: int | tuple[int, ...] = self.shape[0] if _is_int(n) else self.shape

    def sample(self) -> np.ndarray:
        return self.np_random.integers(0, 2, size=self.shape, dtype=np.int8)

    def contains(self, x: Any) -> bool:
        if isinstance(x, list | tuple):
            try:
                x = np.asarray(x)
            except ValueError:
                return False
        if not isinstance(x, np.ndarray) or x.dtype.kind not in "iub" or x.shape != self.shape:
            return False
        return bool(np.all((x == 0) | (x == 1)))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MultiBinary) and self.shape == other.shape

    def __repr__(self) -> str:
        return f"MultiBinary({self.n})"

    def to_data(self) -> dict[str, Any]:
        return {"type": "MultiBinary", "n": list(self.shape)}

    def to_gym(self) -> Any:
        return gymnasium_module().spaces.MultiBinary(self.n)


def _subseeds(seed: int | None, count: int) -> list[int | None]:
    if seed is None:
        return [None] * count
    return [int(s) for s in np_random(seed).integers(2**31, size=count)]


class Tuple(Space):
    """A fixed-length tuple of elements of ``spaces``; ``sample()`` returns a tuple."""

    def __init__(self, spaces: Iterable[Space]) -> None:
        super().__init__()
        self.spaces: tuple[Space, ...] = tuple(spaces)
        for s in self.spaces:
            if not isinstance(s, Space):
                raise ValueError(f"Tuple holds beamrl spaces, got {type(s).__name__}")

    def seed(self, seed: int | None = None) -> int | None:
        super().seed(seed)
        for space, sub in zip(self.spaces, _subseeds(seed, len(self.spaces)), strict=True):
            space.seed(sub)
        return seed

    def sample(self) -> tuple[Any, ...]:
        return tuple(s.sample() for s in self.spaces)

    def contains(self, x: Any) -> bool:
        if not isinstance(x, tuple | list) or len(x) != len(self.spaces):
            return False
        return all(s.contains(v) for s, v in zip(self.spaces, x, strict=True))

    def __getitem__(self, i: int) -> Space:
        return self.spaces[i]

    def __len__(self) -> int:
        return len(self.spaces)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Tuple) and self.spaces == other.spaces

    def __repr__(self) -> str:
        return f"Tuple({', '.join(map(repr, self.spaces))})"

    def to_data(self) -> dict[str, Any]:
        return {"type": "Tuple", "spaces": [s.to_data() for s in self.spaces]}

    def to_gym(self) -> Any:
        return gymnasium_module().spaces.Tuple([s.to_gym() for s in self.spaces])


class Dict(Space):
    """A dict with fixed ``str`` keys, each value in its own space; ``sample()`` returns a dict."""

    def __init__(self, spaces: Mapping[str, Space] | None = None, **kwargs: Space) -> None:
        super().__init__()
        self.spaces: dict[str, Space] = {**(spaces or {}), **kwargs}
        for k, s in self.spaces.items():
            if not isinstance(k, str) or not isinstance(s, Space):
                raise ValueError(f"Dict maps str keys to beamrl spaces, got {k!r}: {s!r}")

    def seed(self, seed: int | None = None) -> int | None:
        super().seed(seed)
        for space, sub in zip(self.spaces.values(), _subseeds(seed, len(self.spaces)), strict=True):
            space.seed(sub)
        return seed

    def sample(self) -> dict[str, Any]:
        return {k: s.sample() for k, s in self.spaces.items()}

    def contains(self, x: Any) -> bool:
        if not isinstance(x, Mapping) or set(x) != set(self.spaces):
            return False
        return all(s.contains(x[k]) for k, s in self.spaces.items())

    def __getitem__(self, key: str) -> Space:
        return self.spaces[key]

    def __len__(self) -> int:
        return len(self.spaces)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Dict) and self.spaces == other.spaces

    def __repr__(self) -> str:
        return "Dict(" + ", ".join(f"{k!r}: {s!r}" for k, s in self.spaces.items()) + ")"

    def to_data(self) -> dict[str, Any]:
        return {
            "type": "Dict",
            "keys": list(self.spaces),
            "spaces": [s.to_data() for s in self.spaces.values()],
        }

    def to_gym(self) -> Any:
        return gymnasium_module().spaces.Dict({k: s.to_gym() for k, s in self.spaces.items()})


# -- gymnasium ---------------------------------------------------------------------------


# ------------------------------------------------------------------ flat state indices
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
