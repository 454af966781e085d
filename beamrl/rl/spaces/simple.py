"""The flat spaces: ``Discrete``, ``Box``, ``MultiDiscrete`` and ``MultiBinary``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from beamrl.rl.spaces.base import BOX_DTYPES, Space, _is_int, gymnasium_module


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
