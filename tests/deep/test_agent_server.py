"""The single-process agent (``AgentServer``): the Agent loop as a process, its REPL requests, checkpoints, restarts."""

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
from beamrl.fencing import CheckpointInUse
from beamrl.rl.deep.config import config_for
from beamrl.rl.env_server import EnvServer

pytest.importorskip("torch")

from beamrl.rl.deep.actor import Actor
from beamrl.rl.deep.agent import Agent
from beamrl.rl.deep.agent_server import AgentServer
from beamrl.rl.deep.learner import Learner

SMALL = {"hidden": [16], "learning_starts": 100, "batch_size": 16, "checkpoint_every": 50}


def _cfg(**more: Any) -> dict[str, Any]:
    return dataclasses.asdict(config_for("dqn", "CartPole-v1", SMALL | more))


async def _until_done(node: Node, name: Any, rows: list[dict[str, Any]], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        p = await node.call(name, ["progress"])
        rows.extend(p["rows"])
        if p["done"]:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the agent did not finish before the deadline")


async def test_the_agent_process_learns_like_the_agent_loop(node: Node, tmp_path: Path) -> None:
    cfg = _cfg(eval_every=0, keep_best=False)
    await node.start(AgentServer, "dqn", "CartPole-v1", cfg, 0, 400, str(tmp_path), name="agent")
    rows: list[dict[str, Any]] = []
    await _until_done(node, "agent", rows)
    assert any("episode_return" in r for r in rows) and max(r["step"] for r in rows) <= 400
    stats = await node.call("agent", ["stats"])
    assert stats["steps"] == 400 and stats["updates"] == 301  # one per env step from step 100 to 400
    assert stats["checkpoints"] >= 6 and np.isfinite(stats["loss"])
    final = await node.call("agent", ["final"])
    assert final["selected"] == "last" and final["env_steps"] == 400

    loop = Agent("dqn", "CartPole-v1", config_for("dqn", "CartPole-v1", cfg), seed=0, total_steps=400)
    loop.run()  # the same seed in one plain loop: the process changes nothing of the algorithm
    expected = loop.algorithm.policy_params()
    assert final["params"].keys() == expected.keys()
    for key, value in expected.items():
        np.testing.assert_array_equal(final["params"][key], value)


async def test_repl_requests_and_one_writer_per_checkpoint(node: Node, tmp_path: Path) -> None:
    cfg = _cfg(eval_every=200)
    pid = await node.start(AgentServer, "dqn", "CartPole-v1", cfg, 0, 300, str(tmp_path), name="agent")
    assert await node.call(pid, ["act", [0.0, 0.0, 0.05, 0.0]]) in (0, 1)
    with pytest.raises(Rejected, match="act takes one observation"):
        await node.call(pid, ["act", [1.0, 2.0]])
    with pytest.raises(Rejected, match="unknown request"):
        await node.call(pid, ["fly"])
    with pytest.raises(CheckpointInUse, match="already writes this checkpoint"):
        await node.start(AgentServer, "dqn", "CartPole-v1", cfg, 0, 300, str(tmp_path))
    with pytest.raises(CheckpointInUse, match="already writes this checkpoint"):
        await node.start(Learner, "dqn", "CartPole-v1", cfg, 0, str(tmp_path))
    rows: list[dict[str, Any]] = []
    await _until_done(node, pid, rows)
    assert [r["step"] for r in rows if "eval_mean_return" in r] == [200]
    assert await node.call(pid, ["checkpoint"]) == 300
    best = (await node.call(pid, ["final"]))["params"]
    await node.stop(pid)

    # a new agent on the same directory, with a larger budget, continues from the checkpoint
    again = await node.start(AgentServer, "dqn", "CartPole-v1", cfg, 0, 500, str(tmp_path))
    stats = await node.call(again, ["stats"])
    assert stats["restored_from"] == 300 and stats["updates"] == stats["steps"] - 99  # 201 at step 300, and on
    more: list[dict[str, Any]] = []
    await _until_done(node, again, more)
    assert min(r["step"] for r in more) > 300 and (await node.call(again, ["stats"]))["steps"] == 500
    final = await node.call(again, ["final"])
    assert final["selected"] == "best periodic evaluation" and final["env_steps"] == 500
    if final["version"] == 101:  # still the evaluation at step 200 (update 101): the best parameters came back
        for key, value in best.items():
            np.testing.assert_array_equal(final["params"][key], value)
    await node.stop(again)


async def test_a_killed_agent_restarts_from_its_checkpoint(node: Node, tmp_path: Path) -> None:
    spec = child(AgentServer, "dqn", "CartPole-v1", _cfg(eval_every=0), 0, 100_000, str(tmp_path), name="agent")
    await node.start_supervisor([spec], strategy="one_for_one", name="sup")
    deadline = time.monotonic() + 60
    while (await node.call("agent", ["stats"]))["checkpoints"] < 2:  # every 50 updates
        assert time.monotonic() < deadline, "no checkpoints"
        await asyncio.sleep(0.02)
    old = node.whereis("agent")
    node.kill("agent")  # maybe in the middle of a slice: its thread finishes, fenced off
    while node.whereis("agent") in (None, old):
        assert time.monotonic() < deadline, "no restart"
        await asyncio.sleep(0.01)
    stats = await node.call("agent", ["stats"])
    assert stats["restored_from"] is not None and stats["restored_from"] >= 150  # 100 steps + 50 updates at least
    assert (stats["restored_from"] - 99) % 50 == 0  # a checkpoint every 50 updates, one update per step
    assert stats["updates"] == stats["steps"] - 99
    assert (await node.which_children("sup"))[0].restarts == 1
    before = (await node.call("agent", ["stats"]))["checkpoints"]
    await node.call("agent", ["checkpoint"])  # the restarted agent writes: the fence is its own now
    assert (await node.call("agent", ["stats"]))["checkpoints"] > before
    await node.stop("sup")


async def test_both_trees_can_step_envservers_instead_of_local_envs(node: Node, tmp_path: Path) -> None:
    """The issue's "owns an environment (local or vector env, or an EnvServer)": one EnvServer per env."""
    cfg = dataclasses.asdict(config_for("ppo", "CartPole-v1", {"hidden": [16], "num_envs": 2, "n_steps": 32}))
    for name in ("env0", "env1", "env2", "env3"):
        await node.start(EnvServer, "CartPole-v1", name=name)
    await node.start(AgentServer, "ppo", "CartPole-v1", cfg, 0, 256, None, ["env0", "env1"], name="agent")
    await node.start(Learner, "ppo", "CartPole-v1", cfg, 0, name="learner")
    await node.start(Actor, "ppo", "CartPole-v1", cfg, 0, 256, None, "learner", ["env2", "env3"], name="actor")
    for acting in ("agent", "actor"):
        rows: list[dict[str, Any]] = []
        await _until_done(node, acting, rows)
        assert any("episode_return" in r for r in rows)
    for name in ("env0", "env1", "env2", "env3"):  # every env step went through the servers: 128 each
        info = await node.call(name, ["info"])
        assert info["steps"] == 128 and info["episodes"] >= 1
    assert (await node.call("learner", ["stats"]))["updates"] == 4  # rollouts of 2 x 32 steps
    with pytest.raises(ValueError, match="steps 2 environments, it was given 1"):
        await node.start(AgentServer, "ppo", "CartPole-v1", cfg, 0, 256, None, ["env0"])
