"""Test helpers: gymnasium envs behind beamrl's ``reset() -> Exp`` / ``step() -> Exp`` API.

``make_env`` prefers the native ``beamrl.rl.envs.registry.make`` and falls back to the
shim; ``judge_env`` always wraps gymnasium's own env (the referee for learned policies).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from beamrl.rl.exp import Exp

# gymnasium 1.4 deprecates Taxi-v3 and CliffWalking-v0 (same dynamics in the new versions)
GYM_IDS = {
    "Taxi-v3": "Taxi-v4",
    "CliffWalking": "CliffWalking-v1",
    "CliffWalking-v0": "CliffWalking-v1",
}


class GymShim:
    """A gymnasium env adapted to the ``Env`` API (``Exp`` in, ``Exp`` out)."""

    def __init__(self, env_id: str, **kwargs: Any) -> None:
        gym_id = GYM_IDS.get(env_id, env_id)
        self._env = gym.make(gym_id, disable_env_checker=True, **kwargs)
        self.env_id = gym_id
        self.action_space = self._env.action_space
        self.observation_space = self._env.observation_space
        spec = self._env.spec
        self.max_episode_steps = spec.max_episode_steps if spec is not None else None
        self._state: Any = None

    @property
    def P(self) -> Any:
        return self._env.unwrapped.P  # type: ignore[attr-defined]

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> Exp:
        obs, info = self._env.reset(seed=seed, options=options)
        self._state = obs
        return Exp(next_state=obs, info=info)

    def step(self, action: Any) -> Exp:
        obs, reward, terminated, truncated, info = self._env.step(action)
        exp = Exp(self._state, action, float(reward), obs, terminated, truncated, info)
        self._state = obs
        return exp


def make_env(env_id: str, **kwargs: Any) -> Any:
    """The native env when the registry exists, else the gymnasium shim."""
    try:
        from beamrl.rl.envs.registry import make  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return GymShim(env_id, **kwargs)
    return make(env_id, **kwargs)


def judge_env(env_id: str, **kwargs: Any) -> GymShim:
    """Gymnasium's own env, the referee for learned policies."""
    return GymShim(env_id, **kwargs)
