"""LearningFeed: live curves from a real recorder, and the recorder's ``["metrics", cursor]``."""

from __future__ import annotations

import itertools

from beamrl import Node
from beamrl.dashboard.learning import MEAN_WINDOW, LearningFeed, Series, watch
from beamrl.rl.env_server import EnvServer
from beamrl.rl.qserver import QServer
from beamrl.rl.training import Recorder, RunSpec
from beamrl.testing import eventually


def test_a_series_thins_itself_evenly() -> None:
    series = Series(max_points=10)
    for i in range(100):
        series.add(i, i * 2)
    assert len(series.points) <= 10
    xs = [x for x, _ in series.points]
    assert xs[0] == 0 and xs == sorted(xs)
    assert len({b - a for a, b in itertools.pairwise(xs)}) == 1  # evenly spaced
    assert all(y == 2 * x for x, y in series.points)


async def _recorder(node: Node, episodes: int = 1000) -> None:
    spec = RunSpec("q-learning", "FrozenLake-v1", episodes=episodes, eval_every=50, eval_episodes=5)
    await node.start(QServer, 16, 4, name="qserver")
    await node.start(Recorder, spec.to_data(), 1, name="recorder")


async def test_the_feed_follows_episodes_evaluations_and_events(node: Node) -> None:
    await _recorder(node)
    feed = LearningFeed(node, "recorder")
    first = await feed.poll()
    assert first is not None and first["points"] == {} and first["run"]["algo"] == "q-learning"
    returns = [float(i % 2) for i in range(120)]
    for ret in returns:
        node.cast("recorder", ["episode", 0, ret, 10, ret > 0, 0.5])
    await eventually(lambda: node.call("recorder", ["summary"]), what="recorder answers")

    async def all_read() -> bool:
        update = await feed.poll()
        return update is not None and feed.cursor.get("rows") == 120

    await eventually(all_read, what="120 episodes read")
    points = {name: s.points for name, s in feed.series.items()}
    assert [y for _, y in points["return"]] == returns
    last_mean = sum(returns[-MEAN_WINDOW:]) / MEAN_WINDOW
    assert points["return_mean"][-1] == [120, last_mean]
    assert [x for x, _ in points["eval_success"]] == [50.0, 100.0]
    assert all(0.0 <= y <= 1.0 for _, y in points["eval_success"])
    assert points["epsilon"][-1][1] == 0.5
    history = feed.history()
    assert history["run"]["env_id"] == "FrozenLake-v1" and len(history["points"]["return"]) == 120
    again = await feed.poll()
    assert again is not None and again["points"] == {}  # nothing new: nothing sent twice


async def test_the_recorder_answers_from_the_cursor_on(node: Node) -> None:
    await _recorder(node, episodes=5000)
    for i in range(30):
        node.cast("recorder", ["episode", 0, float(i), 1, False, 0.1])
    await node.call("recorder", ["summary"])
    part = await node.call("recorder", ["metrics", {}], timeout=5.0)
    assert part["cursor"]["rows"] == 30 and part["rows"]["episode"] == list(range(1, 31))
    assert part["steps"] == 30 and part["finished"] is False
    rest = await node.call("recorder", ["metrics", {"rows": 25, "evals": 0, "events": 0}])
    assert rest["rows"]["return"] == [25.0, 26.0, 27.0, 28.0, 29.0] and rest["cursor"]["rows"] == 30


async def test_watching_an_environment_process(node: Node) -> None:
    await node.start(EnvServer, "FrozenLake-v1", name="env-0")
    await node.call("env-0", ["reset", 0])
    await node.call("env-0", ["step", 2])
    seen = await watch(node, "env-0")
    assert seen is not None and "SFFF" in seen["text"] and seen["obs"] == await node.call("env-0", ["observe"])
    assert seen["env_id"] == "FrozenLake-v1" and seen["episodes"] == 1 and seen["steps"] == 1
    assert await watch(node, "nobody") is None


async def test_a_trainers_own_scalars_become_curves_of_their_own(node: Node) -> None:
    """Deep and distributed trainers add ``scalars`` (loss, replay size, each actor's parameter lag)."""
    await _recorder(node)
    feed = LearningFeed(node, "recorder")
    reply = await node.call("recorder", ["metrics", {}])
    reply["scalars"] = {"loss": [[10, 0.5], [20, 0.25]], "param_lag/actor-1": [[20, 3]]}
    update = feed.absorb(reply)
    assert update["points"] == {"loss": [[10, 0.5], [20, 0.25]], "param_lag/actor-1": [[20, 3]]}
    assert feed.history()["points"]["loss"] == [[10, 0.5], [20, 0.25]]


async def test_a_distributed_run_reports_each_workers_parameter_lag(node: Node) -> None:
    spec = RunSpec("q-learning", "FrozenLake-v1", episodes=1000, eval_every=500, eval_episodes=5)
    await node.start(QServer, 16, 4, name="qserver")
    await node.start(Recorder, spec.to_data(), 2, name="recorder")
    version, table = await node.call("qserver", ["versioned_table"])
    assert table.shape == (16, 4)
    assert await node.call("recorder", ["next", 0, version]) and await node.call("recorder", ["next", 1, version])
    for s in range(3):  # three writes the workers' copies have not seen
        await node.call("qserver", ["set", s, 0, 1.0])
    now = await node.call("qserver", ["version"])
    assert now > version
    assert await node.call("recorder", ["next", 1, now])  # worker 1 took a fresh copy
    feed = LearningFeed(node, "recorder")
    update = await feed.poll()
    assert update is not None
    assert update["points"]["param_lag/worker-0"] == [[0, now - version]]
    assert update["points"]["param_lag/worker-1"] == [[0, 0]]


async def test_a_run_on_one_node_has_no_lag_curve(node: Node) -> None:
    await _recorder(node)
    assert await node.call("recorder", ["next", 0, 0])
    reply = await node.call("recorder", ["metrics", {}])
    assert reply["scalars"] == {}
