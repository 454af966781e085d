"""The policy server in-process: tabular runs, loading errors, refused observations, reload and watch.

Deep runs (torch forward vs the server's numpy forward) are in tests/deep/test_serving.py; the
``beamrl serve`` command as an OS process in tests/cli/test_cli_serve.py.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from beamrl import Node, Rejected
from beamrl.rl.envs import make
from beamrl.rl.serving import InvalidObservation, PolicyServer, load_run, observation_check
from beamrl.rl.spaces import Box, Discrete, MultiDiscrete, Tuple, state_index
from beamrl.testing import eventually
from beamrl.trust import PathRejected, for_a_peer


def write_tabular_run(
    root: Path, env_id: str, q: np.ndarray, env_kwargs: dict[str, Any] | None = None, algo: str = "q-learning"
) -> Path:
    """The two files of a tabular ``beamrl train`` run that serving reads."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "qtable.npz", "wb") as f:
        np.savez(f, allow_pickle=False, q=q)
    summary = {"algo": algo, "env_id": env_id, "env_kwargs": env_kwargs or {}, "eval_mean_return": 0.0}
    (root / "summary.json").write_text(json.dumps(summary))
    return root


@pytest.fixture
def lake(tmp_path: Path) -> tuple[Path, np.ndarray]:
    q = np.random.default_rng(0).normal(size=(16, 4))
    return write_tabular_run(tmp_path / "lake", "FrozenLake-v1", q), q


async def test_a_tabular_policy_answers_the_greedy_action_of_each_state(
    node: Node, lake: tuple[Path, np.ndarray]
) -> None:
    run_dir, q = lake
    await node.start(PolicyServer, str(run_dir), name="policy")
    policy = node.proxy("policy")
    for s in range(16):
        action = await policy.act(s)
        assert action == int(np.argmax(q[s])) and type(action) is int
    states = np.array([3, 0, 15, 7, 7])
    np.testing.assert_array_equal(await policy.act_batch(states), np.argmax(q[states], axis=1))
    np.testing.assert_array_equal(await policy.act_batch([1, 2]), np.argmax(q[[1, 2]], axis=1))
    np.testing.assert_array_equal(await policy.output(5), q[5])
    np.testing.assert_array_equal(await policy.output_batch(states), q[states])
    info = await policy.info()
    assert info["family"] == "tabular" and info["algo"] == "q-learning" and info["env_id"] == "FrozenLake-v1"
    assert info["observation_space"] == Discrete(16) and info["action_space"] == Discrete(4)
    assert info["spaces_from"] == "env" and info["table_shape"] == [16, 4]
    assert info["file"] == str(run_dir / "qtable.npz") and info["generation"] == 1
    assert info["acts"] == 16 + 5 + 2


async def test_a_tuple_state_space_is_flattened_as_the_trainer_does(node: Node, tmp_path: Path) -> None:
    env = make("Blackjack-v1")
    index = state_index(env.observation_space)
    q = np.random.default_rng(1).normal(size=(index.n, 2))
    run_dir = write_tabular_run(tmp_path / "bj", "Blackjack-v1", q, algo="mc")
    await node.start(PolicyServer, str(run_dir), name="policy")
    policy = node.proxy("policy")
    assert isinstance((await policy.info())["observation_space"], Tuple)
    for obs in [(14, 10, 0), (21, 1, 1), (4, 5, 0)]:
        assert await policy.act(obs) == int(np.argmax(q[index(obs)]))
    batch = np.array([(14, 10, 0), (21, 1, 1)])
    expected = [int(np.argmax(q[index(tuple(o))])) for o in batch]
    np.testing.assert_array_equal(await policy.act_batch(batch), expected)
    with pytest.raises(InvalidObservation, match=r"observation\[1\] = 11 is not in Discrete\(11\)"):
        await policy.act((14, 11, 0))
    with pytest.raises(InvalidObservation, match=r"3 integer parts"):
        await policy.act((14, 10))


# (observation, what the refusal says) for FrozenLake's Discrete(16)
BAD_STATES = [
    (16, r"= 16 is not a state of Discrete\(16\) \(0\.\.15\)"),
    (-1, r"= -1 is not a state"),
    (3.0, r"dtype float64 \(3\.0\); expected integers"),
    (float("nan"), r"expected integers"),
    (True, r"is a boolean"),
    ("3", r"dtype <U1"),
    (None, r"is not made of numbers"),
    ([1, 2], r"one integer state of Discrete\(16\), got shape \(2,\)"),
    ({"s": 1}, r"is not made of numbers"),
    (2**80, r"is not made of numbers"),
]


@pytest.mark.parametrize(("obs", "message"), BAD_STATES)
async def test_a_bad_state_is_refused_and_the_server_goes_on(
    node: Node, lake: tuple[Path, np.ndarray], obs: Any, message: str
) -> None:
    run_dir, q = lake
    pid = await node.start(PolicyServer, str(run_dir), name="policy")
    with pytest.raises(InvalidObservation, match=message):
        await node.call("policy", ["act", obs])
    assert node.whereis("policy") == pid
    assert await node.call("policy", ["act", 4]) == int(np.argmax(q[4]))
    assert (await node.call("policy", ["info"]))["acts"] == 1  # the refused one was not counted


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        ([], r"at least one observation"),
        ([[1, 2]], r"1-d array of integer states, got shape \(1, 2\)"),
        ([0, 1, 99], r"the observation of row 2 = 99 is not a state"),
        (np.zeros(3), r"dtype float64"),
        (np.zeros(70_000, dtype=np.int64), r"more than the 65536"),
    ],
)
async def test_a_bad_batch_is_refused_whole(
    node: Node, lake: tuple[Path, np.ndarray], batch: Any, message: str
) -> None:
    run_dir, _ = lake
    await node.start(PolicyServer, str(run_dir), name="policy")
    with pytest.raises(InvalidObservation, match=message):
        await node.call("policy", ["act_batch", batch])
    assert (await node.call("policy", ["info"]))["acts"] == 0


async def test_unknown_requests_are_rejected_naming_the_requests_it_takes(
    node: Node, lake: tuple[Path, np.ndarray]
) -> None:
    await node.start(PolicyServer, str(lake[0]), name="policy")
    for request in (["step", 1], ["act"], ["act", 1, 2], "act", 42):
        with pytest.raises(Rejected, match="use act, act_batch, output, output_batch, info or reload"):
            await node.call("policy", request)


# -- loading: every broken run names its file -------------------------------------------------


def _garbage(path: Path) -> None:
    path.write_bytes(b"\x00not a real file\xff" * 10)


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (lambda d: (d / "qtable.npz").unlink(), r"holds neither model\.safetensors .* nor qtable\.npz"),
        (lambda d: _garbage(d / "qtable.npz"), r"qtable\.npz is not a readable \.npz file"),
        (lambda d: (d / "summary.json").unlink(), r"summary\.json is missing"),
        (lambda d: (d / "summary.json").write_text("{not json"), r"summary\.json is not valid JSON"),
        (lambda d: (d / "summary.json").write_text("[1]"), r"summary\.json is not a JSON object"),
        (lambda d: (d / "summary.json").write_text('{"algo": "x"}'), r"summary\.json does not name the run's env"),
        (lambda d: np.savez(d / "qtable.npz", table=np.zeros((16, 4))), r"qtable\.npz has no array 'q'"),
        (lambda d: np.savez(d / "qtable.npz", q=np.zeros((64, 4))), r"holds a 64 x 4 table, but FrozenLake-v1 has 16"),
        (lambda d: np.savez(d / "qtable.npz", q=np.full((16, 4), np.nan)), r"qtable\.npz: q holds non-finite"),
        (lambda d: np.savez(d / "qtable.npz", q=np.zeros(16)), r"q must be a non-empty 2-d array"),
        (lambda d: _garbage(d / "model.safetensors"), r"model\.safetensors is not a valid safetensors file"),
    ],
)
def test_a_broken_run_directory_is_refused_naming_the_file(
    lake: tuple[Path, np.ndarray], breakage: Any, message: str
) -> None:
    run_dir, _ = lake
    breakage(run_dir)
    with pytest.raises((ValueError, OSError), match=message):
        load_run(run_dir)


def test_a_missing_run_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=f"no run directory at {tmp_path / 'nope'}"):
        load_run(tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="is not a directory"):
        load_run(tmp_path / "file")


async def test_a_broken_run_fails_the_start_with_its_message(node: Node, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no run directory"):
        await node.start(PolicyServer, str(tmp_path / "nope"), name="policy")
    assert node.whereis("policy") is None


def test_env_kwargs_from_the_summary_shape_the_table(tmp_path: Path) -> None:
    q = np.zeros((64, 4))
    run_dir = write_tabular_run(tmp_path / "big", "FrozenLake-v1", q, env_kwargs={"map_name": "8x8"})
    assert load_run(run_dir).observation_space == Discrete(64)
    (run_dir / "summary.json").write_text(json.dumps({"env_id": "FrozenLake-v1", "env_kwargs": {"colour": 1}}))
    with pytest.raises(ValueError, match=r"summary\.json: FrozenLake-v1 cannot be built with env_kwargs"):
        load_run(run_dir)


# -- reload and watch ---------------------------------------------------------------------------


def _rewrite(run_dir: Path, q: np.ndarray) -> None:
    """Replace the table as the trainer does: a complete new file, swapped in."""
    tmp = run_dir / ".qtable.npz.tmp"
    with open(tmp, "wb") as f:
        np.savez(f, allow_pickle=False, q=q)
    os.replace(tmp, run_dir / "qtable.npz")


async def test_reload_serves_the_new_table_and_a_broken_one_is_refused(
    node: Node, lake: tuple[Path, np.ndarray]
) -> None:
    run_dir, q = lake
    await node.start(PolicyServer, str(run_dir), name="policy")
    policy = node.proxy("policy")
    first = await policy.info()
    newer = -q  # every greedy action changes (no ties in a normal sample)
    _rewrite(run_dir, newer)
    info = await policy.reload()
    assert info["generation"] == 2 and info["sha256"] != first["sha256"]
    assert await policy.act_batch(np.arange(16)) == pytest.approx(np.argmax(newer, axis=1))
    _garbage(run_dir / "qtable.npz")
    with pytest.raises(Rejected, match=r"reload refused: .*qtable\.npz is not a readable .*still serving generation 2"):
        await policy.reload()
    np.testing.assert_array_equal(await policy.act_batch(np.arange(16)), np.argmax(newer, axis=1))
    assert (await policy.info())["generation"] == 2


async def test_watch_picks_up_a_newer_file_and_skips_a_broken_one(
    node: Node, lake: tuple[Path, np.ndarray], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="beamrl.rl")
    run_dir, q = lake
    await node.start(PolicyServer, str(run_dir), name="policy", watch=0.02)
    policy = node.proxy("policy")

    async def generation() -> int:
        info: dict[str, Any] = await policy.info()
        return int(info["generation"])

    _rewrite(run_dir, -q)
    await eventually(lambda: _equals(generation(), 2), timeout=5.0, what="the newer table being served")
    np.testing.assert_array_equal(await policy.act_batch(np.arange(16)), np.argmax(-q, axis=1))
    _garbage(run_dir / "qtable.npz")
    await eventually(lambda: "reload refused" in caplog.text, timeout=5.0, what="the broken file being logged")
    assert await generation() == 2
    np.testing.assert_array_equal(await policy.act_batch(np.arange(16)), np.argmax(-q, axis=1))


async def _equals(value: Any, expected: Any) -> bool:
    return bool(await value == expected)


async def test_started_for_a_peer_the_run_directory_stays_in_the_data_directory(
    tmp_path: Path, lake: tuple[Path, np.ndarray]
) -> None:
    run_dir, q = lake
    async with Node("confined", data_dir=tmp_path / "data") as node:
        with for_a_peer():
            with pytest.raises(PathRejected, match="is absolute"):
                await node.start(PolicyServer, str(run_dir), name="policy")
            with pytest.raises(PathRejected, match=r"contains '\.\.'"):
                await node.start(PolicyServer, "../lake", name="policy")
            write_tabular_run(tmp_path / "data" / "runs" / "lake", "FrozenLake-v1", q)
            await node.start(PolicyServer, "runs/lake", name="policy")
        assert await node.call("policy", ["act", 3]) == int(np.argmax(q[3]))


# -- the checks on their own ------------------------------------------------------------------


def test_a_discrete_space_with_a_start_maps_states_to_rows_from_zero() -> None:
    check = observation_check(Discrete(5, start=-2))
    np.testing.assert_array_equal(check.one(-2), [0])
    np.testing.assert_array_equal(check.batch(np.array([2, -1, 0], np.int16)), [4, 1, 2])
    with pytest.raises(InvalidObservation, match=r"= 3 is not a state of Discrete\(5, start=-2\) \(-2\.\.2\)"):
        check.one(3)


def test_a_box_takes_integers_as_float32_and_keeps_its_bounds_per_component() -> None:
    check = observation_check(Box(np.array([0.0, -1.0]), np.array([10.0, 1.0]), (2,), np.float32))
    x = check.one([3, 0])
    assert x.dtype == np.float32 and x.shape == (1, 2)
    assert check.batch(np.array([[0, -1], [10, 1]], np.int64)).tolist() == [[0.0, -1.0], [10.0, 1.0]]
    with pytest.raises(InvalidObservation, match=r"observation\[1\] of row 1 = -2 is outside .* \[-1, 1\]"):
        check.batch([[0.0, 0.0], [5.0, -2.0]])


def test_a_space_a_policy_cannot_take_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"Box, Discrete or Tuple-of-Discrete observations, not MultiDiscrete"):
        observation_check(MultiDiscrete([2, 3]))
