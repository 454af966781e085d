"""Ape-X's replay split over R shards (``--set replay_shards=R``): actors hash to one, the loop samples all."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from beamrl import GenServer, Node
from beamrl.api import reply, send_after
from beamrl.gen_server import NoReply
from beamrl.rl.apex.config import apex_config, replay_address, replay_names, shard_of
from beamrl.rl.apex.loop import LearnerLoop
from beamrl.rl.apex.run import actor_spec, parse_kill_at
from beamrl.rl.training.actors import StepKill
from beamrl.testing import eventually
from tests.cli.test_cli_errors import beamrl

_BASE = 1_000_000  # shard k hands out ids k * _BASE + 0, 1, 2, ...: no id is in two shards


class FakeShard(GenServer):
    """A replay shard with ids of its own; it records which ids it served and which priorities came back
    (and the incarnation each update named: its batches carry ``100 + k``)."""

    async def init(self, k: int, hold: bool = False) -> None:
        self.k, self.hold, self.next = k, hold, 0
        self.served: set[int] = set()
        self.updated: list[tuple[list[int], list[float]]] = []
        self.named: list[Any] = []

    async def handle_call(self, request: Any, from_: Any) -> Any:
        match request:
            case ["sample", n]:
                if self.hold:  # as a rate limiter holding back answers None after its sample_wait
                    send_after(0.05, self.pid, ["expire", from_])
                    return NoReply
                ids = self.k * _BASE + np.arange(self.next, self.next + n)
                self.next += n
                self.served.update(ids.tolist())
                batch = {"indices": ids, "reward": ids.astype(np.float64), "weights": np.ones(n, np.float32)}
                return batch | {"incarnation": 100 + self.k}
            case ["hold", flag]:
                self.hold = flag
                return flag
            case ["record"]:
                return {"served": sorted(self.served), "updated": self.updated, "named": self.named}
        raise ValueError(request)

    async def handle_cast(self, request: Any) -> None:
        match request:
            case ["update_priorities", indices, priorities, *incarnation]:
                self.updated.append((np.asarray(indices).tolist(), np.asarray(priorities).tolist()))
                self.named.append(incarnation[0] if incarnation else None)

    async def handle_info(self, message: Any) -> None:
        match message:
            case ["expire", from_]:
                reply(from_, None)


class FakeLearner(GenServer):
    """Learns nothing; its |TD error| of a row is the row's reward + 0.5 (so a priority names its row)."""

    async def init(self) -> None:
        self.version = 0

    async def handle_call(self, request: Any, from_: Any) -> Any:
        match request:
            case ["learn", batch]:
                self.version += 1
                return {"version": self.version, "td": batch["reward"] + 0.5}
        raise ValueError(request)


def test_shard_of_spreads_actors_over_every_shard_and_one_replay_takes_all() -> None:
    for shards in (1, 2, 3, 4):
        for actors in range(shards, 13):
            counts = Counter(shard_of(i, shards) for i in range(actors))
            assert set(counts) == set(range(shards))  # no shard left empty
            assert max(counts.values()) - min(counts.values()) <= 1  # and none with more than its share
    assert {shard_of(i, 1) for i in range(10)} == {0}
    one, two = apex_config("CartPole-v1"), apex_config("CartPole-v1", {"replay_shards": 2})
    assert replay_names(one) == ["replay"] and replay_names(two) == ["replay-0", "replay-1"]
    assert replay_address(one, "n") == ("replay", "n") and replay_address(two) == ["replay-0", "replay-1"]
    # the child spec an actor node starts: actor i casts to its shard (or to the one replay)
    assert actor_spec("CartPole-v1", one, 1, 2, 0, "learner")["args"][5] == ("replay", "learner")
    assert [actor_spec("CartPole-v1", two, i, 3, 0, "learner")["args"][5][0] for i in range(3)] == [
        "replay-0",
        "replay-1",
        "replay-0",
    ]


def test_each_shard_gets_its_share_of_the_buffer_and_of_min_replay() -> None:
    cfg = apex_config("CartPole-v1", {"replay_shards": 3, "buffer_size": 1_000, "min_replay": 900, "batch_size": 64})
    assert cfg.shard_capacity() == 334 and cfg.limiter()["min_size"] == 300
    small = apex_config("CartPole-v1", {"replay_shards": 4, "min_replay": 100, "batch_size": 64})
    assert small.limiter()["min_size"] == 64  # never below one batch
    assert apex_config("CartPole-v1").limiter()["min_size"] == 1_000  # one replay: the run's min_replay


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"replay_shards": 0}, "replay_shards must be >= 1, got 0"),
        (
            {"replay_shards": 20, "buffer_size": 10, "batch_size": 4},
            r"replay_shards \(20\) must not exceed buffer_size",
        ),
        ({"replay_shards": 4, "buffer_size": 200, "batch_size": 64}, "shards of 50 transitions, fewer than one batch"),
        ({"replay_checkpoint_s": 0}, "replay_checkpoint_s must be > 0"),
    ],
)
def test_bad_shard_settings_are_refused(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        apex_config("CartPole-v1", overrides)


def test_kill_targets_name_a_shard() -> None:
    assert parse_kill_at(["900:replay-1", "100:replay"]) == [StepKill(100, "replay"), StepKill(900, "replay-1")]
    with pytest.raises(ValueError, match="TARGET one of actor-node, learner, replay"):
        parse_kill_at(["100:replay-x"])


async def _loop_stats(node: Node) -> dict[str, Any]:
    stats: dict[str, Any] = await node.call("loop", ["stats"])
    return stats


async def test_priorities_go_back_to_the_shard_each_batch_came_from() -> None:
    async with Node("shards") as node:
        for k in range(2):
            await node.start(FakeShard, k, name=f"shard-{k}")
        await node.start(FakeLearner, name="learner")
        await node.start(LearnerLoop, ["shard-0", "shard-1"], "learner", 8, name="loop")

        async def both_learnt() -> bool:
            shards = (await _loop_stats(node))["shards"]
            return min(s["updates"] for s in shards) >= 20

        await eventually(both_learnt, timeout=20.0, what="20 updates from each shard")
        await node.call("loop", ["pause"])
        for k in range(2):
            record = await node.call(f"shard-{k}", ["record"])
            served = set(record["served"])
            assert len(record["updated"]) >= 19  # (the last one may still be on its way)
            for indices, priorities in record["updated"]:
                assert set(indices) <= served, f"shard {k} got priorities for ids it never served"
                np.testing.assert_allclose(priorities, np.asarray(indices) + 0.5)  # each row's own
            assert set(record["named"]) == {100 + k}  # each names the shard process that sampled it


async def _nothing() -> None:
    return None


async def test_each_shard_has_one_fetcher_for_the_whole_run_and_a_dead_one_is_replaced() -> None:
    """No process per batch: the pids the node hands out before and after 200 batches are a few apart."""
    async with Node("fetchers") as node:
        for k in range(2):
            await node.start(FakeShard, k, name=f"shard-{k}")
        await node.start(FakeLearner, name="learner")
        loop = await node.start(LearnerLoop, ["shard-0", "shard-1"], "learner", 8, name="loop")
        first = await node.spawn(_nothing)  # pid ids count every process the node started

        async def learnt(k: int, more_than: int) -> bool:
            return bool((await _loop_stats(node))["shards"][k]["updates"] > more_than)

        await eventually(lambda: learnt(0, 100), timeout=20.0, what="100 batches from shard 0")
        await eventually(lambda: learnt(1, 100), timeout=20.0, what="100 batches from shard 1")
        started = (await node.spawn(_nothing)).id - first.id - 1
        assert started == 0, f"the loop started {started} processes for its 200 batches"
        fetchers = [s["fetcher"] for s in (await _loop_stats(node))["shards"]]
        assert len(set(fetchers)) == 2 and all(pid in node.processes() for pid in fetchers)

        node.kill(fetchers[0])  # (nothing in the loop kills one: a bug, or a hand in the shell)

        async def replaced() -> dict[str, Any] | None:
            stats = await _loop_stats(node)
            return stats if stats["shards"][0]["fetcher"] != fetchers[0] else None

        stats = await eventually(replaced, what="another fetcher for shard 0")
        assert stats["shards"][1]["fetcher"] == fetchers[1] and stats["shards"][0]["errors"] == 1
        assert "shard 0: its fetcher exited (killed)" in stats["last_error"]
        done = stats["shards"][0]["updates"]
        await eventually(lambda: learnt(0, done + 50), timeout=20.0, what="shard 0 sampled by its new fetcher")
        assert node.whereis("loop") == loop  # the loop went on: no restart, its counts kept

        fetchers = [s["fetcher"] for s in (await _loop_stats(node))["shards"]]
        await node.stop("loop")  # a normal stop: the fetchers go with it

        async def fetchers_gone() -> bool:
            return not set(fetchers) & set(node.processes())

        await eventually(fetchers_gone, what="the fetchers ended with their loop")


async def test_a_held_back_or_away_shard_does_not_stop_learning_from_the_other() -> None:
    async with Node("shards") as node:
        await node.start(FakeShard, 0, name="shard-0")
        await node.start(FakeShard, 1, True, name="shard-1")  # its limiter holds every sample back
        await node.start(FakeLearner, name="learner")
        await node.start(LearnerLoop, ["shard-0", "shard-1"], "learner", 8, name="loop")

        async def learnt_from(k: int, more_than: int) -> bool:
            return bool((await _loop_stats(node))["shards"][k]["updates"] > more_than)

        async def shard_one_held_back() -> bool:
            return bool((await _loop_stats(node))["shards"][1]["held_back"] >= 3)

        await eventually(shard_one_held_back, timeout=20.0, what="shard 1 holding back")
        stats = await _loop_stats(node)
        assert stats["shards"][1]["updates"] == 0 and stats["shards"][0]["updates"] > 50  # shard 0 went on alone
        await node.call("shard-1", ["hold", False])
        await eventually(lambda: learnt_from(1, 0), timeout=20.0, what="shard 1 sampled once it allows it")

        await node.stop("shard-1")  # away: its requests fail, shard 0's go on
        before = (await _loop_stats(node))["shards"]
        await eventually(lambda: learnt_from(0, before[0]["updates"] + 50), timeout=20.0, what="shard 0 goes on")

        async def shard_one_missed() -> bool:
            return bool((await _loop_stats(node))["shards"][1]["errors"] > 0)

        await eventually(shard_one_missed, timeout=20.0, what="the loop noticing shard 1 is away")
        await node.start(FakeShard, 1, name="shard-1")  # back (as its supervisor would restart it)
        away = (await _loop_stats(node))["shards"][1]["updates"]
        await eventually(lambda: learnt_from(1, away), timeout=20.0, what="shard 1 sampled again once it is back")


async def test_each_shard_holds_exactly_what_its_own_actors_sent() -> None:
    """Three actors over two real shards, from run.py's child specs: shard k holds what actors i mod 2 == k sent.

    No loop samples, so each shard's rate limiter soon has no insert headroom and every
    actor pauses for good (``throttle``): then what they sent can be compared exactly.
    """
    pytest.importorskip("torch")
    pytest.importorskip("gymnasium")
    from beamrl.rl.apex.actor import ApexActor
    from beamrl.rl.deep.learner import Learner
    from beamrl.rl.replay_server import ReplayServer

    cfg = apex_config("CartPole-v1", {"hidden": [32, 32], "batch_size": 64, "num_envs": 2, "replay_shards": 2})
    async with Node("sharded") as node:
        for name in replay_names(cfg):
            limiter = cfg.limiter()
            await node.start(ReplayServer, cfg.shard_capacity(), prioritized=True, rate_limiter=limiter, name=name)
        await node.start(Learner, "dqn", "CartPole-v1", cfg.learner_overrides(), 0, name="learner")
        for i in range(3):
            args = actor_spec("CartPole-v1", cfg, i, 3, 0, "sharded")["args"]
            await node.start(ApexActor, *args, name=f"actor-{i}")

        async def all_paused() -> bool:
            return all([(await node.call(f"actor-{i}", ["progress"]))["paused_s"] > 0 for i in range(3)])

        await eventually(all_paused, timeout=60.0, what="every actor paused by its shard's limiter")
        sent = [(await node.call(f"actor-{i}", ["progress"]))["sent"] for i in range(3)]
        added = [(await node.call(name, ["stats"]))["total_added"] for name in replay_names(cfg)]
        assert added == [sent[0] + sent[2], sent[1]] and min(sent) > 0


def test_a_sharded_run_learns_from_every_shard_and_restarts_a_killed_one(tmp_path: Path) -> None:
    """--nodes 2 with 2 shards: one actor per shard, both sampled, shard 0 killed and restored from its checkpoint."""
    pytest.importorskip("torch")
    pytest.importorskip("gymnasium")
    small = ["hidden=[32,32]", "batch_size=64", "samples_per_insert=8", "min_replay=500", "eval_every=100000"]
    sets = [x for item in [*small, "replay_shards=2", "replay_checkpoint_s=1"] for x in ("--set", item)]
    args = ["--nodes", "2", "--steps", "16000", "--out", "run", "--quiet", "--kill-at", "12000:replay-0", *sets]
    result = beamrl("train", "apex-dqn", "CartPole-v1", *args, cwd=tmp_path, timeout=90)
    assert result.returncode == 0, result.stdout + result.stderr
    run = tmp_path / "run"
    summary = json.loads((run / "summary.json").read_text())
    replay = summary["replay"]
    shards = replay["shards"]
    assert [s["name"] for s in shards] == ["replay-0", "replay-1"]
    assert all(s["capacity"] == summary["hyper"]["buffer_size"] // 2 for s in shards)
    assert all(s["inserts"] > 0 and s["learned_batches"] > 0 for s in shards)  # fed by its actor, learnt from
    assert replay["total_added"] == sum(s["total_added"] for s in shards)
    assert sum(s["learned_batches"] for s in shards) == summary["learner_updates"]
    assert [e["target"] for e in summary["events"] if e["event"] == "killed"] == ["replay-0"]
    assert summary["restarts"]["replay-0"] == 1 and summary["restarts"]["replay-1"] == 0
    assert shards[0]["restored"] > 0  # from the checkpoint it wrote before the kill
    for name in ("replay-0", "replay-1", "metrics.csv", "model.safetensors"):
        assert (run / name).exists(), name
    assert not (run / "replay").exists()


def test_a_run_with_more_shards_than_actors_or_an_unknown_shard_is_refused(tmp_path: Path) -> None:
    result = beamrl(
        *("train", "apex-dqn", "CartPole-v1", "--nodes", "1", "--set", "replay_shards=2", "--out", "run"),
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode != 0 and "replay_shards=2 needs at least as many actors" in result.stderr
    result = beamrl(
        *("train", "apex-dqn", "CartPole-v1", "--nodes", "2", "--set", "replay_shards=2", "--out", "run"),
        *("--kill-at", "100:replay-2"),
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode != 0 and "replay_shards=2 runs replay-0, replay-1" in result.stderr
    assert not (tmp_path / "run" / "learner").exists()
