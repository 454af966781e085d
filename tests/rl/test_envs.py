"""Native environments against gymnasium's: same seeds and actions give the same episodes."""

from __future__ import annotations

import math
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.toy_text.frozen_lake import generate_random_map as gym_random_map

from beamrl.rl.envs.blackjack import Blackjack
from beamrl.rl.envs.frozen_lake import FrozenLake, generate_random_map
from beamrl.rl.envs.registry import NATIVE, make
from beamrl.rl.envs.tabular import TabularEnv
from beamrl.rl.errors import InvalidAction, UnknownEnv
from beamrl.rl.exp import Exp

CUSTOM = ["SFFH", "FHFF", "FFFF", "HFFG"]
CASES = [
    ("FrozenLake-v1", "FrozenLake-v1", {}),
    ("FrozenLake-v1", "FrozenLake-v1", {"is_slippery": False}),
    ("FrozenLake-v1", "FrozenLake-v1", {"desc": CUSTOM, "success_rate": 0.8}),
    ("FrozenLake-v1", "FrozenLake-v1", {"desc": ["SFS", "FHF", "SFG"]}),
    ("FrozenLake8x8-v1", "FrozenLake8x8-v1", {}),
    ("FrozenLake8x8-v1", "FrozenLake8x8-v1", {"is_slippery": False}),
    ("Taxi-v4", "Taxi-v4", {}),
    ("Taxi-v3", "Taxi-v4", {"is_rainy": True}),
    ("Taxi-v4", "Taxi-v4", {"fickle_passenger": True, "fickle_probability": 0.9}),
    ("Taxi-v4", "Taxi-v4", {"is_rainy": True, "fickle_passenger": True}),
    ("CliffWalking-v1", "CliffWalking-v1", {}),
    ("CliffWalking-v0", "CliffWalking-v1", {}),
    ("CliffWalkingSlippery-v1", "CliffWalkingSlippery-v1", {}),
    ("Blackjack-v1", "Blackjack-v1", {}),
    ("Blackjack-v1", "Blackjack-v1", {"sab": False, "natural": True}),
    ("Blackjack-v1", "Blackjack-v1", {"sab": False, "natural": False}),
]


def _ids(case: tuple) -> str:
    return f"{case[0]}-{case[2]}"


def _lazy_policy(n_actions: int, seed: int, steps: int) -> np.ndarray:
    """Random actions with long runs of one action, opening with 250 left/up moves that
    keep a non-slippery agent in the corner until the time limit."""
    rng = np.random.default_rng(seed)
    actions = rng.integers(n_actions, size=steps)
    stuck = rng.random(steps) < 0.7
    for t in range(1, steps):
        if stuck[t]:
            actions[t] = actions[t - 1]
    opening = np.resize([0, 3] if n_actions == 4 else [1, 0], 250)
    return np.concatenate([opening, actions])


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_trajectories_match_gymnasium(case: tuple) -> None:
    our_id, gym_id, kwargs = case
    ours, theirs = make(our_id, **kwargs), gym.make(gym_id, **kwargs)
    episodes = truncations = 0
    for seed in (0, 1, 7):
        exp = ours.reset(seed=seed)
        obs, _ = theirs.reset(seed=seed)
        assert exp.next_state == obs
        for action in _lazy_policy(ours.action_space.n, seed, 1500):
            exp = ours.step(int(action))
            obs, reward, terminated, truncated, info = theirs.step(int(action))
            assert (exp.next_state, exp.reward, exp.terminated, exp.truncated) == (
                obs,
                reward,
                terminated,
                truncated,
            )
            if "action_mask" in info:
                np.testing.assert_array_equal(exp.info["action_mask"], info["action_mask"])
            if exp.done:
                episodes += 1
                truncations += exp.truncated
                obs, _ = theirs.reset()
                assert ours.reset().next_state == obs
    assert episodes > 0
    if kwargs.get("is_slippery") is False:  # stuck runs walk into walls until the limit
        assert truncations > 0


@pytest.mark.parametrize(("env_id", "limit"), [("FrozenLake-v1", 100), ("FrozenLake8x8-v1", 200)])
def test_frozen_lake_time_limit(env_id: str, limit: int) -> None:
    env = make(env_id, is_slippery=False)
    exp = env.reset(seed=0)
    for t in range(1, limit + 1):
        exp = env.step(0)  # left into the wall: stays on the start cell
        assert exp.truncated == (t == limit)
    assert not exp.terminated
    assert exp.next_state == 0


def test_time_limits_are_gymnasiums() -> None:
    for env_id in NATIVE:
        assert make(env_id).max_episode_steps == gym.spec(env_id).max_episode_steps, env_id


@pytest.mark.parametrize(
    ("env_id", "kwargs"),
    [
        ("FrozenLake-v1", {}),
        ("FrozenLake-v1", {"is_slippery": False}),
        ("FrozenLake8x8-v1", {"success_rate": 0.6, "reward_schedule": (5, -1, 0)}),
        ("Taxi-v4", {}),
        ("Taxi-v4", {"is_rainy": True, "rainy_probability": 0.7}),
        ("CliffWalking-v1", {}),
        ("CliffWalkingSlippery-v1", {}),
    ],
)
def test_transition_tables_equal_gymnasiums(env_id: str, kwargs: dict) -> None:
    env = make(env_id, **kwargs)
    assert isinstance(env, TabularEnv)
    assert env.P == gym.make(env_id, **kwargs).unwrapped.P


def _chi2_critical(df: int, z: float = 3.09) -> float:
    """Upper 0.999 quantile of chi-square(df), Wilson-Hilferty approximation (z = 3.09)."""
    h = 2 / (9 * df)
    return df * (1 - h + z * math.sqrt(h)) ** 3


def test_slippery_frequencies_match_the_model() -> None:
    env = make("FrozenLake8x8-v1")
    assert isinstance(env, TabularEnv)
    counts: dict[tuple[int, int], dict[int, int]] = {}
    rng = np.random.default_rng(3)
    exp = env.reset(seed=3)
    for _ in range(60_000):
        s, a = exp.next_state, int(rng.integers(4))
        exp = env.step(a)
        row = counts.setdefault((s, a), {})
        row[exp.next_state] = row.get(exp.next_state, 0) + 1
        if exp.done:
            exp = env.reset()
    stat, df = 0.0, 0
    for (s, a), row in counts.items():
        total = sum(row.values())
        expected: dict[int, float] = {}
        for p, ns, _, _ in env.P[s][a]:
            expected[ns] = expected.get(ns, 0.0) + p * total
        assert set(row) <= set(expected)
        if len(expected) < 2 or min(expected.values()) < 5:
            continue
        stat += sum((row.get(ns, 0) - e) ** 2 / e for ns, e in expected.items())
        df += len(expected) - 1
    assert df > 50
    assert stat < _chi2_critical(df), (stat, df)


def test_random_map_equals_gymnasiums() -> None:
    for seed in range(5):
        assert generate_random_map(7, 0.6, seed=seed) == gym_random_map(7, 0.6, seed=seed)
    lake = FrozenLake(desc=generate_random_map(5, seed=1))
    assert lake.observation_space.n == 25
    assert FrozenLake(desc=None, map_name=None).observation_space.n == 64


@pytest.mark.parametrize("env_id", ["FrozenLake-v1", "FrozenLake8x8-v1", "Taxi-v4", "CliffWalking-v1"])
def test_render_matches_gymnasiums_ansi(env_id: str) -> None:
    ours, theirs = make(env_id), gym.make(env_id, render_mode="ansi")
    ours.reset(seed=4)
    theirs.reset(seed=4)
    assert ours.render() == theirs.render()
    for action in (1, 2, 2, 1):
        ours.step(action)
        theirs.step(action)
        assert ours.render() == theirs.render()


def test_blackjack_observation_and_render() -> None:
    env = make("Blackjack-v1")
    assert isinstance(env, Blackjack)
    exp = env.reset(seed=0)
    assert isinstance(exp.next_state, tuple)
    assert all(type(x) is int for x in exp.next_state)
    assert env.observation_space.contains(exp.next_state)
    assert "Dealer shows" in env.render()


def test_observations_are_python_ints() -> None:
    for env_id in ("FrozenLake-v1", "Taxi-v4", "CliffWalking-v1"):
        env = make(env_id)
        exp = env.reset(seed=0)
        assert type(exp.next_state) is int
        exp = env.step(1)
        assert type(exp.next_state) is int
        assert type(exp.reward) is float
        assert type(exp.terminated) is bool
        assert type(exp.truncated) is bool
        assert isinstance(exp, Exp)
        assert exp.state is not None
        assert exp.action == 1


@pytest.mark.parametrize("env_id", sorted(NATIVE))
@pytest.mark.parametrize("bad", [4 + 2, -1, 1.0, True, "1", None, np.float32(1), [1]])
def test_invalid_action_is_refused_and_changes_nothing(env_id: str, bad: object) -> None:
    env, twin = make(env_id), make(env_id)
    env.reset(seed=11)
    twin.reset(seed=11)
    with pytest.raises(InvalidAction, match="not in the action space Discrete"):
        env.step(bad)
    for action in (1, 0, 1, 1, 0, 1):
        a, b = env.step(action), twin.step(action)
        assert (a.next_state, a.reward, a.done) == (b.next_state, b.reward, b.done)
        if a.done:
            assert env.reset().next_state == twin.reset().next_state


def test_numpy_integer_actions_are_accepted() -> None:
    env = make("FrozenLake-v1", is_slippery=False)
    env.reset(seed=0)
    assert env.step(np.int64(2)).next_state == 1
    assert env.step(np.uint8(1)).next_state == 5


def test_step_before_reset_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="reset"):
        make("Taxi-v4").step(0)


def test_make_refuses_unknown_ids_listing_the_native_ones() -> None:
    with pytest.raises(UnknownEnv, match=r"FrozenLake-v1.*Taxi-v4"):
        make("NoSuchEnv-v0")
    with pytest.raises(ValueError, match="unknown map_name"):
        make("FrozenLake-v1", map_name="5x5")
    with pytest.raises(ValueError, match="render_mode"):
        make("FrozenLake-v1", render_mode="human")


def test_make_without_gymnasium_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gymnasium", None)
    assert make("FrozenLake-v1").env_id == "FrozenLake-v1"
    with pytest.raises(ImportError, match=r"pip install beamrl\[gym\]"):
        make("CartPole-v1")


def test_max_episode_steps_override() -> None:
    env = make("CliffWalking-v1", max_episode_steps=3)
    env.reset(seed=0)
    assert [env.step(0).truncated for _ in range(3)] == [False, False, True]
