"""The ``Space`` base every space shares: seeding as gymnasium seeds, and the limits on rebuilt spaces."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

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
