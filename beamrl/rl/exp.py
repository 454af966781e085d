"""``Exp``: one step of experience, the unit every rl process exchanges."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from beamrl import codec


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


def _exp_to_data(e: Exp) -> list[Any]:
    return [e.state, e.action, e.reward, e.next_state, e.terminated, e.truncated, e.info]


def _exp_from_data(v: Any) -> Exp:
    if type(v) is not list or len(v) != 7 or type(v[6]) is not dict:
        raise ValueError("an Exp is a list of 7 fields ending with the info dict")
    return Exp(*v)


_EXP_CODE = 8  # one of the core codes: an Exp is in nearly every rl message
codec.register_core(_EXP_CODE, Exp, _exp_to_data, _exp_from_data)
