"""Vector envs equal N single envs stepped in lockstep with the same seeds, autoreset included."""

from __future__ import annotations

import numpy as np
import pytest

from beamrl.rl.envs.registry import make, make_vec
from beamrl.rl.envs.vector import LoopVectorEnv, PCG64Batch, TabularVectorEnv
from beamrl.rl.errors import InvalidAction
from beamrl.rl.spaces import np_random


def test_pcg64_batch_draws_what_numpy_draws() -> None:
    gens = [np_random(s) for s in (0, 1, 2**40, 12345)]
    batch = PCG64Batch([np_random(s) for s in (0, 1, 2**40, 12345)])
    for _ in range(200):
        np.testing.assert_array_equal(batch.random(), [g.random() for g in gens])
    continued = batch.generator(3)
    assert continued.random() == gens[3].random()


@pytest.mark.parametrize(
    ("env_id", "kwargs", "kind"),
    [
        ("FrozenLake-v1", {}, TabularVectorEnv),
        ("FrozenLake8x8-v1", {"is_slippery": False}, TabularVectorEnv),
        ("CliffWalkingSlippery-v1", {"max_episode_steps": 50}, TabularVectorEnv),
        ("CliffWalking-v1", {"max_episode_steps": 30}, TabularVectorEnv),
        ("Taxi-v4", {"is_rainy": True}, TabularVectorEnv),
        ("Taxi-v4", {"fickle_passenger": True}, LoopVectorEnv),
        ("Blackjack-v1", {}, LoopVectorEnv),
    ],
)
def test_vector_equals_single_envs_in_lockstep(env_id: str, kwargs: dict, kind: type) -> None:
    n = 12
    venv = make_vec(env_id, n, **kwargs)
    assert isinstance(venv, kind)
    singles = [make(env_id, **kwargs) for _ in range(n)]
    obs, _ = venv.reset(seed=5)
    np.testing.assert_array_equal(obs, [env.reset(seed=5 + i).next_state for i, env in enumerate(singles)])
    pending = [False] * n
    resets = 0
    rng = np.random.default_rng(0)
    for _ in range(400):
        actions = rng.integers(singles[0].action_space.n, size=n)
        obs, rewards, terminated, truncated, _ = venv.step(actions)
        for i, env in enumerate(singles):
            if pending[i]:  # next-step autoreset: the action is ignored
                want = (env.reset().next_state, 0.0, False, False)
                resets += 1
            else:
                exp = env.step(int(actions[i]))
                want = (exp.next_state, exp.reward, exp.terminated, exp.truncated)
            got = (obs[i], rewards[i], terminated[i], truncated[i])
            assert np.all(got[0] == want[0])
            assert got[1:] == want[1:]
            pending[i] = want[2] or want[3]
    assert resets > 0


def test_reset_takes_a_seed_list_and_none_continues() -> None:
    venv = make_vec("FrozenLake-v1", 3, desc=["SS", "SG"])
    a, _ = venv.reset(seed=[4, 5, 6])
    b, _ = venv.reset(seed=4)
    np.testing.assert_array_equal(a, b)
    singles = [make("FrozenLake-v1", desc=["SS", "SG"]) for _ in range(3)]
    for i, env in enumerate(singles):
        env.reset(seed=4 + i)
    c, _ = venv.reset()
    np.testing.assert_array_equal(c, [env.reset().next_state for env in singles])
    with pytest.raises(ValueError, match="one seed per sub-env"):
        venv.reset(seed=[1, 2])


def test_invalid_actions_are_refused() -> None:
    venv = make_vec("FrozenLake-v1", 4)
    venv.reset(seed=0)
    for bad in ([0, 1, 2], [0, 1, 2, 4], [0.0, 1.0, 2.0, 3.0], [-1, 0, 0, 0]):
        with pytest.raises(InvalidAction, match="not in the action space"):
            venv.step(np.array(bad))


def test_step_before_reset_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="reset"):
        make_vec("Taxi-v4", 2).step(np.zeros(2, dtype=np.int64))


@pytest.mark.slow
def test_vector_frozen_lake_is_fast() -> None:
    from beamrl.bench.env_bench import vector_frozen_lake_rate

    assert vector_frozen_lake_rate(1024, 200) >= 2_000_000
