"""Checkpoints: the files on disk, the algorithm state round trip, and resume equality."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from beamrl.fencing import CheckpointInUse, Fenced
from beamrl.rl.deep.checkpoint import CheckpointError, checkpoint_fence, read_checkpoint, write_checkpoint
from beamrl.rl.deep.config import config_for

torch = pytest.importorskip("torch")

from beamrl.rl.deep.agent import Agent  # noqa: E402
from beamrl.rl.deep.learner import make_algorithm  # noqa: E402

TINY = {
    "dqn": {
        "hidden": [16],
        "learning_starts": 100,
        "batch_size": 16,
        "prioritized": True,
        "n_step": 3,
        "eval_every": 0,
    },
    "ppo": {"hidden": [16], "num_envs": 2, "n_steps": 32, "minibatch_size": 16, "epochs": 2},
    "td3": {"hidden": [16], "learning_starts": 64, "batch_size": 16},
}
ENVS = {"dqn": "CartPole-v1", "ppo": "CartPole-v1", "td3": "Pendulum-v1"}


def test_a_checkpoint_is_swapped_in_whole(tmp_path: Path) -> None:
    first = write_checkpoint(tmp_path, {"a.bin": b"1"}, {"n": 1}, tag=1)
    second = write_checkpoint(tmp_path, {"a.bin": b"2"}, {"n": 2}, tag=2)
    found = read_checkpoint(tmp_path)
    assert found is not None and found[0] == second and found[1] == {"n": 2}
    assert not first.exists()  # the older one is gone once the new one is complete
    assert (second / "a.bin").read_bytes() == b"2"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["latest.json", second.name])
    assert read_checkpoint(tmp_path / "nothing") is None


def test_a_broken_checkpoint_pointer_is_refused(tmp_path: Path) -> None:
    (tmp_path / "latest.json").write_text(json.dumps({"folder": "ckpt-missing"}))
    with pytest.raises(CheckpointError, match="missing checkpoint folder"):
        read_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="plain names"):
        write_checkpoint(tmp_path, {"../evil": b""}, {})


@pytest.mark.parametrize("algo", ["dqn", "ppo", "td3"])
def test_algorithm_state_round_trip_gives_the_same_next_update(algo: str) -> None:
    cfg = config_for(algo, ENVS[algo], TINY[algo])
    agent = Agent(algo, ENVS[algo], cfg, seed=0, total_steps=200)
    agent.run()
    tensors, meta = agent.algorithm.state()
    assert any(k.startswith("optim/") for k in tensors) and "rng/torch" in tensors
    copy = make_algorithm(algo, ENVS[algo], cfg, seed=123)
    copy.load_state(tensors, json.loads(json.dumps(meta)))  # the meta travels as JSON
    batch = agent.acting.next_batches()[0]
    s1 = agent.algorithm.learn(batch)
    torch.set_rng_state(torch.from_numpy(tensors["rng/torch"]))  # PPO shuffles with torch's RNG
    s2 = copy.learn(batch)
    assert s1["loss"] == s2["loss"]
    for (k, a), b in zip(agent.algorithm.policy_params().items(), copy.policy_params().values(), strict=True):
        np.testing.assert_array_equal(a, b, err_msg=k)


@pytest.mark.parametrize("algo", ["dqn", "ppo"])
def test_resuming_gives_the_same_result_as_not_stopping(algo: str, tmp_path: Path) -> None:
    env_id, total = ENVS[algo], 384  # a multiple of a PPO rollout (2 envs x 32 steps)
    cfg = config_for(algo, env_id, TINY[algo])
    straight = Agent(algo, env_id, cfg, seed=3, total_steps=total)
    straight.run()
    first = Agent(algo, env_id, cfg, seed=3, total_steps=total)
    first.run(until=192)
    first.save(tmp_path)
    del first
    resumed = Agent.load(tmp_path, algo, env_id, cfg, seed=3, total_steps=total)
    assert resumed.acting.steps == 192
    resumed.run()
    assert resumed.acting.steps == straight.acting.steps
    for (k, a), b in zip(
        straight.algorithm.policy_params().items(), resumed.algorithm.policy_params().values(), strict=True
    ):
        np.testing.assert_array_equal(a, b, err_msg=k)
    if straight.acting.replay is not None and resumed.acting.replay is not None:
        assert straight.acting.replay.count == resumed.acting.replay.count


def test_a_fenced_writer_that_was_taken_over_cannot_touch_its_successors_checkpoint(tmp_path: Path) -> None:
    """A killed process's leftover writer thread against the process that replaced it."""
    old_alive = [True]
    old = checkpoint_fence(tmp_path, lambda: old_alive[0])
    write_checkpoint(tmp_path, {"a.bin": b"old"}, {"n": 1}, tag=1, fence=old)
    with pytest.raises(CheckpointInUse, match="already writes this checkpoint"):
        checkpoint_fence(tmp_path, lambda: True)  # a second live writer of the same directory
    old_alive[0] = False  # killed: its successor takes the directory over
    new = checkpoint_fence(tmp_path, lambda: True)
    mine = write_checkpoint(tmp_path, {"a.bin": b"new"}, {"n": 2}, tag=2, fence=new)
    with pytest.raises(Fenced, match="took this checkpoint over"):
        write_checkpoint(tmp_path, {"a.bin": b"late"}, {"n": 3}, tag=3, fence=old)
    found = read_checkpoint(tmp_path)
    assert found is not None and found[0] == mine and found[1] == {"n": 2}
    assert (mine / "a.bin").read_bytes() == b"new"
    assert not list(tmp_path.rglob(".*.tmp"))  # the refused write left no temporary file
    again = write_checkpoint(tmp_path, {"a.bin": b"next"}, {"n": 4}, tag=4, fence=new)
    assert [p.name for p in tmp_path.glob("ckpt-*")] == [again.name]  # the late writer's empty folder went too
    new.release()
    assert not (tmp_path / ".writer.lock").exists()
    checkpoint_fence(tmp_path, lambda: True).release()  # free again after a graceful release
