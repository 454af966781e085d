"""``GymEnv``: any gymnasium environment behind beamrl's ``Env`` API.

    env = GymEnv(gymnasium.make("CartPole-v1"))
    exp = env.reset(seed=0)                  # Exp(next_state=first observation, info=...)
    exp = env.step(env.action_space.sample())

Spaces are translated with ``from_gym``; an action outside the action space raises
``InvalidAction`` before gymnasium sees it. A list or number given for a ``Box`` action
is turned into an array of the space's dtype first. Rewards become Python floats,
``terminated``/``truncated`` Python bools.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from beamrl.rl.env import Env
from beamrl.rl.errors import InvalidAction
from beamrl.rl.exp import Exp
from beamrl.rl.spaces import Box, from_gym


class GymEnv(Env):
    """Wraps a gymnasium env (built by ``gymnasium.make`` or by hand)."""

    def __init__(self, gym_env: Any, env_id: str = "") -> None:
        self.gym_env = gym_env
        spec = getattr(gym_env, "spec", None)
        self.env_id = env_id or (spec.id if spec is not None else type(gym_env).__name__)
        self.max_episode_steps = spec.max_episode_steps if spec is not None else None
        self.action_space = from_gym(gym_env.action_space)
        self.observation_space = from_gym(gym_env.observation_space)
        self._obs: Any = None

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> Exp:
        obs, info = self.gym_env.reset(seed=seed, options=options)
        self._obs = obs
        return Exp(next_state=obs, info=dict(info))

    def _action(self, action: Any) -> Any:
        space = self.action_space
        if isinstance(space, Box) and isinstance(action, list | tuple | int | float):
            try:
                action = np.asarray(action, dtype=space.dtype).reshape(space.shape)
            except (ValueError, TypeError):
                pass
        if not space.contains(action):
            raise InvalidAction(f"action {action!r} is not in the action space {space!r}")
        return action

    def step(self, action: Any) -> Exp:
        action = self._action(action)
        obs, reward, terminated, truncated, info = self.gym_env.step(action)
        state, self._obs = self._obs, obs
        return Exp(state, action, float(reward), obs, bool(terminated), bool(truncated), dict(info))

    def render(self) -> str:
        """gymnasium's text when it renders ``"ansi"``, else the id and the last observation."""
        if getattr(self.gym_env, "render_mode", None) == "ansi":
            return str(self.gym_env.render())
        return f"{self.env_id}: {self._obs!r}\n"

    def close(self) -> None:
        self.gym_env.close()
