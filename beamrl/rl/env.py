"""The ``Env`` behaviour: what every environment, native or adapted, provides.

Usage loop::

    env = beamrl.rl.make("FrozenLake-v1", is_slippery=True)
    exp = env.reset(seed=0)            # Exp with next_state = first observation
    while not exp.done:
        exp = env.step(env.action_space.sample())
    print(env.render())                # text (ANSI) rendering

Dynamic-programming agents also read ``env.P[s][a] -> [(prob, next_state, reward, terminated)]``
on the native tabular environments (FrozenLake, Taxi, CliffWalking; not Blackjack).

Seeding follows gymnasium: ``reset(seed=s)`` reseeds the env's generator
(``env.np_random``, a PCG64 ``np.random.Generator`` built from ``SeedSequence(s)``);
``reset()`` without a seed continues the current stream. Stepping after ``done`` is
allowed, as in gymnasium, and continues from the final state; ``step`` with an action
outside ``action_space`` raises ``beamrl.rl.errors.InvalidAction`` and changes nothing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from beamrl.rl.exp import Exp


class Env(ABC):
    """An environment: ``reset``, ``step``, the two spaces, ``render``."""

    #: the action space (a ``beamrl.rl.spaces`` space)
    action_space: Any
    #: the observation space (a ``beamrl.rl.spaces`` space)
    observation_space: Any
    #: the time limit after which ``truncated`` is set, or ``None``
    max_episode_steps: int | None = None
    #: the id ``make`` built it from
    env_id: str = ""

    @abstractmethod
    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> Exp:
        """Start an episode; the returned ``Exp.next_state`` is the first observation."""

    @abstractmethod
    def step(self, action: Any) -> Exp:
        """Apply ``action``; return the transition it caused."""

    def render(self) -> str:
        """Text rendering of the current state."""
        return ""

    def close(self) -> None:  # noqa: B027 - optional hook, most envs hold nothing
        """Release what the env holds (windows, simulators)."""
