"""Ape-X's processes in one node: actors feed the replay, the loop drives the learner, params flow back."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from beamrl import Node, Rejected
from beamrl.rl.apex.actor import ApexActor
from beamrl.rl.apex.config import apex_config
from beamrl.rl.apex.loop import LearnerLoop
from beamrl.rl.replay_server import ReplayServer
from beamrl.testing import eventually

pytest.importorskip("torch")
pytest.importorskip("gymnasium")

from beamrl.rl.deep.config import config_for
from beamrl.rl.deep.learner import Learner, make_algorithm
from beamrl.rl.deep.params import NumpyPolicy

SMALL = {"hidden": [32, 32], "batch_size": 64, "min_replay": 200, "pull_every": 100, "num_envs": 2}


async def _stats(node: Node, target: Any) -> dict[str, Any]:
    stats: dict[str, Any] = await node.call(target, ["stats"])
    return stats


async def test_actors_feed_the_replay_and_follow_the_learner() -> None:
    cfg = apex_config("CartPole-v1", SMALL)
    async with Node("apex-one") as node:
        await node.start(ReplayServer, 10_000, prioritized=True, n_step=1, rate_limiter=cfg.limiter(), name="replay")
        await node.start(Learner, "dqn", "CartPole-v1", cfg.learner_overrides(), 0, name="learner")
        for i in range(2):
            await node.start(ApexActor, "CartPole-v1", cfg.to_data(), i, 2, 0, name=f"actor-{i}")
        await node.start(LearnerLoop, "replay", "learner", cfg.batch_size, name="loop")

        async def learned() -> bool:
            return (await _stats(node, "loop"))["updates"] >= 30

        await eventually(learned, timeout=60.0, what="30 learner updates")

        async def actors_follow() -> bool:
            versions = [(await node.call(f"actor-{i}", ["progress"]))["version"] for i in range(2)]
            return min(versions) > 0

        await eventually(actors_follow, timeout=30.0, what="both actors pulling newer parameters")
        replay = await _stats(node, "replay")
        assert replay["total_added"] >= cfg.min_replay
        limiter = replay["rate_limiter"]
        # the learner never samples more than the ratio allows
        allowance = limiter["samples_per_insert"] * (limiter["inserts"] - limiter["min_size"]) + limiter["error_buffer"]
        assert limiter["samples"] <= allowance
        progress = await node.call("actor-0", ["progress"])
        # 2 actors x 2 envs: the four ε slots of Ape-X's schedule, two per actor
        assert progress["epsilon"] == pytest.approx([0.4, 0.4 ** (1 + 7 / 3)]) and progress["sent"] > 0
        assert (await node.call("actor-1", ["progress"]))["epsilon"] == pytest.approx([0.4 ** (1 + 14 / 3), 0.4**8])
        assert await node.call("actor-0", ["act", [0.0, 0.0, 0.05, 0.0]]) in (0, 1)
        with pytest.raises(Rejected, match="cannot act on"):
            await node.call("actor-0", ["act", [1.0, 2.0]])
        with pytest.raises(Rejected, match="unknown request"):
            await node.call("loop", ["jump"])
        assert await node.call("actor-0", ["plain_rate", 0.2]) > 0  # the bench's floor, in its process
        with pytest.raises(Rejected, match="unknown request"):
            await node.call("actor-0", ["plain_rate", 600])  # it blocks the actor: at most 10 s
        assert (await node.call("actor-0", ["stats"]))["steps"] > progress["steps"] - 1  # still running


def test_the_actor_numpy_forward_pass_agrees_with_the_learner_torch_net() -> None:
    """After real updates, the parameters a learner publishes give the same Q-values in numpy (<= 1e-5)."""
    import torch

    cfg = apex_config("CartPole-v1")
    algo = make_algorithm("dqn", "CartPole-v1", config_for("dqn", "CartPole-v1", cfg.learner_overrides()), 0)
    rng = np.random.default_rng(0)
    for _ in range(5):
        n = 64
        batch = {
            "state": rng.normal(size=(n, 4)).astype(np.float32),
            "action": rng.integers(0, 2, n),
            "reward": rng.normal(size=n).astype(np.float32),
            "next_state": rng.normal(size=(n, 4)).astype(np.float32),
            "discount": np.full(n, 0.97, np.float32),
            "weights": np.ones(n, np.float32),
        }
        algo.learn(batch)
    obs = (rng.normal(size=(256, 4)) * 2).astype(np.float32)
    policy = NumpyPolicy(algo.spec(), algo.policy_params())
    with torch.no_grad():
        expected = algo.modules["q"](torch.from_numpy(obs)).numpy()
    np.testing.assert_allclose(policy.q_values(obs), expected, atol=1e-5, rtol=0)
    assert np.abs(expected).max() > 0.01  # not a trivially zero network
