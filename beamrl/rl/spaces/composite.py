"""The nested spaces: ``Tuple`` and ``Dict`` of other spaces, seeded from one seed."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from beamrl.rl.spaces.base import Space, gymnasium_module, np_random


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
