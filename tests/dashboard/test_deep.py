"""A deep run's learning view: its recorder (``RunMetrics``) and the feed following a short run."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from beamrl import Node, Rejected
from beamrl.dashboard.learning import LearningFeed
from beamrl.rl.deep.metrics import RunMetrics
from beamrl.testing import eventually

RUN = {"algo": "dqn", "env_id": "CartPole-v1", "steps": 1000}
SMALL = {"hidden": [16], "learning_starts": 100, "eval_every": 300, "checkpoint_every": 100}


def _episode(step: int, ret: float, loss: float, eps: float | None = 0.5) -> dict[str, Any]:
    return {"step": step, "episode_return": ret, "episode_length": 10, "loss": loss, "epsilon": eps}


def _progress(rows: list[dict[str, Any]], steps: int, **gauges: Any) -> dict[str, Any]:
    return {"rows": rows, "events": [], "steps": steps, "done": False, "gauges": gauges}


async def test_the_recorder_keeps_rows_and_gauges_and_answers_from_the_cursor(node: Node) -> None:
    await node.start(RunMetrics, RUN, name="recorder")
    first = [_episode(10, 10.0, math.nan), _episode(20, 12.0, 0.5)]
    got = await node.call("recorder", ["record", _progress(first, 20, replay_size=20)])
    assert got == 2
    rows = [_episode(30, 9.0, 0.25, None), {"step": 30, "eval_mean_return": 11.5, "version": 7}]
    await node.call("recorder", ["record", _progress(rows, 30, replay_size=30, **{"param_lag/actor": 2})])
    await node.call("recorder", ["record", _progress([], 31, replay_size=31)])  # no new episode: no new gauge
    await node.call("recorder", ["record_event", {"event": "killed", "name": "agent", "step": 31}])
    reply = await node.call("recorder", ["metrics", {}])
    assert reply["rows"]["episode"] == [1, 2, 3] and reply["rows"]["return"] == [10.0, 12.0, 9.0]
    assert reply["rows"]["epsilon"] == [0.5, 0.5, None] and reply["rows"]["step"] == [10, 20, 30]
    assert reply["scalars"] == {  # the NaN loss (before learning started) is left out: JSON has no NaN
        "loss": [[2, 0.5], [3, 0.25]],
        "replay_size": [[2, 20.0], [3, 30.0]],
        "param_lag/actor": [[3, 2.0]],
    }
    assert reply["evals"] == [{"episode": 3, "mean_return": 11.5, "step": 30}]
    assert reply["events"] == [{"episode": 3, "event": "agent killed"}]
    assert reply["run"]["algo"] == "dqn" and reply["steps"] == 31 and reply["finished"] is False
    again = await node.call("recorder", ["metrics", reply["cursor"]])
    assert again["rows"]["episode"] == [] and again["scalars"] == {} and again["evals"] == again["events"] == []


async def test_a_paged_reply_sends_the_scalars_of_its_rows_only(node: Node) -> None:
    await node.start(RunMetrics, RUN, page=4, name="recorder")
    rows = [_episode(i, float(i), 1.0 / i) for i in range(1, 11)]
    await node.call("recorder", ["record", _progress(rows, 10)])
    seen: list[list[int]] = []
    cursor: dict[str, int] = {}
    while not seen or seen[-1]:
        part = await node.call("recorder", ["metrics", cursor])
        cursor = part["cursor"]
        assert [x for x, _ in part["scalars"].get("loss", [])] == part["rows"]["episode"]
        seen.append(part["rows"]["episode"])
    assert seen == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10], []]


async def test_a_bad_record_is_refused_and_the_recorder_keeps_serving(node: Node) -> None:
    await node.start(RunMetrics, RUN, name="recorder")
    with pytest.raises(Rejected, match="record takes an agent's progress reply"):
        await node.call("recorder", ["record", {"rows": [{"episode_return": "x", "step": 1}]}])
    with pytest.raises(Rejected, match="does not understand"):
        await node.call("recorder", ["metrics", "everything"])
    assert (await node.call("recorder", ["metrics", {}]))["rows"]["episode"] == []


class Follower:
    """An observer for ``train_deep``: a ``LearningFeed`` polling the run's recorder while it runs."""

    def __init__(self) -> None:
        self.feed: LearningFeed | None = None
        self.returns_while_running = 0

    @contextlib.asynccontextmanager
    async def __call__(self, node: Node) -> AsyncIterator[None]:
        feed = self.feed = LearningFeed(node, "recorder")

        async def follow() -> None:
            while True:
                update = await feed.poll()
                if update is not None and not update["run"]["finished"]:
                    self.returns_while_running += len(update["points"].get("return", []))
                await asyncio.sleep(0.05)

        task = asyncio.get_running_loop().create_task(follow())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await feed.poll()  # what came after the last poll: the recorder is still up


def _csv(out: Path) -> list[dict[str, str]]:
    with (out / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


@pytest.mark.timeout(120)
async def test_the_feed_follows_a_deep_run_through_a_kill_and_tensorboard_gets_the_loss(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    tb = pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
    del tb
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from beamrl.dashboard.tensorboard import TensorBoardWriter
    from beamrl.rl.deep.run import train_deep

    follower, out, logdir = Follower(), tmp_path / "run", tmp_path / "tb"
    await train_deep(
        "dqn",
        "CartPole-v1",
        800,
        out=out,
        overrides=SMALL,
        kill_at=[(300, "agent")],
        progress=False,
        observers=[follower, lambda node: TensorBoardWriter(node, logdir, period=0.2)],
    )
    assert follower.feed is not None and follower.returns_while_running > 0  # seen live, not only at the end
    points = {name: s.points for name, s in follower.feed.series.items()}
    rows = _csv(out)
    episodes = [r for r in rows if r["episode_return"]]
    assert [y for _, y in points["return"]] == [float(r["episode_return"]) for r in episodes]
    assert [x for x, _ in points["return"]] == list(range(1, len(episodes) + 1))
    losses = [(i, float(r["loss"])) for i, r in enumerate(episodes, 1) if math.isfinite(float(r["loss"]))]
    assert losses and points["loss"] == [[i, loss] for i, loss in losses]  # through the agent's restart
    evals = [float(r["eval_mean_return"]) for r in rows if r["eval_mean_return"]]
    assert evals and [y for _, y in points["eval_return"]] == evals
    replay = [y for _, y in points["replay_size"]]
    assert 0 < replay[0] < replay[-1] <= 800
    eps = [y for _, y in points["epsilon"]]
    assert eps[0] >= eps[-1] and all(0.0 <= e <= 1.0 for e in eps)
    assert "param_lag/actor" not in points  # one agent process acts on the live weights: no lag
    assert any(m["text"] == "agent killed" for m in follower.feed.marks)
    assert follower.feed.run["finished"] and follower.feed.run["algo"] == "dqn"

    events = EventAccumulator(str(logdir))
    events.Reload()
    logged = events.Scalars("losses/loss")
    assert [e.step for e in logged] == [i for i, _ in losses]
    assert [e.value for e in logged] == pytest.approx([loss for _, loss in losses], rel=1e-6)
    assert {"charts/episodic_return", "charts/replay_size", "eval/mean_return"} <= set(events.Tags()["scalars"])


@pytest.mark.timeout(120)
async def test_a_split_run_shows_the_actors_parameter_lag(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from beamrl.rl.deep.run import train_deep

    follower, out = Follower(), tmp_path / "run"
    sync = 4
    hyper = SMALL | {"param_sync_every": sync}
    summary = await train_deep(
        "dqn", "CartPole-v1", 600, out=out, overrides=hyper, progress=False, split=True, observers=[follower]
    )
    assert summary["processes"] == ["learner", "actor"] and set(summary["restarts"]) == {"learner", "actor"}
    assert follower.feed is not None
    lag = [y for _, y in follower.feed.series["param_lag/actor"].points]
    assert lag and all(0 <= y < sync for y in lag)  # the actor refreshes once it is `sync` updates behind
    assert max(lag) > 0
    assert follower.feed.series["loss"].points and follower.feed.series["replay_size"].points


@pytest.mark.timeout(180)
async def test_an_apex_run_shows_its_replay_its_inserts_and_each_actors_lag(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("gymnasium")
    from beamrl.rl.apex.run import train_apex

    follower, out = Follower(), tmp_path / "run"
    hyper = {"hidden": [32, 32], "batch_size": 64, "samples_per_insert": 8, "min_replay": 500, "eval_every": 2000}
    summary = await train_apex("CartPole-v1", 10_000, nodes=1, out=out, overrides=hyper, observers=[follower])
    assert "recorder" not in summary["restarts"]
    assert follower.feed is not None and follower.returns_while_running > 0
    points = {name: s.points for name, s in follower.feed.series.items()}
    rows = _csv(out)
    assert [y for _, y in points["return"]] == [float(r["episode_return"]) for r in rows if r["kind"] == "episode"]
    assert [y for _, y in points["eval_return"]] == [float(r["eval_mean_return"]) for r in rows if r["kind"] == "eval"]
    replay = [y for _, y in points["replay_size"]]
    assert replay == sorted(replay) and 0 < replay[-1] <= summary["replay"]["len"]
    assert max(y for _, y in points["inserts_per_s"]) > 0 and "samples_per_s" in points
    lags = {float(r["param_lag"]) for r in rows if r["kind"] == "actor"}
    assert points["param_lag/actor-0"] and {y for _, y in points["param_lag/actor-0"]} <= lags
    assert points["loss"] and follower.feed.run["algo"] == "apex-dqn" and follower.feed.run["finished"]


class PageState:
    """An observer serving the dashboard from the run's node; as the run closes it, the page's ``/api/state``
    once the page has the run's last rows (the recorder is still up then)."""

    def __init__(self) -> None:
        self.state: dict[str, Any] = {}

    @contextlib.asynccontextmanager
    async def __call__(self, node: Node) -> AsyncIterator[None]:
        aiohttp = pytest.importorskip("aiohttp", reason="the dashboard extra (aiohttp) is not installed")
        from beamrl.dashboard.server import Dashboard

        async with Dashboard(node, port=0, period=0.1) as dash, aiohttp.ClientSession() as http:
            yield

            async def finished() -> bool:
                async with http.get(f"{dash.url}api/state") as r:
                    self.state = await r.json()
                learning = self.state["learning"]
                return bool(learning and learning["run"]["finished"])

            await eventually(finished, 10.0, "the page showing the run finished")


async def test_the_recorder_names_the_worker_of_an_a3c_event(node: Node) -> None:
    await node.start(RunMetrics, RUN | {"algo": "a3c"}, name="recorder")
    lost = {"event": "worker_lost", "worker": 1, "node": "learner-actor2", "reason": "node down"}
    events = [lost, {"event": "worker_rejoined", "worker": 1}, {"event": "killed", "target": "actor-node"}]
    await node.call("recorder", ["record", {"rows": [], "events": events, "steps": 0}])
    texts = [e["event"] for e in (await node.call("recorder", ["metrics", {}]))["events"]]
    assert texts == ["worker lost (1)", "worker rejoined (1)", "actor-node killed"]


@pytest.mark.timeout(180)
async def test_an_a3c_run_shows_its_pushes_each_workers_lag_and_loss_on_the_page_and_in_tensorboard(
    tmp_path: Path,
) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("gymnasium")
    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from beamrl.dashboard.tensorboard import TensorBoardWriter
    from beamrl.rl.a3c.run import train_a3c

    follower, page, out, logdir = Follower(), PageState(), tmp_path / "run", tmp_path / "tb"
    hyper = {"hidden": [32, 32], "eval_every": 2000, "checkpoint_every": 50}
    summary = await train_a3c(
        "CartPole-v1",
        8000,
        nodes=0,
        local_worker=True,  # one worker, beside the learner: no node to start
        out=out,
        overrides=hyper,
        kill_at=[(3000, "learner")],
        observers=[follower, page, lambda node: TensorBoardWriter(node, logdir, period=0.2)],
    )
    assert summary["restarts"] == {"learner": 1, "a3c-worker-0": 0}  # the recorder is not among the run's
    assert follower.feed is not None and follower.returns_while_running > 0  # seen live, not only at the end
    points = {name: s.points for name, s in follower.feed.series.items()}
    rows = _csv(out)
    returns = [float(r["episode_return"]) for r in rows if r["kind"] == "episode"]
    assert returns and [y for _, y in points["return"]] == returns
    evals = [float(r["eval_mean_return"]) for r in rows if r["kind"] == "eval"]
    assert evals and [y for _, y in points["eval_return"]] == evals
    assert max(y for _, y in points["pushes_per_s"]) > 0 and all(y >= 0 for _, y in points["stale_per_s"])
    workers = [r for r in rows if r["kind"] == "worker"]
    lags = {float(r["param_lag"]) for r in workers if r["param_lag"]}
    assert points["param_lag/worker-0"] and {y for _, y in points["param_lag/worker-0"]} <= lags
    losses = {float(r["loss"]) for r in workers if r["loss"]}  # one worker: its loss is the mean
    assert points["loss"] and {y for _, y in points["loss"]} <= losses
    assert all(0 < y <= math.log(2) + 1e-6 for _, y in points["entropy"])  # of a policy over CartPole's 2 actions
    marks = [m["text"] for m in follower.feed.marks]
    assert "learner killed" in marks and "learner restarted" in marks
    assert follower.feed.run["algo"] == "a3c" and follower.feed.run["finished"]

    learning = page.state["learning"]  # what the page had when the run closed it
    assert [y for _, y in learning["points"]["return"]] == returns
    assert learning["points"]["param_lag/worker-0"] == points["param_lag/worker-0"]
    assert learning["run"]["algo"] == "a3c" and "learner killed" in [m["text"] for m in learning["marks"]]

    events = EventAccumulator(str(logdir))
    events.Reload()
    assert [e.value for e in events.Scalars("charts/episodic_return")] == returns
    assert [e.value for e in events.Scalars("losses/loss")] == pytest.approx([y for _, y in points["loss"]], rel=1e-6)
    assert {"scalars/pushes_per_s", "scalars/stale_per_s", "scalars/param_lag/worker-0", "eval/mean_return"} <= set(
        events.Tags()["scalars"]
    )
