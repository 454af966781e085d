"""Tabular training's hot path: whole episodes in one loop, batches between processes, exact evaluations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from beamrl import GenServer, Node, Rejected
from beamrl.rl import make
from beamrl.rl.agents import (
    ExpectedSarsa,
    ExpectedSarsaConfig,
    QLearning,
    QLearningConfig,
    Sarsa,
    SarsaConfig,
    ValueIteration,
    ValueIterationConfig,
)
from beamrl.rl.agents.td import TDAgent, TDConfig
from beamrl.rl.env_server import EnvServer
from beamrl.rl.errors import QTableError
from beamrl.rl.exp import Exp
from beamrl.rl.qserver import QServer
from beamrl.rl.qtable import QTable
from beamrl.rl.training import Recorder, RunSpec, Worker
from beamrl.rl.training.tabular import ExactEval, greedy_eval, table_shape
from beamrl.testing import eventually


@pytest.mark.parametrize(
    ("cls", "config"), [(QLearning, QLearningConfig), (Sarsa, SarsaConfig), (ExpectedSarsa, ExpectedSarsaConfig)]
)
@pytest.mark.parametrize("env_id", ["FrozenLake-v1", "Taxi-v3"])
def test_play_is_the_same_episode_as_act_and_observe(cls: type[TDAgent], config: type[TDConfig], env_id: str) -> None:
    fast_env, slow_env = make(env_id), make(env_id)
    n_states, n_actions = fast_env.observation_space.n, fast_env.action_space.n
    fast = cls(n_states, n_actions, config(seed=3, record_updates=True))
    slow = cls(n_states, n_actions, config(seed=3, record_updates=True))
    for episode in range(200):
        ret, length, last = fast.play(fast_env, seed=episode, max_steps=60)
        exp = slow_env.reset(seed=episode)
        total, n = 0.0, 0
        while not exp.done and n < 60:
            exp = slow_env.step(slow.act(exp.next_state))
            slow.observe(exp)
            total += exp.reward
            n += 1
        slow.end_episode()
        assert (ret, length) == (total, n)
        assert _fields(last) == _fields(exp)  # the same last transition
    np.testing.assert_array_equal(fast.q.to_array(), slow.q.to_array())
    assert fast.take_updates() == slow.take_updates()
    assert (fast.steps, fast.episodes, fast.epsilon, fast.alpha) == (
        slow.steps,
        slow.episodes,
        slow.epsilon,
        slow.alpha,
    )


def _fields(exp: Exp) -> tuple[object, ...]:
    """An Exp's fields but ``info`` (it holds arrays)."""
    return (exp.state, exp.action, exp.reward, exp.next_state, exp.terminated, exp.truncated)


def test_a_batched_td_update_with_repeated_cells_is_the_one_by_one_update() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        s, a = rng.integers(0, 5, 300), rng.integers(0, 3, 300)
        targets, alphas = rng.normal(size=300), rng.uniform(0.01, 1.0, 300)
        batched, single = QTable(5, 3), QTable(5, 3)
        start = rng.normal(size=(5, 3))
        batched.assign(start)
        single.assign(start)
        errors = batched.td_update(s, a, targets, alphas)
        one_by_one = [
            single.td_update_one(int(x), int(y), float(t), float(al))
            for x, y, t, al in zip(s, a, targets, alphas, strict=True)
        ]
        np.testing.assert_array_equal(batched.to_array(), single.to_array())
        np.testing.assert_array_equal(errors, one_by_one)


@pytest.mark.parametrize(
    ("env_id", "planned"),
    [("FrozenLake-v1", True), ("FrozenLake-v1", False), ("Taxi-v3", True), ("FrozenLake8x8-v1", True)],
)
def test_the_exact_evaluation_agrees_with_sampled_episodes(env_id: str, planned: bool) -> None:
    env = make(env_id)
    table = table_shape(env.observation_space, env.action_space)
    exact = ExactEval.build(env, env_id, 10_000)
    assert exact is not None
    if planned:  # the optimal policy
        planner = ValueIteration(ValueIterationConfig())
        planner.plan_env(env)
        policy = np.argmax(planner.Q, axis=1)
    else:  # an arbitrary one
        policy = np.random.default_rng(2).integers(table.n_actions, size=table.n_states)
    computed = exact.run(policy, 200)
    n = 4_000
    sampled = greedy_eval(policy, env, table, env_id, n, 0, 10_000)
    p = computed["success_rate"]
    assert abs(p - sampled["success_rate"]) <= 5 * (p * (1 - p) / n) ** 0.5 + 1e-9
    assert abs(computed["mean_return"] - sampled["mean_return"]) <= 5 * computed["std_return"] / n**0.5 + 1e-9
    assert computed["std_return"] == pytest.approx(sampled["std_return"], rel=0.05, abs=1e-9)
    assert computed["mean_length"] == pytest.approx(sampled["mean_length"], rel=0.05)


def test_the_exact_evaluation_of_a_known_policy() -> None:
    env = make("CliffWalking-v1")
    exact = ExactEval.build(env, "CliffWalking-v1", 10_000)
    assert exact is not None
    policy = np.full(48, 1)  # right everywhere: from the start (36) into the cliff at once
    policy[36] = 0  # up, then right along row 2 to its end, then down twice
    policy[24:35] = 1
    policy[35] = 2
    policy[47] = 2
    result = exact.run(policy, 10)
    assert result == {
        "mean_return": -13.0,
        "std_return": 0.0,
        "success_rate": 1.0,
        "mean_length": 13.0,
        "episodes": 10.0,
    }
    assert ExactEval.build(make("Blackjack-v1"), "Blackjack-v1", 100) is None  # no model: sampled instead


async def _run_one_worker(node: Node, spec: RunSpec, env: str | None = None) -> dict[str, object]:
    await node.start(QServer, 16, 4, name="qserver")
    await node.start(Recorder, spec.to_data(), 1, name="recorder")
    await node.start(Worker, spec.to_data(), 0, env, "qserver", "recorder", name="worker-0")
    summary: dict[str, object] = await node.call("recorder", ["wait"], timeout=60)
    return summary


async def test_a_worker_talks_to_the_qserver_once_per_batch_not_per_step(node: Node) -> None:
    spec = RunSpec("q-learning", "FrozenLake-v1", episodes=600, eval_every=100, eval_episodes=10, batch_steps=300)
    summary = await _run_one_worker(node, spec)
    assert summary["episodes"] == 600
    steps = int(summary["steps"])  # type: ignore[call-overload]
    writes = await node.call("qserver", ["version"])
    # one td_update cast per batch of >= 300 steps (cut at each of the 6 evaluations), never one per step
    assert 6 <= writes <= steps // 300 + 7
    assert len(await node.call("recorder", ["evals"])) == 6


async def test_a_worker_is_watched_like_an_environment(node: Node) -> None:
    """A dashboard watches a worker as an EnvServer: info, render and observe of its own env."""
    spec = RunSpec("q-learning", "FrozenLake-v1", episodes=50, eval_every=50, eval_episodes=10)
    summary = await _run_one_worker(node, spec)
    info = await node.call("worker-0", ["info"])
    assert info["env_id"] == "FrozenLake-v1" and info["episodes"] == 50 and info["steps"] == summary["steps"]
    assert "SFFF" in await node.call("worker-0", ["render"])
    obs = await node.call("worker-0", ["observe"])
    assert isinstance(obs, int) and 0 <= obs < 16
    with pytest.raises(Rejected, match="Worker does not understand"):
        await node.call("worker-0", ["step", 1])


async def test_a_worker_given_an_env_server_steps_it_through_calls(node: Node) -> None:
    await node.start(EnvServer, "FrozenLake-v1", name="sensor")
    spec = RunSpec("q-learning", "FrozenLake-v1", episodes=40, eval_every=40, eval_episodes=10)
    summary = await _run_one_worker(node, spec, env="sensor")
    info = await node.call("sensor", ["info"])
    assert info["episodes"] == 40 and info["steps"] == summary["steps"]


async def test_the_recorder_grants_batches_up_to_the_budget_and_each_evaluation(node: Node) -> None:
    spec = RunSpec("q-learning", "FrozenLake-v1", episodes=250, eval_every=100, eval_episodes=10)
    await node.start(QServer, 16, 4, name="qserver")
    await node.start(Recorder, spec.to_data(), 2, name="recorder")
    assert await node.call("recorder", ["next", 0, 0, 60]) == 60
    assert await node.call("recorder", ["next", 1, 0, 60]) == 40  # the grant ends at the first evaluation
    assert await node.call("recorder", ["next", 0, 0, 500]) == 100
    assert await node.call("recorder", ["next", 1, 0, 500]) == 50  # the rest of the budget
    node.cast("recorder", ["episodes", 0, [[0.0, 5, False, 0.5]] * 60])
    node.cast("recorder", ["episodes", 1, [[1.0, 7, True, 0.5]] * 40])
    await eventually(lambda: _episodes(node, 100), what="a hundred episodes reported")
    assert len(await node.call("recorder", ["evals"])) == 1
    for bad, problem in [
        (["next", 2, 0, 1], "worker index"),
        (["next", 0, 0, 0], "episodes wanted"),
        (["next", 0, "v", 1], "integers"),
    ]:
        with pytest.raises(Rejected, match=problem):
            await node.call("recorder", bad)
    node.cast("recorder", ["episodes", 0, [["x", "y", 1, 2]]])  # dropped with a log line
    assert (await node.call("recorder", ["summary"]))["episodes"] == 100


async def _episodes(node: Node, n: int) -> bool:
    return bool((await node.call("recorder", ["summary"]))["episodes"] == n)


async def test_a_seeded_single_node_run_keeps_its_table_with_any_batch_size(tmp_path: Path) -> None:
    """Batches change when the worker talks to the others, not what one worker learns."""
    from beamrl.rl.training import train

    tables = []
    for batch in (1, 50, 5_000):
        spec = RunSpec("q-learning", "FrozenLake-v1", episodes=300, seed=4, batch_steps=batch)
        await train(spec, tmp_path / str(batch), progress=False, final_episodes=20)
        tables.append(np.load(tmp_path / str(batch) / "qtable.npz")["q"])
    np.testing.assert_array_equal(tables[0], tables[1])
    np.testing.assert_array_equal(tables[0], tables[2])


class _Probe(GenServer):
    """Stands in for a worker: keeps the casts it gets."""

    async def init(self) -> None:
        self.casts: list[object] = []

    async def handle_cast(self, request: object) -> None:
        self.casts.append(request)

    async def handle_call(self, request: object, from_: object) -> object:
        return self.casts


async def test_a_fault_due_before_its_worker_is_up_fires_when_it_says_hello(node: Node) -> None:
    """Fast workers can play the first episodes before a remote one has started: its fault waits for it."""
    spec = RunSpec("q-learning", "FrozenLake-v1", episodes=100, eval_every=50, chaos=[{"at": 5, "fault": 1}])
    await node.start(QServer, 16, 4, name="qserver")
    await node.start(Recorder, spec.to_data(), 2, name="recorder")
    assert await node.call("recorder", ["next", 0, 0, 10]) == 10
    node.cast("recorder", ["episodes", 0, [[0.0, 3, False, 1.0]] * 10])
    await eventually(lambda: _episodes(node, 10), what="ten episodes reported")
    probe = await node.start(_Probe, name="late-worker")
    await node.call("recorder", ["hello", 1, probe])
    assert await node.call("late-worker", ["casts"]) == [["inject_fault"]]
    assert any(
        "fault injected into worker 1" in e["event"] for e in (await node.call("recorder", ["summary"]))["events"]
    )


async def test_merge_takes_a_sole_writers_values_and_adds_concurrent_changes(node: Node) -> None:
    await node.start(QServer, 4, 2, name="q")
    version, _ = await node.call("q", ["versioned_table"])
    # a worker's copy moved cells (0, 1) and (3, 0) from 0 to these values; nobody else wrote: taken as they are
    assert await node.call("q", ["merge", np.array([0, 3]), np.array([1, 0]), [0.1, 0.7], [0.1, 0.7], version]) is True
    assert await node.call("q", ["get", 0, 1]) == 0.1 and await node.call("q", ["get", 3, 0]) == 0.7
    await node.call("q", ["set", 0, 1, 1.0])  # another writer
    # this worker's next change is based on the version it produced, which is no longer the table's: added
    stale = version + 1
    assert await node.call("q", ["merge", np.array([0]), np.array([1]), [0.3], [0.2], stale]) is False
    assert await node.call("q", ["get", 0, 1]) == pytest.approx(1.2)
    for bad, problem in [
        (["merge", [0, 0], [1, 1], [1.0, 2.0], [1.0, 2.0], 0], "at most once"),
        (["merge", [9], [0], [1.0], [1.0], 0], "outside"),
        (["merge", [0], [0], [float("nan")], [0.0], 0], "finite"),
    ]:
        with pytest.raises(Rejected, match=problem):
            await node.call("q", bad)
    node.cast("q", ["merge", [0], [0], ["x"], [0.0], 0])  # a bad cast is dropped, the table stays
    assert await node.call("q", ["get", 0, 0]) == 0.0


def test_a_folded_batch_is_its_updates_replayed_in_order() -> None:
    rng = np.random.default_rng(3)
    s, a = rng.integers(0, 4, 500), rng.integers(0, 2, 500)
    targets, alphas = rng.normal(size=500), rng.uniform(0.01, 0.5, 500)
    start = rng.normal(size=(4, 2))
    replayed, folded = QTable(4, 2), QTable(4, 2)
    replayed.assign(start)
    folded.assign(start)
    replayed.td_update(s, a, targets, alphas)
    fold: dict[tuple[int, int], list[float]] = {}
    for cell, target, alpha in zip(zip(s.tolist(), a.tolist(), strict=True), targets, alphas, strict=True):
        k, b = fold.get(cell, [1.0, 0.0])
        fold[cell] = [k * (1 - alpha), b * (1 - alpha) + alpha * target]
    cells = list(fold)
    folded.td_fold(
        [c[0] for c in cells], [c[1] for c in cells], [fold[c][0] for c in cells], [fold[c][1] for c in cells]
    )
    np.testing.assert_allclose(folded.to_array(), replayed.to_array(), rtol=1e-12, atol=1e-12)
    with pytest.raises(QTableError, match="at most once"):
        folded.td_fold([0, 0], [1, 1], [1.0, 1.0], [0.0, 0.0])
