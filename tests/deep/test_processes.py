"""The Learner and Actor processes: versioned parameters, restarts from checkpoints, the REPL requests."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from beamrl import Node, child
from beamrl.errors import Rejected
from beamrl.rl.deep.config import config_for

pytest.importorskip("torch")

from beamrl.rl.deep.actor import Actor
from beamrl.rl.deep.learner import Learner

CFG = dataclasses.asdict(config_for("dqn", "CartPole-v1", {"hidden": [16], "batch_size": 8, "checkpoint_every": 2}))


def _batch(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "state": rng.normal(size=(8, 4)).astype(np.float32),
        "next_state": rng.normal(size=(8, 4)).astype(np.float32),
        "action": rng.integers(0, 2, 8),
        "reward": np.ones(8, np.float32),
        "discount": np.full(8, 0.99, np.float32),
    }


async def _poll(check: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met before the deadline")


async def test_get_params_answers_only_when_newer(node: Node) -> None:
    pid = await node.start(Learner, "dqn", "CartPole-v1", CFG, 0)
    version, params = await node.call(pid, ["get_params", None])
    assert version == 0 and "q.body.0.weight" in params
    assert await node.call(pid, ["get_params", 0]) is None
    reply = await node.call(pid, ["learn", _batch(0)])
    assert reply["version"] == 1 and reply["td"].shape == (8,)
    assert np.isfinite(reply["stats"]["loss"])
    newer = await node.call(pid, ["get_params", 0])
    assert newer is not None and newer[0] == 1
    assert not np.array_equal(newer[1]["q.body.0.weight"], params["q.body.0.weight"])
    assert await node.call(pid, ["get_params", 1]) is None
    stats = await node.call(pid, ["stats"])
    assert stats["updates"] == 1 and stats["algo"] == "dqn"
    with pytest.raises(Rejected, match="unknown request"):
        await node.call(pid, ["fly"])
    with pytest.raises(Rejected, match="no checkpoint directory"):
        await node.call(pid, ["checkpoint"])


async def test_a_killed_learner_restarts_from_its_checkpoint(node: Node, tmp_path: Path) -> None:
    spec = child(Learner, "dqn", "CartPole-v1", CFG, 0, str(tmp_path), name="learner")
    await node.start_supervisor([spec], strategy="one_for_one", name="sup")
    for i in range(4):
        await node.call("learner", ["learn", _batch(i)])
    _, at_4 = await node.call("learner", ["get_params", None])  # checkpoint_every=2: the last one is at 4
    await node.call("learner", ["learn", _batch(99)])  # lost with the kill
    old = node.whereis("learner")
    node.kill("learner")

    async def restarted() -> bool:
        pid = node.whereis("learner")
        return pid is not None and pid != old

    await _poll(restarted)
    stats = await node.call("learner", ["stats"])
    assert stats["restored_from"] == 4 and stats["version"] == 4
    version, params = await node.call("learner", ["get_params", None])
    assert version == 4
    for k, v in at_4.items():
        np.testing.assert_array_equal(params[k], v)
    children = await node.which_children("sup")
    assert children[0].restarts == 1


async def test_a_gracefully_stopped_learner_checkpoints_and_a_new_one_resumes(node: Node, tmp_path: Path) -> None:
    pid = await node.start(Learner, "dqn", "CartPole-v1", CFG, 0, str(tmp_path))
    for i in range(3):
        await node.call(pid, ["learn", _batch(i)])
    _, before = await node.call(pid, ["get_params", None])
    await node.stop(pid)  # terminate() writes a checkpoint at version 3
    again = await node.start(Learner, "dqn", "CartPole-v1", CFG, 0, str(tmp_path))
    version, after = await node.call(again, ["get_params", None])
    assert version == 3
    for k, v in before.items():
        np.testing.assert_array_equal(after[k], v)


async def test_the_actor_feeds_the_learner_and_answers_the_repl(node: Node, tmp_path: Path) -> None:
    cfg = dataclasses.asdict(
        config_for("dqn", "CartPole-v1", {"hidden": [16], "learning_starts": 100, "batch_size": 16, "eval_every": 200})
    )
    await node.start(Learner, "dqn", "CartPole-v1", cfg, 0, str(tmp_path / "learner"), name="learner")
    await node.start(Actor, "dqn", "CartPole-v1", cfg, 0, 400, str(tmp_path / "actor"), name="actor")

    async def done() -> Any:
        p = await node.call("actor", ["progress"])
        rows.extend(p["rows"])
        return p["done"]

    rows: list[dict[str, Any]] = []
    await _poll(done, timeout=60)
    assert any("episode_return" in r for r in rows) and any("eval_mean_return" in r for r in rows)
    assert (await node.call("learner", ["stats"]))["updates"] == 301  # one per env step from step 100 to 400
    action = await node.call("actor", ["act", [0.0, 0.0, 0.05, 0.0]])
    assert action in (0, 1)
    final = await node.call("actor", ["final"])
    assert final["spec"]["kind"] == "q" and "q.body.0.weight" in final["params"]
