"""``RateLimiter``: how many samples a replay may serve for the inserts it got, as Reverb's.

    limiter = RateLimiter(min_size=1_000, samples_per_insert=8.0, error_buffer=2_048)
    limiter.inserted(50)                        # an actor's batch arrived
    if limiter.can_sample(512, len(memory)):    # a learner asks for a batch
        limiter.sampled(512)

Counts are in transitions. Sampling waits until the memory holds ``min_size`` and then
keeps the number of transitions sampled within ``error_buffer`` of
``samples_per_insert × (inserts - min_size)`` (Reverb's ``SampleToInsertRatio``):
a learner faster than its actors waits for data instead of over-fitting a few
transitions. Inserts are casts from many actors, so the limiter cannot block them as
Reverb's does; it reports ``insert_headroom`` (how many more fit before the sampler lags
by more than ``error_buffer``), which actors ask for and pause on when it is gone, and
``behind`` when the sampler lags anyway.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["RateLimiter"]


@dataclass
class RateLimiter:
    """See the module docstring."""

    min_size: int = 1_000  #: transitions the memory holds before the first sample
    samples_per_insert: float = 8.0  #: target transitions sampled per transition inserted
    error_buffer: float = 2_048.0  #: how far (in sampled transitions) the ratio may stray from its target
    inserts: int = 0  #: transitions inserted so far
    samples: int = 0  #: transitions sampled so far

    def __post_init__(self) -> None:
        if isinstance(self.min_size, bool) or not isinstance(self.min_size, int) or self.min_size < 1:
            raise ValueError(f"rate limiter: min_size must be a positive integer, got {self.min_size!r}")
        for label in ("samples_per_insert", "error_buffer"):
            value = getattr(self, label)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"rate limiter: {label} must be a positive number, got {value!r}")

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> RateLimiter:
        """From a mapping of the first three fields (what travels in a child spec)."""
        known = {"min_size", "samples_per_insert", "error_buffer"}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"rate limiter: unknown keys {sorted(unknown)} (known: {sorted(known)})")
        return cls(**data)

    def allowance(self) -> float:
        """Transitions that may still be sampled before more are inserted."""
        return self.samples_per_insert * (self.inserts - self.min_size) + self.error_buffer - self.samples

    def insert_headroom(self) -> float:
        """Transitions that may still be inserted before the sampler lags by more than the error buffer."""
        return self.min_size + (self.samples + self.error_buffer) / self.samples_per_insert - self.inserts

    def can_sample(self, n: int, size: int) -> bool:
        return size >= max(self.min_size, n) and n <= self.allowance()

    def inserted(self, n: int) -> None:
        self.inserts += n

    def restored(self, n: int) -> None:
        """Count ``n`` transitions a restarted replay brought back as inserted *and* sampled at the target ratio.

        Its counts died with the old process; taken as fresh inserts, a restore of 30,000
        transitions at 32 samples per insert would owe the learner ~1M sampled transitions
        at once, which it would take from the old data while the actors, out of insert
        headroom, wait. As if the ratio had been kept, the learner goes on at the ratio.
        """
        self.inserts += n
        self.samples = max(self.samples, int(self.samples_per_insert * (self.inserts - self.min_size)))

    def sampled(self, n: int) -> None:
        self.samples += n

    @property
    def behind(self) -> bool:
        """True when the sampler lags the target ratio by more than the error buffer."""
        return self.allowance() > 2 * self.error_buffer

    def stats(self) -> dict[str, Any]:
        ratio = self.samples / self.inserts if self.inserts else 0.0
        return {**asdict(self), "samples_per_insert_actual": ratio, "behind": self.behind}
