"""The gymnasium adapter: any gymnasium env behind the Env API."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from beamrl.rl.envs.gym_adapter import GymEnv
from beamrl.rl.envs.registry import make
from beamrl.rl.errors import InvalidAction
from beamrl.rl.spaces import Box, Discrete, from_gym

CLASSIC = ["CartPole-v1", "Acrobot-v1", "MountainCar-v0", "MountainCarContinuous-v0", "Pendulum-v1"]


@pytest.mark.parametrize("env_id", CLASSIC)
def test_adapter_replays_gymnasium(env_id: str) -> None:
    env, ref = make(env_id), gym.make(env_id)
    assert isinstance(env, GymEnv)
    assert env.action_space == from_gym(ref.action_space)
    assert env.observation_space == from_gym(ref.observation_space)
    assert env.max_episode_steps == ref.spec.max_episode_steps
    exp = env.reset(seed=3)
    obs, _ = ref.reset(seed=3)
    np.testing.assert_array_equal(exp.next_state, obs)
    env.action_space.seed(3)
    for _ in range(60):
        action = env.action_space.sample()
        exp = env.step(action)
        obs, reward, terminated, truncated, _ = ref.step(action)
        np.testing.assert_array_equal(exp.next_state, obs)
        assert (exp.reward, exp.terminated, exp.truncated) == (reward, terminated, truncated)
        assert type(exp.reward) is float
        if exp.done:
            break
    env.close()


def test_adapter_refuses_bad_actions() -> None:
    env = make("CartPole-v1")
    env.reset(seed=0)
    assert isinstance(env.action_space, Discrete)
    for bad in (2, -1, 0.5, True, None):
        with pytest.raises(InvalidAction, match="not in the action space Discrete"):
            env.step(bad)
    pendulum = make("Pendulum-v1")
    pendulum.reset(seed=0)
    assert isinstance(pendulum.action_space, Box)
    assert pendulum.step([0.5]).action.dtype == np.float32
    with pytest.raises(InvalidAction, match="Box"):
        pendulum.step([5.0])


def test_adapter_renders_text() -> None:
    env = make("CartPole-v1")
    env.reset(seed=0)
    assert env.render().startswith("CartPole-v1: ")
    ansi = GymEnv(gym.make("FrozenLake-v1", render_mode="ansi"))
    ansi.reset(seed=0)
    assert "FHFH" in ansi.render()
