"""Agents, schedules and loops on tiny hand-checked MDPs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from beamrl.rl.agents import (
    Agent,
    ExpectedSarsa,
    ExpectedSarsaConfig,
    MonteCarlo,
    MonteCarloConfig,
    PolicyIteration,
    QLearning,
    QLearningConfig,
    Sarsa,
    SarsaConfig,
    ValueIteration,
    ValueIterationConfig,
    finite_horizon_return,
    model_arrays,
)
from beamrl.rl.exp import Exp
from beamrl.rl.loops import evaluate, run_episode, train
from beamrl.rl.qtable import DictQTable
from beamrl.rl.schedules import GLIE, Constant, Exponential, Linear


class Chain:
    """States 0..n-1 in a line; action 1 moves right, 0 moves left; reward 1 at the end."""

    env_id = "Chain"
    max_episode_steps = 50

    def __init__(self, n: int = 4) -> None:
        self.n = n
        self.s = 0
        self.t = 0
        self.P = {
            s: {
                0: [(1.0, max(s - 1, 0), 0.0, False)],
                1: [(1.0, s + 1, 1.0 if s + 1 == n - 1 else 0.0, s + 1 == n - 1)],
            }
            for s in range(n - 1)
        }
        self.P[n - 1] = {a: [(1.0, n - 1, 0.0, True)] for a in (0, 1)}

    def reset(self, seed: int | None = None) -> Exp:
        self.s, self.t = 0, 0
        return Exp(next_state=0)

    def step(self, a: int) -> Exp:
        ((_, s2, r, term),) = self.P[self.s][a]
        self.t += 1
        exp = Exp(self.s, a, r, s2, term, self.t >= self.max_episode_steps and not term)
        self.s = s2
        return exp


def test_schedules() -> None:
    assert Constant(0.3)(10**6) == 0.3
    lin = Linear(1.0, 0.0, 10)
    assert (lin(0), lin(5), lin(10), lin(99)) == (1.0, 0.5, 0.0, 0.0)
    ex = Exponential(1.0, 0.1, 0.5)
    assert (ex(0), ex(1), ex(10)) == (1.0, 0.5, 0.1)
    g = GLIE()
    assert [g(k) for k in range(3)] == [1.0, 0.5, pytest.approx(1 / 3)]
    with pytest.raises(ValueError, match="steps > 0"):
        Linear(1.0, 0.0, 0)
    with pytest.raises(ValueError, match="decay"):
        Exponential(1.0, 0.0, 1.5)
    with pytest.raises(ValueError, match=">= 0"):
        lin(-1)


def test_qlearning_target() -> None:
    agent = QLearning(3, 2, QLearningConfig(alpha=0.5, gamma=0.9, epsilon=0.0))
    agent.q.set(1, 0, 2.0)
    agent.q.set(1, 1, 4.0)
    agent.observe(Exp(0, 1, 1.0, 1, False, False))
    assert agent.q.get(0, 1) == pytest.approx(0.5 * (1.0 + 0.9 * 4.0))
    agent.observe(Exp(1, 1, 1.0, 2, True, False))  # terminal: no bootstrap
    assert agent.q.get(1, 1) == pytest.approx(4.0 + 0.5 * (1.0 - 4.0))


def test_expected_sarsa_target() -> None:
    agent = ExpectedSarsa(3, 2, ExpectedSarsaConfig(alpha=1.0, gamma=1.0, epsilon=0.2))
    agent.q.set(1, 0, 2.0)
    agent.q.set(1, 1, 4.0)
    agent.observe(Exp(0, 0, 0.0, 1, False, False))
    # pi(a=1) = 0.8 + 0.1, pi(a=0) = 0.1
    assert agent.q.get(0, 0) == pytest.approx(0.9 * 4.0 + 0.1 * 2.0)


def test_sarsa_uses_the_next_action_it_takes() -> None:
    agent = Sarsa(3, 2, SarsaConfig(alpha=1.0, gamma=1.0, epsilon=0.5, seed=1))
    agent.q.set(1, 0, 10.0)
    agent.q.set(1, 1, -10.0)
    for _ in range(20):
        a0 = agent.act(0)
        agent.observe(Exp(0, a0, 0.0, 1, False, False))
        a1 = agent.act(1)  # the a' SARSA bootstrapped on
        assert agent.q.get(0, a0) == (10.0 if a1 == 0 else -10.0)
        agent.end_episode()


def test_eps_greedy_explores_and_greedy_does_not() -> None:
    agent = QLearning(1, 4, QLearningConfig(epsilon=1.0, seed=0))
    agent.q.set(0, 2, 1.0)
    assert {agent.act(0) for _ in range(100)} == {0, 1, 2, 3}
    assert {agent.act(0, greedy=True) for _ in range(100)} == {2}


def test_epsilon_schedule_advances_per_episode_or_step() -> None:
    per_ep = QLearning(2, 2, QLearningConfig(epsilon=Linear(1.0, 0.0, 10)))
    per_step = QLearning(2, 2, QLearningConfig(epsilon=Linear(1.0, 0.0, 10), schedule_unit="step"))
    for agent in (per_ep, per_step):
        agent.observe(Exp(0, 0, 0.0, 1, False, False))
        agent.observe(Exp(1, 0, 0.0, 0, False, False))
    assert per_ep.epsilon == 1.0
    assert per_step.epsilon == pytest.approx(0.8)
    per_ep.end_episode()
    assert per_ep.epsilon == pytest.approx(0.9)


def test_updates_can_be_shipped_to_a_shared_table() -> None:
    env = Chain()
    shared = QLearning(4, 2).q  # stands in for the QServer's table
    actor = QLearning(4, 2, QLearningConfig(alpha=0.1, record_updates=True, seed=3))
    local = QLearning(4, 2, QLearningConfig(alpha=0.1, seed=3))
    for _ in range(30):
        run_episode(env, actor)
        run_episode(env, local)
        shared.apply_batch(actor.take_updates(), actor.alpha)
    assert actor.take_updates() == []
    np.testing.assert_allclose(shared.table, actor.q.table)
    np.testing.assert_allclose(local.q.table, actor.q.table)


def test_updates_sink_and_pure_actor() -> None:
    env = Chain()
    shared = QLearning(4, 2).q
    batches: list[list[Any]] = []

    def sink(batch: list[Any]) -> None:
        batches.append(batch)
        shared.apply_batch(batch, 0.1)

    actor = Sarsa(4, 2, SarsaConfig(apply_locally=False, flush_every=5), updates_sink=sink)
    for _ in range(10):
        run_episode(env, actor)
        actor.q.assign(shared.table)  # refresh the local copy
    assert batches
    assert all(len(b) <= 5 for b in batches)
    assert shared.table.any()
    np.testing.assert_array_equal(actor.q.table, shared.table)


def test_monte_carlo_first_visit_returns() -> None:
    agent = MonteCarlo(3, 2, MonteCarloConfig(gamma=0.5, epsilon=0.0))
    for exp in (
        Exp(0, 1, 0.0, 1, False, False),
        Exp(1, 0, 0.0, 0, False, False),
        Exp(0, 1, 0.0, 1, False, False),  # second visit of (0, 1): ignored
        Exp(1, 1, 8.0, 2, True, False),
    ):
        agent.observe(exp)
    assert agent.q.get(0, 1) == 0.0  # nothing learned before the episode ends
    agent.end_episode()
    assert agent.q.get(0, 1) == pytest.approx(8.0 * 0.5**3)
    assert agent.q.get(1, 0) == pytest.approx(8.0 * 0.5**2)
    assert agent.q.get(1, 1) == pytest.approx(8.0)
    # sample average: a second episode with return 0 halves the estimate
    agent.observe(Exp(1, 1, 0.0, 2, True, False))
    agent.end_episode()
    assert agent.q.get(1, 1) == pytest.approx(4.0)


def test_dict_backed_agent_and_state_fn() -> None:
    agent = QLearning(None, 2, QLearningConfig(alpha=1.0, epsilon=0.0), state_fn=tuple)
    assert isinstance(agent.q, DictQTable)
    agent.observe(Exp([0, 1], 1, 1.0, [0, 2], True, False))
    assert agent.q.get((0, 1), 1) == 1.0
    assert agent.act([0, 1]) == 1


@pytest.mark.parametrize("planner", [ValueIteration, PolicyIteration])
def test_dp_on_chain(planner) -> None:
    env = Chain()
    agent = planner().plan(env.P, 4, 2)
    np.testing.assert_array_equal(agent.policy()[:3], [1, 1, 1])
    assert agent.V[0] == pytest.approx(0.99**2)
    assert agent.act(1) == 1
    assert isinstance(agent, Agent)


def test_vi_and_pi_agree_with_finite_horizon() -> None:
    env = Chain()
    vi = ValueIteration(ValueIterationConfig(gamma=0.9)).plan(env.P, 4, 2)
    T, R = model_arrays(env.P, 4, 2)
    assert finite_horizon_return((T, R), vi.policy(), horizon=3) == pytest.approx(1.0)
    assert finite_horizon_return(env.P, vi.policy(), horizon=2) == 0.0
    with pytest.raises(ValueError, match="sum to"):
        model_arrays({0: {0: [(0.5, 0, 0.0, False)]}}, 1, 1)
    with pytest.raises(ValueError, match="before act"):
        ValueIteration().act(0)


def test_loops_train_and_evaluate() -> None:
    env = Chain()
    agent = QLearning(4, 2, QLearningConfig(epsilon=0.3))
    seen: list[int] = []
    result = train(
        agent,
        env,
        episodes=200,
        eval_every=20,
        eval_episodes=3,
        on_episode=lambda i, r, a: seen.append(i) and False,
        stop_when=lambda m: m["success_rate"] == 1.0,
    )
    assert result.stopped_early
    assert result.evals[-1]["success_rate"] == 1.0
    assert result.episodes == len(seen) == int(result.evals[-1]["episode"])
    assert result.rows()[0]["episode"] == 1
    ret, length, success = run_episode(env, agent, learn=False)
    assert (ret, length, success) == (1.0, 3, True)
    assert evaluate(agent.policy(), env, episodes=2)["mean_return"] == 1.0
    assert evaluate(lambda s: 0, env, episodes=1)["success_rate"] == 0.0
