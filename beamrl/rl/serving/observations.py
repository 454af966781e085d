"""Observations a policy server accepts: checked against the space, turned into the policy's input.

    check = observation_check(Box(-1.0, 1.0, (4,)))
    x = check.one([0.1, 0.0, -0.2, 0.3])          # float32, shape (1, 4): a batch of one
    xs = check.batch(np.zeros((32, 4)))           # float32, shape (32, 4)
    check.one([0.1, float("nan"), 0.0, 0.0])      # InvalidObservation: observation[1] is nan ...

A tabular policy's input is the table's row: ``Discrete(n, start)`` takes integer states
(row ``s - start``); a ``Tuple`` of ``Discrete`` (Blackjack) takes one integer per part
(rows flattened row-major, as ``beamrl.rl.spaces.StateIndex`` does). A ``Box`` takes
numbers of its shape, finite and within its bounds, as float32 (what the network eats).
Whatever is refused raises ``InvalidObservation`` with a message naming the part that is
wrong; nothing is clipped, rounded or guessed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from beamrl.reprs import short_repr
from beamrl.rl.errors import InvalidObservation
from beamrl.rl.spaces import Box, Discrete, Tuple

__all__ = ["InvalidObservation", "ObservationCheck", "observation_check"]

MAX_BATCH = 65_536
"""The most observations one ``act_batch`` takes (a larger batch is refused, not cut)."""


class ObservationCheck(ABC):
    """Checks observations of one space and turns them into the policy's input."""

    def __init__(self, space: Any, max_batch: int = MAX_BATCH) -> None:
        self.space = space
        self.max_batch = max_batch

    @abstractmethod
    def one(self, obs: Any) -> np.ndarray:
        """One observation as a batch of one; ``InvalidObservation`` if it is not in the space."""

    @abstractmethod
    def batch(self, obs: Any) -> np.ndarray:
        """A batch of observations (first axis: the batch); ``InvalidObservation`` if any is refused."""

    def _rows(self, n: int) -> None:
        if n < 1:
            raise InvalidObservation("act_batch needs at least one observation, got an empty batch")
        if n > self.max_batch:
            raise InvalidObservation(f"a batch of {n} observations is more than the {self.max_batch} one call takes")


def observation_check(space: Any, max_batch: int = MAX_BATCH) -> ObservationCheck:
    """The check for ``space``: a ``Box``, a ``Discrete`` or a ``Tuple`` of ``Discrete``."""
    if isinstance(space, Box):
        return BoxCheck(space, max_batch)
    if isinstance(space, Discrete):
        return DiscreteCheck(space, max_batch)
    if isinstance(space, Tuple) and all(isinstance(s, Discrete) for s in space.spaces):
        return DiscreteTupleCheck(space, max_batch)
    raise ValueError(f"a policy server takes Box, Discrete or Tuple-of-Discrete observations, not {space!r}")


def _numbers(obs: Any, what: str, kinds: str) -> np.ndarray:
    """``obs`` as a numpy array of one of the dtype ``kinds``, or ``InvalidObservation``."""
    if isinstance(obs, bool | np.bool_):
        raise InvalidObservation(f"{what} is a boolean ({obs!r}); expected {_KINDS[kinds]}")
    try:
        x = np.asarray(obs)
    except (ValueError, TypeError, OverflowError) as exc:
        raise InvalidObservation(f"{what} is not an array of numbers ({short_repr(obs, 80)}): {exc}") from None
    if x.size == 0:  # ``[]`` comes out as float64: its shape says what is wrong, not its dtype
        return x.astype(np.int64 if kinds == "iu" else np.float32)
    if x.dtype.kind not in kinds:
        got = "is not made of numbers" if x.dtype.kind == "O" else f"has dtype {x.dtype}"
        raise InvalidObservation(f"{what} {got} ({short_repr(obs, 80)}); expected {_KINDS[kinds]}")
    return x


_KINDS = {"iuf": "numbers (int or float)", "iu": "integers"}


def _where(index: tuple[int, ...], batch: bool) -> str:
    """``observation[2]``, or ``observation[2] of row 5`` in a batch."""
    part = index[1:] if batch else index
    text = "observation" + (f"[{', '.join(map(str, part))}]" if part else "")
    return f"{text} of row {index[0]}" if batch else text


class BoxCheck(ObservationCheck):
    """Numbers of the box's shape, finite (after conversion to float32) and within its bounds."""

    space: Box

    def one(self, obs: Any) -> np.ndarray:
        x = self._checked(obs, batch=False)
        return x.reshape(1, -1)

    def batch(self, obs: Any) -> np.ndarray:
        x = self._checked(obs, batch=True)
        return x.reshape(len(x), -1)

    def _checked(self, obs: Any, batch: bool) -> np.ndarray:
        shape = self.space.shape
        x = _numbers(obs, "the batch" if batch else "the observation", "iuf")
        if batch:
            if x.ndim != len(shape) + 1 or x.shape[1:] != shape:
                raise InvalidObservation(
                    f"act_batch takes an array of shape (n, {', '.join(map(str, shape))}), got shape {x.shape}"
                )
            self._rows(len(x))
        elif x.shape != shape:
            raise InvalidObservation(f"the observation has shape {x.shape}; expected shape {shape}")
        with np.errstate(over="ignore"):
            x = x.astype(np.float32)
        bad = ~np.isfinite(x)
        if bad.any():
            index = tuple(int(i) for i in np.argwhere(bad)[0])
            raise InvalidObservation(
                f"{_where(index, batch)} is {x[index]} (as float32): observations must be finite numbers"
            )
        low, high = self.space.low.astype(np.float32), self.space.high.astype(np.float32)
        out = (x < low) | (x > high)
        if out.any():
            index = tuple(int(i) for i in np.argwhere(out)[0])
            part = index[1:] if batch else index
            raise InvalidObservation(
                f"{_where(index, batch)} = {x[index]:g} is outside the observation space's bounds "
                f"[{low[part]:g}, {high[part]:g}]"
            )
        return x


class DiscreteCheck(ObservationCheck):
    """An integer state ``start <= s < start + n``; its input is the table row ``s - start``."""

    space: Discrete

    def one(self, obs: Any) -> np.ndarray:
        x = _numbers(obs, "the observation", "iu")
        if x.shape != ():
            raise InvalidObservation(f"the observation is one integer state of {self.space!r}, got shape {x.shape}")
        return self._row(x.reshape(1), batch=False)

    def batch(self, obs: Any) -> np.ndarray:
        x = _numbers(obs, "the batch", "iu")
        if x.ndim != 1:
            raise InvalidObservation(f"act_batch takes a 1-d array of integer states, got shape {x.shape}")
        self._rows(len(x))
        return self._row(x, batch=True)

    def _row(self, x: np.ndarray, batch: bool) -> np.ndarray:
        start, n = int(self.space.start), int(self.space.n)
        out = (x < start) | (x >= start + n)
        if out.any():
            i = int(np.argmax(out))
            where = f"the observation of row {i}" if batch else "the observation"
            raise InvalidObservation(f"{where} = {x[i]} is not a state of {self.space!r} ({start}..{start + n - 1})")
        return x.astype(np.int64) - start


class DiscreteTupleCheck(ObservationCheck):
    """One integer per part of a ``Tuple`` of ``Discrete``; the row is their row-major flat index."""

    space: Tuple

    def __init__(self, space: Tuple, max_batch: int = MAX_BATCH) -> None:
        super().__init__(space, max_batch)
        parts = [s for s in space.spaces if isinstance(s, Discrete)]
        self.dims = np.array([int(s.n) for s in parts], dtype=np.int64)
        self.starts = np.array([int(s.start) for s in parts], dtype=np.int64)

    def one(self, obs: Any) -> np.ndarray:
        x = _numbers(obs, "the observation", "iu")
        if x.shape != self.dims.shape:
            raise InvalidObservation(
                f"the observation has {len(self.dims)} integer parts ({self.space!r}), got shape {x.shape}"
            )
        return self._rows_of(x.reshape(1, -1), batch=False)

    def batch(self, obs: Any) -> np.ndarray:
        x = _numbers(obs, "the batch", "iu")
        if x.ndim != 2 or x.shape[1] != len(self.dims):
            raise InvalidObservation(f"act_batch takes an array of shape (n, {len(self.dims)}), got shape {x.shape}")
        self._rows(len(x))
        return self._rows_of(x, batch=True)

    def _rows_of(self, x: np.ndarray, batch: bool) -> np.ndarray:
        parts = x.astype(np.int64) - self.starts
        out = (parts < 0) | (parts >= self.dims)
        if out.any():
            row, col = (int(i) for i in np.argwhere(out)[0])
            where = f"observation[{col}] of row {row}" if batch else f"observation[{col}]"
            space = self.space.spaces[col]
            raise InvalidObservation(f"{where} = {x[row, col]} is not in {space!r} (part {col} of {self.space!r})")
        return np.ravel_multi_index(tuple(parts.T), tuple(int(d) for d in self.dims)).astype(np.int64)
