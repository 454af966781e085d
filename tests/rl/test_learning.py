"""Learning targets (issue 5), judged by gymnasium's own environments with fixed seeds.

Quick versions run by default; the full table is ``@pytest.mark.slow``.
Training uses the native envs when ``beamrl.rl.envs.registry`` exists, else the shim.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from beamrl.rl.agents import (
    ExpectedSarsa,
    ExpectedSarsaConfig,
    MonteCarlo,
    MonteCarloConfig,
    PolicyIteration,
    QLearning,
    QLearningConfig,
    Sarsa,
    SarsaConfig,
    TDAgent,
    ValueIteration,
    finite_horizon_return,
    model_arrays,
)
from beamrl.rl.loops import evaluate, train
from beamrl.rl.qtable import state_index
from beamrl.rl.schedules import Constant, Exponential
from tests.rl._gym_shim import judge_env, make_env

FROZEN = {"is_slippery": True}
CLIFF_START, CLIFF_GOAL = 36, 47
CLIFF_ALPHA = Exponential(0.5, 0.01, 0.995)


def frozen_exact(env: Any, horizon: int = 100):
    """Cheap in-training judge: exact success probability of the greedy policy via P."""
    T, R = model_arrays(env.P, env.observation_space.n, env.action_space.n)
    return lambda agent: {"success_rate": finite_horizon_return((T, R), agent.policy(), horizon)}


def judge_frozen(policy: Any, env_id: str = "FrozenLake-v1", seed: int = 1234) -> float:
    return evaluate(policy, judge_env(env_id, **FROZEN), episodes=2_000, seed=seed)["success_rate"]


# ----------------------------------------------------------------------- quick


@pytest.mark.parametrize("planner", [ValueIteration, PolicyIteration])
def test_dp_frozenlake_4x4(planner) -> None:
    env = make_env("FrozenLake-v1", **FROZEN)
    agent = planner().plan(env.P, 16, 4)
    assert judge_frozen(agent.policy()) >= 0.73


def test_value_iteration_frozenlake_8x8() -> None:
    env = make_env("FrozenLake8x8-v1", **FROZEN)
    agent = ValueIteration().plan(env.P, 64, 4)
    T, R = model_arrays(env.P, 64, 4)
    assert finite_horizon_return((T, R), agent.policy(), 200) >= 0.85
    assert judge_frozen(agent.policy(), "FrozenLake8x8-v1") >= 0.85


def test_qlearning_frozenlake_reaches_the_target_before_its_budget() -> None:
    env = make_env("FrozenLake-v1", **FROZEN)
    agent = QLearning(16, 4, QLearningConfig(seed=0))
    result = train(
        agent,
        env,
        episodes=20_000,
        seed=0,
        eval_every=100,
        eval_fn=frozen_exact(env),
        stop_when=lambda m: m["success_rate"] >= 0.72,
    )
    assert result.stopped_early, result.evals[-1]
    assert judge_frozen(agent.policy()) >= 0.70


def cliff_path(agent: TDAgent, env: Any) -> list[int]:
    """States of the greedy path from the start (CliffWalking is deterministic)."""
    s, path = CLIFF_START, [CLIFF_START]
    for _ in range(100):
        ((_, s, _, term),) = env.P[s][agent.act(s, greedy=True)]
        path.append(int(s))
        if term:
            break
    return path


def cliff_agents(episodes: int, seed: int = 0) -> tuple[Any, ...]:
    """Sutton & Barto Example 6.6: ε = 0.1, γ = 1; α decays from 0.5 so greedy paths settle."""
    out: list[Any] = []
    for cls, cfg in ((QLearning, QLearningConfig), (Sarsa, SarsaConfig)):
        env = make_env("CliffWalking-v1")
        agent = cls(48, 4, cfg(alpha=CLIFF_ALPHA, gamma=1.0, epsilon=Constant(0.1), seed=seed))
        out += [agent, train(agent, env, episodes, seed=seed)]
    return tuple(out)


def test_cliffwalking_qlearning_optimal_and_sarsa_safe() -> None:
    q_agent, q_res, s_agent, s_res = cliff_agents(500)
    judge = judge_env("CliffWalking-v1")
    assert evaluate(q_agent, judge, episodes=1, seed=0, max_steps=200)["mean_return"] == -13
    env = make_env("CliffWalking-v1")
    assert len(cliff_path(q_agent, env)) == 14  # 13 steps along the cliff
    s_path = cliff_path(s_agent, env)
    assert s_path[-1] == CLIFF_GOAL
    # row 2 (states 24..35) borders the cliff; only its two ends are unavoidable
    assert not set(s_path) & set(range(25, 35)), s_path
    assert evaluate(s_agent, judge, episodes=1, seed=0, max_steps=200)["success_rate"] == 1.0
    # online (ε-greedy) returns: SARSA's safe path beats Q-learning's falls
    assert s_res.returns[100:].mean() > q_res.returns[100:].mean()


# ------------------------------------------------------------------------ slow

TD = [
    (QLearning, QLearningConfig),
    (Sarsa, SarsaConfig),
    (ExpectedSarsa, ExpectedSarsaConfig),
]


def mc_frozen_config(seed: int) -> MonteCarloConfig:
    """Optimistic start + constant step: keeps trying actions whose estimates went stale."""
    return MonteCarloConfig(alpha=0.02, init=1.0, seed=seed)


@pytest.mark.slow
@pytest.mark.parametrize(("cls", "cfg"), [*TD, (MonteCarlo, mc_frozen_config)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_frozenlake_model_free_full(cls, cfg, seed) -> None:
    env = make_env("FrozenLake-v1", **FROZEN)
    agent = cls(16, 4, cfg(seed=seed))
    train(agent, env, episodes=20_000, seed=seed)
    assert judge_frozen(agent.policy(), seed=seed) >= 0.70


@pytest.mark.slow
@pytest.mark.parametrize(("cls", "cfg"), TD)
def test_taxi_full(cls, cfg) -> None:
    env = make_env("Taxi-v3")
    agent = cls(500, 6, cfg(seed=0))
    train(agent, env, episodes=5_000, seed=0)
    result = evaluate(agent.policy(), judge_env("Taxi-v3"), episodes=1_000, seed=7)
    assert result["mean_return"] >= 7.5
    assert result["success_rate"] == 1.0


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_cliffwalking_full(seed) -> None:
    q_agent, q_res, s_agent, s_res = cliff_agents(500, seed)
    judge = judge_env("CliffWalking-v1")
    assert evaluate(q_agent, judge, episodes=1, seed=0, max_steps=200)["mean_return"] == -13
    assert not set(cliff_path(s_agent, make_env("CliffWalking-v1"))) & set(range(25, 35))
    assert s_res.returns[100:].mean() > q_res.returns[100:].mean()


@pytest.mark.slow
def test_blackjack_monte_carlo_full() -> None:
    env = make_env("Blackjack-v1")
    index = state_index(env.observation_space)
    agent = MonteCarlo(index.n, 2, MonteCarloConfig(seed=0), state_fn=index)
    train(agent, env, episodes=300_000, seed=0)
    result = evaluate(agent, judge_env("Blackjack-v1"), episodes=100_000, seed=7)
    assert result["mean_return"] >= -0.08
    assert np.isfinite(result["std_return"])
