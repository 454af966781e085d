"""Schedules: a number (ε, α, …) as a function of a step or episode count ``t >= 0``.

Each is a frozen dataclass called with the count::

    eps = Exponential(start=1.0, end=0.01, decay=0.999)
    eps(0)      # 1.0
    eps(5000)   # max(0.01, 1.0 * 0.999**5000)

Agents' configs take any callable ``int -> float``; these cover the usual cases.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["GLIE", "Constant", "Exponential", "Linear", "Schedule"]


class Schedule(Protocol):
    """Anything callable with a count that returns a float."""

    def __call__(self, t: int) -> float: ...


def _check_count(t: int) -> None:
    if t < 0:
        raise ValueError(f"a schedule's count must be >= 0, got {t}")


@dataclass(frozen=True, slots=True)
class Constant:
    """The same value at every count."""

    #: the value returned for every t
    value: float

    def __call__(self, t: int) -> float:
        return self.value


@dataclass(frozen=True, slots=True)
class Linear:
    """From ``start`` to ``end`` in a straight line over ``steps`` counts, then ``end``."""

    #: value at t = 0
    start: float
    #: value from t = steps on
    end: float
    #: number of counts the interpolation takes (> 0)
    steps: int

    def __post_init__(self) -> None:
        if self.steps <= 0:
            raise ValueError(f"Linear needs steps > 0, got {self.steps}")

    def __call__(self, t: int) -> float:
        _check_count(t)
        if t >= self.steps:
            return self.end
        return self.start + (self.end - self.start) * (t / self.steps)


@dataclass(frozen=True, slots=True)
class Exponential:
    """``max(end, start * decay**t)`` (``min`` when the schedule rises)."""

    #: value at t = 0
    start: float
    #: floor (or ceiling when start < end) the value never crosses
    end: float
    #: multiplicative factor per count, in (0, 1]
    decay: float

    def __post_init__(self) -> None:
        if not 0.0 < self.decay <= 1.0:
            raise ValueError(f"Exponential needs decay in (0, 1], got {self.decay}")

    def __call__(self, t: int) -> float:
        _check_count(t)
        v = self.start * self.decay**t
        return max(self.end, v) if self.start >= self.end else min(self.end, v)


@dataclass(frozen=True, slots=True)
class GLIE:
    """``max(end, scale / (t + offset))``: the 1/k of "greedy in the limit, infinite exploration".

    With the defaults, count t (0-based) gives ε = 1/(t+1), i.e. 1/k for episode k = 1, 2, …
    """

    #: numerator of scale / (t + offset)
    scale: float = 1.0
    #: added to the count (> 0); larger values keep exploring longer
    offset: float = 1.0
    #: floor on the value (0 keeps the schedule GLIE)
    end: float = 0.0

    def __post_init__(self) -> None:
        if self.offset <= 0:
            raise ValueError(f"GLIE needs offset > 0, got {self.offset}")

    def __call__(self, t: int) -> float:
        _check_count(t)
        return max(self.end, min(1.0, self.scale / (t + self.offset)))
