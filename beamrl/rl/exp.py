"""``Exp``: one step of experience, the unit every rl process exchanges."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Exp:
    """One transition ``(state, action, reward, next_state, terminated, truncated, info)``.

    ``reset()`` returns an ``Exp`` whose ``next_state`` is the first observation
    (``state`` and ``action`` are ``None``), so every loop reads the same::

        exp = env.reset(seed=0)
        while not exp.done:
            exp = env.step(policy(exp.next_state))
    """

    state: Any = None
    action: Any = None
    reward: float = 0.0
    next_state: Any = None
    terminated: bool = False
    truncated: bool = False
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        """True when the episode ended, by reaching a terminal state or by a time limit."""
        return bool(self.terminated or self.truncated)
