"""``StateIndex``: a Tuple of Discrete spaces as one flat index, for dense Q-tables."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from beamrl.rl.errors import QTableError


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
