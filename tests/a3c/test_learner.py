"""The A3C learner: the gradient a worker pushes is the one it applies; stale and bad pushes are refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from beamrl import BeamError, Node, Rejected, child
from beamrl.testing import eventually

pytest.importorskip("torch")
pytest.importorskip("gymnasium")

import torch

from beamrl.rl.a3c.config import a3c_config
from beamrl.rl.a3c.grads import SharedModel, compute_gradients, load_into, make_actor_critic
from beamrl.rl.a3c.learner import A3CLearner
from beamrl.rl.a3c.worker import A3CWorker, rollout
from beamrl.rl.deep.acting import EnvBatch
from beamrl.rl.deep.params import NumpyPolicy

ENV = "CartPole-v1"
CFG = {"hidden": [16, 16], "num_envs": 4, "n_steps": 5, "max_staleness": 3}


def fixed_rollout(params: dict[str, np.ndarray], spec: dict[str, Any], seed: int = 3) -> dict[str, np.ndarray]:
    envs = EnvBatch(ENV, 4, seed)
    return rollout(envs, NumpyPolicy(spec, params), np.random.default_rng(seed), 5)


def assert_params_equal(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert sorted(a) == sorted(b)
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=0, atol=1e-7, err_msg=name)


async def test_the_learner_applies_exactly_the_gradient_a_remote_worker_computed() -> None:
    """Across ZeroMQ: the push carries the worker's gradient bit for bit; the step equals a local one."""
    cfg = a3c_config(ENV, CFG)
    async with Node("learner", listen="tcp://127.0.0.1:0") as a, Node("worker", listen="tcp://127.0.0.1:0") as b:
        await a.start(A3CLearner, ENV, cfg.to_data(), 5, name="learner")
        await b.connect(a.address)
        learner = ("learner", "learner")
        version, params = await b.call(learner, ["get_params", None])
        spec = await b.call(learner, ["spec"])
        assert version == 0
        # the worker's side: its own copy, a fixed rollout, the gradient
        local = make_actor_critic(ENV, cfg)
        load_into(local, params)
        batch = fixed_rollout(params, spec)
        grads, stats = compute_gradients(local, batch, cfg)
        assert any(np.abs(g).sum() > 0 for g in grads.values()) and np.isfinite(stats["loss"])
        # the gradient is d loss / d params: a small step along it lowers the loss on that batch
        before = stats["loss"]
        with torch.no_grad():
            for name, p in local.named_parameters():
                p -= 1e-3 * torch.from_numpy(grads["ac." + name])
        _, after = compute_gradients(local, batch, cfg)
        assert after["loss"] < before
        reply = await b.call(learner, ["push", version, grads, batch["rewards"].size])
        assert reply == {"version": 1, "applied": True, "lag": 0}
        _, pushed = await b.call(learner, ["get_params", 0])
        # the same shared-model step done here with the gradient as computed, never sent
        reference = SharedModel(cfg, ENV, 5)
        assert_params_equal(reference.policy_params(), params)
        reference.apply(reference.check(grads))
        assert_params_equal(reference.policy_params(), pushed)
        assert not all(np.array_equal(pushed[k], params[k]) for k in params)
        stats = await b.call(learner, ["stats"])
        assert stats["applied"] == 1 and stats["env_steps"] == 20


async def test_stale_pushes_are_dropped_and_counted_and_leave_the_parameters_alone() -> None:
    cfg = a3c_config(ENV, CFG)  # max_staleness 3
    async with Node("n") as node:
        await node.start(A3CLearner, ENV, cfg.to_data(), 0, name="learner")
        _, params = await node.call("learner", ["get_params", None])
        spec = await node.call("learner", ["spec"])
        local = make_actor_critic(ENV, cfg)
        load_into(local, params)
        grads, _ = compute_gradients(local, fixed_rollout(params, spec), cfg)
        for _ in range(4):  # every push based on version 0: lags 0, 1, 2, 3 are within max_staleness
            reply = await node.call("learner", ["push", 0, grads, 20])
            assert reply["applied"]
        assert reply["lag"] == 3 and reply["version"] == 4
        snapshot = (await node.call("learner", ["get_params", None]))[1]
        too_old = await node.call("learner", ["push", 0, grads, 20])  # lag 4 > 3
        from_the_future = await node.call("learner", ["push", 9, grads, 20])  # a version never published
        assert too_old == {"version": 4, "applied": False, "lag": 4}
        assert from_the_future == {"version": 4, "applied": False, "lag": -5}
        assert await node.call("learner", ["get_params", 4]) is None  # nothing newer
        assert_params_equal((await node.call("learner", ["get_params", None]))[1], snapshot)
        stats = await node.call("learner", ["stats"])
        assert (stats["applied"], stats["stale"], stats["max_lag"], stats["env_steps"]) == (4, 2, 3, 80)


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda g: {k: v for k, v in list(g.items())[1:]}, "missing"),
        (lambda g: g | {"ac.extra": np.zeros(2, np.float32)}, "unknown"),
        (lambda g: g | {"ac.pi.0.weight": np.zeros((3, 3), np.float32)}, "shape"),
        (lambda g: g | {"ac.pi.0.bias": np.full(16, np.nan, np.float32)}, "NaN"),
        (lambda g: [1, 2], "dict of arrays"),
    ],
)
async def test_a_gradient_that_does_not_fit_is_refused_and_the_learner_keeps_serving(mangle: Any, message: str) -> None:
    cfg = a3c_config(ENV, CFG)
    async with Node("n") as node:
        pid = await node.start(A3CLearner, ENV, cfg.to_data(), 0, name="learner")
        model = SharedModel(cfg, ENV, 0)
        grads = {k: np.ones_like(v) for k, v in model.policy_params().items()}
        with pytest.raises(Rejected, match=message):
            await node.call("learner", ["push", 0, mangle(grads), 20])
        with pytest.raises(Rejected, match="push takes"):
            await node.call("learner", ["push", "0", grads, 20])
        assert node.whereis("learner") == pid
        assert (await node.call("learner", ["stats"]))["version"] == 0
        assert (await node.call("learner", ["push", 0, grads, 20]))["applied"]


async def test_a_killed_learner_resumes_from_its_checkpoint_and_a_worker_catches_up(tmp_path: Path) -> None:
    """Kill the learner: its supervisor restarts it from the checkpoint; the worker refetches (version went back)."""
    cfg = a3c_config(ENV, CFG | {"checkpoint_every": 10, "max_staleness": 1_000})
    async with Node("n") as node:
        learner = child(A3CLearner, ENV, cfg.to_data(), 0, str(tmp_path / "learner"), name="learner")
        await node.start_supervisor([learner], name="sup", max_restarts=5, max_seconds=10.0)
        await node.start(A3CWorker, ENV, cfg.to_data(), 0, 0, "learner", name="w")

        async def pushed(n: int) -> bool:
            return (await node.call("learner", ["stats"]))["version"] >= n

        await eventually(lambda: pushed(25), timeout=30.0, what="25 applied pushes")
        node.kill("learner")

        async def restarted() -> bool:
            try:
                stats = await node.call("learner", ["stats"])
            except BeamError:
                return False
            return stats["restored_from"] is not None

        await eventually(restarted, timeout=30.0, what="the learner restarted from its checkpoint")
        restored = (await node.call("learner", ["stats"]))["restored_from"]
        assert restored >= 20 and restored % 10 == 0
        await eventually(lambda: pushed(restored + 10), timeout=30.0, what="pushes applied after the restart")
        progress = await node.call("w", ["progress"])
        assert progress["version"] > restored and progress["pushes"] > 25
