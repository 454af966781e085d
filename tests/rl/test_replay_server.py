"""ReplayServer: requests through calls and casts, bad input, checkpoints and restarts, across nodes."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import beamrl
from beamrl import Down, Node, child
from beamrl.fencing import CheckpointInUse
from beamrl.rl.exp import Exp
from beamrl.rl.replay import COLUMNS, ReplayError, StaleIndex
from beamrl.rl.replay_server import LEDGER, ReplayServer
from beamrl.testing import eventually
from tests import start_peer

GAMMA = 0.99


def columns(start: int, n: int, *, actor: int = 0) -> dict[str, np.ndarray]:
    """Rows ``start .. start+n-1`` of ``actor``; every column encodes (actor, step).

    state = [actor, step, actor * 10_000 + step, 1]; next_state = state + [0, 1, 1, 0];
    reward = actor * 10_000 + step; action = step % 2; terminated every 100th step.
    """
    step = np.arange(start, start + n)
    key = actor * 10_000 + step
    state = np.stack([np.full(n, actor), step, key, np.ones(n)], axis=1).astype(np.float32)
    return {
        "state": state,
        "action": step % 2,
        "reward": key.astype(np.float32),
        "next_state": state + np.array([0, 1, 1, 0], dtype=np.float32),
        "terminated": step % 100 == 99,
        "truncated": np.zeros(n, dtype=bool),
    }


def check_rows(batch: dict[str, Any], n: int, *, actors: int, steps: int) -> None:
    """Shapes, dtypes, and that each row is one that ``columns`` produced."""
    assert set(batch) == {*COLUMNS, "indices", "weights", "incarnation"}
    assert type(batch["incarnation"]) is int  # the server process's: priority updates name it
    assert batch["state"].shape == batch["next_state"].shape == (n, 4)
    assert batch["state"].dtype == batch["next_state"].dtype == np.float32
    assert batch["action"].shape == (n,) and batch["action"].dtype == np.int64
    for name, dtype in (("reward", np.float32), ("discount", np.float32), ("weights", np.float32)):
        assert batch[name].shape == (n,) and batch[name].dtype == dtype, name
    for name in ("terminated", "truncated"):
        assert batch[name].shape == (n,) and batch[name].dtype == np.bool_, name
    assert batch["indices"].shape == (n,) and batch["indices"].dtype == np.int64
    state = batch["state"]
    actor, step = state[:, 0].astype(np.int64), state[:, 1].astype(np.int64)
    assert ((actor >= 0) & (actor < actors)).all()
    assert ((step >= 0) & (step < steps)).all()
    np.testing.assert_array_equal(state[:, 2], actor * 10_000 + step)
    np.testing.assert_array_equal(state[:, 3], 1.0)
    np.testing.assert_array_equal(batch["next_state"], state + np.array([0, 1, 1, 0], dtype=np.float32))
    np.testing.assert_array_equal(batch["reward"], state[:, 2])
    np.testing.assert_array_equal(batch["action"], step % 2)
    np.testing.assert_array_equal(batch["terminated"], step % 100 == 99)
    assert not batch["truncated"].any()
    np.testing.assert_allclose(batch["discount"], np.where(step % 100 == 99, 0.0, GAMMA), rtol=1e-6)
    assert ((batch["weights"] > 0) & (batch["weights"] <= 1)).all()


def exp(i: int) -> Exp:
    return Exp(np.array([0, i, i, 1], dtype=np.float32), i % 2, float(i), np.array([0, i + 1, i + 1, 1], np.float32))


# ---------------------------------------------------------------------------------------
# one node
# ---------------------------------------------------------------------------------------


async def test_add_sample_and_update_through_calls_and_casts(node: Node) -> None:
    await node.start(ReplayServer, 1000, prioritized=True, alpha=1.0, seed=0, name="replay")
    node.cast("replay", ["add_batch", columns(0, 100), None])
    node.cast("replay", ["add_batch", [exp(100), exp(101)], [2.0, 3.0]])
    node.cast("replay", ["add", exp(102)])
    node.cast("replay", ["add", exp(103), 0.5])
    ids = await node.call("replay", ["add_batch", columns(104, 20)])
    np.testing.assert_array_equal(ids, np.arange(104, 124))
    assert await node.call("replay", ["len"]) == 124

    batch = await node.call("replay", ["sample", 64])
    check_rows(batch, 64, actors=1, steps=124)
    np.testing.assert_array_equal(batch["indices"], batch["state"][:, 1].astype(np.int64))  # one actor: id == step
    latest = await node.call("replay", ["sample", 10, "latest"])
    np.testing.assert_array_equal(latest["indices"], np.arange(114, 124))

    # all but ids 7 and 8 to ~0: the memory then samples those two only
    prios = np.zeros(124)
    prios[[7, 8]] = 5.0
    assert await node.call("replay", ["update_priorities", np.arange(124), prios]) == 124
    assert set((await node.call("replay", ["sample", 100]))["indices"].tolist()) <= {7, 8}
    node.cast("replay", ["update_priorities", np.array([9]), np.array([1e9])])
    assert set((await node.call("replay", ["sample", 64]))["indices"].tolist()) == {9}

    stats = await node.call("replay", ["stats"])
    assert stats["len"] == stats["total_added"] == stats["added"] == 124
    assert stats["capacity"] == 1000 and stats["prioritized"] and stats["samples"] == 4
    assert stats["rejected_casts"] == 0 and stats["checkpoint_dir"] is None and stats["lost"] == 0


async def test_a_uniform_server_answers_unit_weights(node: Node) -> None:
    await node.start(ReplayServer, 50, seed=1, name="replay")
    node.cast("replay", ["add_batch", columns(0, 80), None])  # wraps around: ids 30..79 held
    batch = await node.call("replay", ["sample", 32])
    check_rows(batch, 32, actors=1, steps=80)
    assert (batch["weights"] == 1.0).all()
    assert (batch["indices"] >= 30).all()
    with pytest.raises(ReplayError, match="prioritized=True"):
        await node.call("replay", ["update_priorities", batch["indices"], np.ones(32)])


async def test_n_step_streams_keep_actors_apart(node: Node) -> None:
    await node.start(ReplayServer, 100, n_step=2, gamma=0.5, name="replay")
    for i in range(3):  # two actors interleaved, each on its own stream
        node.cast("replay", ["add_batch", columns(i, 1, actor=1), None, "a"])
        node.cast("replay", ["add", exp(i), None, "b"])
    ids = await node.call("replay", ["flush"])
    assert ids.size == 2  # the last step of each stream was waiting in its window
    batch = await node.call("replay", ["sample", 6, "latest"])
    by_actor: dict[int, list[int]] = {0: [], 1: []}
    for row in range(6):
        by_actor[int(batch["state"][row, 0])].append(row)
    for actor, rows in by_actor.items():
        steps = batch["state"][rows, 1].astype(int).tolist()
        assert sorted(steps) == [0, 1, 2], (actor, steps)
        for row in rows:  # reward_t + 0.5 reward_{t+1} within the stream (the last one cut by flush)
            t = int(batch["state"][row, 1])
            r = [actor * 10_000 + k for k in range(t, min(t + 2, 3))]
            assert batch["reward"][row] == pytest.approx(r[0] + 0.5 * sum(r[1:]))


async def test_bad_calls_are_refused_and_the_memory_is_intact(node: Node) -> None:
    pid = await node.start(ReplayServer, 100, prioritized=True, seed=0, name="replay")
    with pytest.raises(ReplayError, match="empty replay memory"):
        await node.call("replay", ["sample", 4])
    await node.call("replay", ["add_batch", columns(0, 150)])  # ids 50..149 held
    before = await node.call("replay", ["sample", 100, "latest"])
    wrong_shape = columns(0, 5)
    wrong_shape["state"] = np.zeros((5, 3), dtype=np.float32)
    wrong_dtype = columns(0, 5)
    wrong_dtype["action"] = np.zeros(5, dtype=np.float32)
    bad = [
        (["add_batch", wrong_shape], "shape"),
        (["add_batch", wrong_dtype], "dtype"),
        (["add_batch", columns(0, 5), [1.0, 2.0]], "expected 5 priorities"),
        (["add_batch", "junk"], "dict of columns or a list of Exp"),
        (["add", {"state": 1}], "takes an Exp"),
        (["add", exp(0), float("nan")], "NaN"),
        (["sample", 101], "holds 100"),
        (["sample", 0], "positive integer"),
        (["sample", 4, "oldest"], "mode"),
        (["update_priorities", np.array([10]), np.array([1.0])], "evicted"),
        (["update_priorities", np.array([500]), np.array([1.0])], "never handed out"),
        (["update_priorities", np.array([60, 61]), np.array([1.0, -1.0])], ">= 0"),
        (["update_priorities", np.array([60]), np.array([np.nan])], "NaN"),
        (["checkpoint"], "no checkpoint_dir"),
        (["fly"], "does not understand"),
    ]
    for request, match in bad:
        with pytest.raises(ReplayError, match=match):
            await node.call("replay", request)
    with pytest.raises(StaleIndex):
        await node.call("replay", ["update_priorities", np.array([10]), np.array([1.0])])
    assert node.whereis("replay") == pid
    after = await node.call("replay", ["sample", 100, "latest"])
    for key in COLUMNS:
        np.testing.assert_array_equal(after[key], before[key], err_msg=key)
    np.testing.assert_array_equal(after["weights"], before["weights"])  # no priority changed
    assert (await node.call("replay", ["stats"]))["total_added"] == 150
    # the "skip" form of the call ignores evicted ids, as the cast does
    assert await node.call("replay", ["update_priorities", np.array([10, 60]), np.array([1.0, 2.0]), "skip"]) == 1


async def test_bad_casts_are_logged_and_the_memory_is_intact(node: Node, caplog: pytest.LogCaptureFixture) -> None:
    await node.start(ReplayServer, 100, prioritized=True, seed=0, name="replay")
    await node.call("replay", ["add_batch", columns(0, 150)])
    before = await node.call("replay", ["sample", 100, "latest"])
    wrong_shape = columns(0, 5)
    wrong_shape["next_state"] = np.zeros((5, 4, 1), dtype=np.float32)
    casts = [
        ["add_batch", wrong_shape, None],
        ["add_batch", columns(0, 5), np.full(5, -1.0)],
        ["add", 42],
        ["update_priorities", np.array([60]), np.array([np.inf])],
        ["update_priorities", np.array([999]), np.array([1.0])],
        ["sample", 4],
        ["fly", 1],
    ]
    with caplog.at_level(logging.WARNING, logger="beamrl"):
        for request in casts:
            node.cast("replay", request)
        node.cast("replay", ["update_priorities", np.array([10, 11]), np.array([1.0, 1.0])])  # evicted: skipped
        stats = await node.call("replay", ["stats"])  # same sender: every cast above was handled first
    assert stats["rejected_casts"] == len(casts)
    assert stats["stale_skipped"] == 2
    assert stats["len"] == 100 and stats["total_added"] == 150
    dropped = [r.getMessage() for r in caplog.records if "dropped the cast" in r.getMessage()]
    assert len(dropped) == len(casts)
    assert "['add_batch', {state, action, reward, next_state, terminated, truncated}, None]" in dropped[0]
    assert "next_state items have shape (4, 1)" in dropped[0] and "memory is unchanged" in dropped[0]
    assert "is a call, not a cast" in dropped[5]
    after = await node.call("replay", ["sample", 100, "latest"])
    for key in (*COLUMNS, "weights"):
        np.testing.assert_array_equal(after[key], before[key], err_msg=key)


# ---------------------------------------------------------------------------------------
# checkpoints and restarts
# ---------------------------------------------------------------------------------------


def ledger(d: Path) -> int:
    return int(json.loads((d / LEDGER).read_text())["total_added"])


async def test_a_killed_server_restarts_from_its_checkpoint_and_reports_what_it_lost(
    node: Node, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spec = child(
        ReplayServer,
        1000,
        checkpoint_dir=str(tmp_path),
        checkpoint_every=None,
        ledger_every=0.01,
        prioritized=True,
        seed=0,
        name="replay",
    )
    sup = await node.start_supervisor([spec], max_restarts=5, max_seconds=60)
    await node.call("replay", ["add_batch", columns(0, 100)])
    await node.call("replay", ["update_priorities", np.arange(100), np.linspace(0, 9, 100)])
    assert await node.call("replay", ["checkpoint"]) > 0
    await node.call("replay", ["add_batch", columns(100, 50)])
    await eventually(lambda: (tmp_path / LEDGER).exists() and ledger(tmp_path) == 150, what="the ledger to say 150")

    old = node.whereis("replay")
    with caplog.at_level(logging.INFO, logger="beamrl"):
        node.kill("replay")  # no terminate: the 50 rows after the checkpoint are gone
        await eventually(lambda: node.whereis("replay") not in (None, old), what="the restart")
        stats = await node.call("replay", ["stats"])
    assert (stats["restored"], stats["restored_total"], stats["lost"]) == (100, 100, 50)
    assert stats["len"] == stats["total_added"] == 100 and stats["added"] == 0
    assert any("lost 50" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    assert ledger(tmp_path) == 100  # the ledger now counts from what was restored
    [info] = await node.which_children(sup)
    assert info.restarts == 1
    # the restored rows are the ones added, with their priorities; new ids continue from 100
    batch = await node.call("replay", ["sample", 100, "latest"])
    check_rows(batch, 100, actors=1, steps=100)
    np.testing.assert_array_equal(batch["indices"], np.arange(100))
    assert (batch["weights"][1:] < batch["weights"][:-1]).all()  # higher priority, lower weight
    ids = await node.call("replay", ["add_batch", columns(100, 5)])
    np.testing.assert_array_equal(ids, np.arange(100, 105))


async def test_an_exit_signal_and_a_graceful_stop_lose_nothing(node: Node, tmp_path: Path) -> None:
    kwargs: dict[str, Any] = {"checkpoint_dir": str(tmp_path), "checkpoint_every": None, "seed": 0}
    await node.start_supervisor([child(ReplayServer, 500, name="replay", **kwargs)], max_restarts=5, max_seconds=60)
    await node.call("replay", ["add_batch", columns(0, 120)])
    old = node.whereis("replay")
    assert old is not None
    node.exit(old, "boom")  # trapped: terminate runs and saves, then the supervisor restarts it
    await eventually(lambda: node.whereis("replay") not in (None, old), what="the restart")
    stats = await node.call("replay", ["stats"])
    assert (stats["restored"], stats["lost"], stats["len"]) == (120, 0, 120)

    await node.call("replay", ["add_batch", columns(120, 30)])
    pid = await node.start(ReplayServer, 500, name="solo", **{**kwargs, "checkpoint_dir": str(tmp_path / "solo")})
    await node.call(pid, ["add_batch", columns(0, 77)])
    await node.stop(pid)
    await node.start(ReplayServer, 500, name="solo", **{**kwargs, "checkpoint_dir": str(tmp_path / "solo")})
    stats = await node.call("solo", ["stats"])
    assert (stats["restored"], stats["restored_total"], stats["lost"]) == (77, 77, 0)
    batch = await node.call("solo", ["sample", 77, "latest"])
    check_rows(batch, 77, actors=1, steps=77)

    # a second live writer of the same directory is refused (one writer per checkpoint)
    with pytest.raises(CheckpointInUse, match="already writes this checkpoint"):
        await node.start(ReplayServer, 500, checkpoint_dir=str(tmp_path / "solo"))
    await node.stop("solo")
    # another configuration on the same directory is refused instead of mixing the two
    with pytest.raises(ReplayError, match=r"capacity=500 \(asked for 400\)"):
        await node.start(ReplayServer, 400, checkpoint_dir=str(tmp_path / "solo"))


async def test_periodic_checkpoints_save_what_a_kill_would_lose(node: Node, tmp_path: Path) -> None:
    kwargs: dict[str, Any] = {"checkpoint_dir": str(tmp_path), "checkpoint_every": 0.02, "ledger_every": 0.02}
    pid = await node.start(ReplayServer, 200, **kwargs)

    async def checkpoints() -> int:
        return int((await node.call(pid, ["stats"]))["checkpoints"])

    assert await checkpoints() == 0  # nothing to save yet
    await node.call(pid, ["add_batch", columns(0, 60)])
    await eventually(checkpoints, what="a periodic checkpoint")
    first = await checkpoints()
    node.cast(pid, ["add_batch", columns(60, 10), None])
    await eventually(lambda: checkpoints_over(node, pid, first), what="a checkpoint of the new rows")
    stats = await node.call(pid, ["stats"])
    assert stats["last_checkpoint"] is not None and stats["last_checkpoint_bytes"] > 0
    node.kill(pid)
    pid = await node.start(ReplayServer, 200, **kwargs)
    stats = await node.call(pid, ["stats"])
    assert (stats["restored"], stats["lost"]) == (70, 0)


async def checkpoints_over(node: Node, pid: Any, n: int) -> bool:
    return int((await node.call(pid, ["stats"]))["checkpoints"]) > n


# ---------------------------------------------------------------------------------------
# across nodes: a remote learner sampling while remote actors add
# ---------------------------------------------------------------------------------------

ACTORS = 4
BATCHES = 8
ROWS = 500
STEPS = BATCHES * ROWS


async def test_a_remote_learner_samples_while_remote_actors_add() -> None:
    peer = start_peer("replay_peer", tree="tests/trees/replay_peer.toml")
    try:
        async with Node("replay_tester") as node:
            remote = await node.connect(peer.address)
            replay = ("replay", remote)
            zeroed: set[int] = set()  # ids of actor 0 the learner set to priority 0
            seen: dict[int, tuple[int, int]] = {}  # id -> (actor, step): must never change
            lens: list[int] = []

            async def actor(a: int) -> None:
                rng = np.random.default_rng(a)
                for b in range(BATCHES):
                    prios = None if b % 2 else rng.uniform(0.5, 1.5, ROWS)
                    beamrl.cast(replay, ["add_batch", columns(b * ROWS, ROWS, actor=a), prios])
                    await beamrl.call(replay, ["len"])  # some flow control, and a chance for the others

            async def learner(batches: int) -> None:
                n = 0
                deadline = time.monotonic() + 30
                while n < batches:
                    assert time.monotonic() < deadline, f"the learner drew {n} batches in 30 s"
                    held = await beamrl.call(replay, ["len"])
                    if held < 512:
                        continue
                    batch = await beamrl.call(replay, ["sample", 512])
                    lens.append(held)
                    check_rows(batch, 512, actors=ACTORS, steps=STEPS)
                    for i, a, s in zip(batch["indices"].tolist(), *batch["state"][:, :2].T.tolist(), strict=True):
                        assert seen.setdefault(i, (a, s)) == (a, s)
                    mine = batch["state"][:, 0] == 0
                    zeroed.update(batch["indices"][mine].tolist())
                    beamrl.cast(replay, ["update_priorities", batch["indices"], np.where(mine, 0.0, 1.0)])
                    n += 1
                await beamrl.call(replay, ["len"])  # after its own casts: they have all been handled

            pids = [await node.spawn(actor, a) for a in range(ACTORS)]
            pids.append(await node.spawn(learner, 12))
            refs = {node.monitor(pid) for pid in pids}
            while refs:
                down = await node.receive(timeout=30)
                assert isinstance(down, Down) and down.reason == "normal", down
                refs.discard(down.ref)

            stats = await node.call(replay, ["stats"])
            assert stats["len"] == stats["total_added"] == ACTORS * STEPS
            assert stats["samples"] == 12 and stats["rejected_casts"] == 0 and stats["stale_skipped"] == 0
            assert len(set(lens)) > 1, f"the learner only ever saw one size: {lens}"
            assert min(lens) < ACTORS * STEPS, "the learner sampled only after the actors were done"

            # the learner's cast updates took effect: items it zeroed are (almost) never drawn
            assert len(zeroed) > 100
            drawn = np.concatenate([(await node.call(replay, ["sample", 512]))["indices"] for _ in range(4)])
            assert np.isin(drawn, list(zeroed)).sum() <= 5, "zeroed priorities are still being sampled"

            # a learner's call update: all to ~0 but ten ids, and sampling follows
            favourites = np.arange(5000, 5010)
            prios = np.zeros(ACTORS * STEPS)
            prios[favourites] = 1000.0
            assert await node.call(replay, ["update_priorities", np.arange(ACTORS * STEPS), prios]) == ACTORS * STEPS
            batch = await node.call(replay, ["sample", 512])
            check_rows(batch, 512, actors=ACTORS, steps=STEPS)
            assert np.isin(batch["indices"], favourites).mean() >= 0.95

            # errors cross the wire as the memory's own class; the memory is intact
            with pytest.raises(ReplayError, match="holds"):
                await node.call(replay, ["sample", ACTORS * STEPS + 1])
            with pytest.raises(StaleIndex, match="never handed out"):
                await node.call(replay, ["update_priorities", np.array([10**9]), np.array([1.0])])
            assert await node.call(replay, ["len"]) == ACTORS * STEPS
    finally:
        assert peer.terminate() == 0, "".join(peer.output)
