"""Data-parallel learners: G=2 replicas over gloo on loopback, as real OS processes."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from beamrl import Node
from beamrl.errors import Rejected

pytest.importorskip("torch")

import torch.distributed as dist

from beamrl.rl.deep.config import config_for
from beamrl.rl.deep.distributed import DataParallelLearner, replicate
from beamrl.rl.deep.learner import Learner, make_algorithm
from beamrl.rl.deep.params import load_params
from tests.deep.ddp_replica import CFG, replica_batch

STEPS = 12
REPLICA = Path(__file__).with_name("ddp_replica.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_replicas(world_size: int, tmp_path: Path, checkpoint: Path | None = None) -> list[dict[str, object]]:
    address = f"tcp://127.0.0.1:{_free_port()}"
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "PYTHONPATH": str(REPLICA.parents[2])}
    procs = [
        subprocess.Popen(
            [sys.executable, str(REPLICA), str(rank), str(world_size), address, str(STEPS), str(tmp_path)]
            + ([str(checkpoint)] if checkpoint is not None and rank == 0 else []),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for rank in range(world_size)
    ]
    outputs = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=90)
            assert proc.returncode == 0, err
            outputs.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return outputs


def _single_learner(batches: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    algo = make_algorithm("dqn", "CartPole-v1", config_for("dqn", "CartPole-v1", CFG), 0)
    for batch in batches:
        algo.learn(batch)
    return algo.policy_params()


def _both(step: int) -> dict[str, np.ndarray]:
    """Replica 0's and replica 1's batches of ``step`` as one batch."""
    return {k: np.concatenate([replica_batch(0, step)[k], replica_batch(1, step)[k]]) for k in replica_batch(0, step)}


def _assert_close(params: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> None:
    assert params.keys() == reference.keys()
    for name in params:
        np.testing.assert_allclose(params[name], reference[name], rtol=0, atol=1e-6, err_msg=name)


def test_two_replicas_stay_identical_and_step_on_the_mean_gradient(tmp_path: Path) -> None:
    replicas = _run_replicas(2, tmp_path)
    assert [r["version"] for r in replicas] == [STEPS, STEPS]
    assert replicas[0]["digest"] == replicas[1]["digest"], "the replicas' weights drifted apart"
    assert replicas[0]["refused"] == ""
    assert "replica 1 does not publish" in str(replicas[1]["refused"])
    params, _ = load_params(tmp_path / "replica0.safetensors")
    # DQN's loss is a mean over the batch, so the mean of two equal batches' gradients is
    # the gradient of their concatenation: one learner stepping on both batches at once
    _assert_close(params, _single_learner([_both(step) for step in range(STEPS)]))
    alone = _single_learner([replica_batch(0, step) for step in range(STEPS)])
    # the averaging matters: replica 0 did not follow its own batches alone
    assert max(float(np.abs(params[k] - alone[k]).max()) for k in params) > 1e-3


async def test_replicas_continue_from_replica_zeros_checkpoint_as_one(node: Node, tmp_path: Path) -> None:
    """Rank 0 resumes (weights, Adam moments, update count); rank 1 starts fresh and becomes its copy."""
    warmup = [replica_batch(0, 100 + i) for i in range(3)]
    checkpoint = tmp_path / "learner"
    pid = await node.start(Learner, "dqn", "CartPole-v1", CFG, 0, str(checkpoint))
    for batch in warmup:
        await node.call(pid, ["learn", batch])
    await node.stop(pid)  # terminate() writes the checkpoint
    replicas = await asyncio.to_thread(_run_replicas, 2, tmp_path, checkpoint)
    assert [r["version"] for r in replicas] == [3 + STEPS, 3 + STEPS]
    assert replicas[0]["digest"] == replicas[1]["digest"], "rank 1 did not take rank 0's optimizer state"
    params, _ = load_params(tmp_path / "replica0.safetensors")
    _assert_close(params, _single_learner(warmup + [_both(step) for step in range(STEPS)]))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rank": 2, "world_size": 2, "address": "tcp://127.0.0.1:29500"}, "rank must be an integer in 0..1"),
        ({"rank": 0, "world_size": 0, "address": "tcp://127.0.0.1:29500"}, "world_size must be a positive"),
        ({"rank": 0, "world_size": 2, "address": "127.0.0.1:29500"}, "address must look like"),
        ({"rank": 0, "world_size": 2, "address": "tcp://127.0.0.1:29500", "backend": "mpi"}, "backend must be one"),
    ],
)
async def test_bad_group_arguments_fail_the_start(node: Node, kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        await node.start(DataParallelLearner, "dqn", "CartPole-v1", CFG, 0, **kwargs)


async def test_only_replica_zero_checkpoints(node: Node, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="only replica 0 writes checkpoints"):
        await node.start(
            DataParallelLearner,
            "dqn",
            "CartPole-v1",
            CFG,
            0,
            str(tmp_path),
            rank=1,
            world_size=2,
            address="tcp://127.0.0.1:29500",
        )


def test_replicate_refuses_an_algorithm_that_does_not_sync_gradients() -> None:
    algo = make_algorithm("ppo", "CartPole-v1", config_for("ppo", "CartPole-v1", {}), 0)
    with pytest.raises(ValueError, match="PG cannot be replicated"):
        replicate(algo)


async def test_a_replica_learns_up_to_its_hold_and_refuses_beyond(node: Node) -> None:
    """A group of one, in this process: ``hold``, and the one-group-per-process rule."""
    group = {"rank": 0, "world_size": 1, "address": f"tcp://127.0.0.1:{_free_port()}"}
    pid = await node.start(DataParallelLearner, "dqn", "CartPole-v1", CFG, 0, **group)
    try:
        with pytest.raises(RuntimeError, match="already belongs to a data-parallel group"):
            await node.start(DataParallelLearner, "dqn", "CartPole-v1", CFG, 0, **group)
        await node.call(pid, ["learn", replica_batch(0, 0)])
        assert await node.call(pid, ["hold", 2]) == 1
        assert (await node.call(pid, ["learn", replica_batch(0, 1)]))["version"] == 2
        with pytest.raises(Rejected, match="replica 0 holds at version 2"):
            await node.call(pid, ["learn", replica_batch(0, 2)])
        with pytest.raises(Rejected, match="replica 0 is at version 2, past 1"):
            await node.call(pid, ["hold", 1])
        stats = await node.call(pid, ["stats"])
        assert stats["version"] == 2 and stats["hold_at"] == 2 and stats["world_size"] == 1
        version, _ = await node.call(pid, ["get_params", None])  # replica 0 publishes
        assert version == 2
    finally:
        await node.stop(pid)
    assert not dist.is_initialized()  # stopping it left the group
