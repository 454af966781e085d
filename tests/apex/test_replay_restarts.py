"""A replay (or shard) restarted mid-run: priorities of its earlier process's batches, and what its kills lost."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from beamrl import GenServer, Node, child
from beamrl.api import reply
from beamrl.gen_server import NoReply
from beamrl.rl.apex.config import apex_config
from beamrl.rl.apex.loop import LearnerLoop
from beamrl.rl.apex.shards import replay_stats, replay_summary
from beamrl.rl.replay import ReplayError, StaleIndex
from beamrl.rl.replay.ledger import LEDGER, LEDGER_FORMAT, Ledger, read_ledger, write_ledger
from beamrl.rl.replay_server import ReplayServer
from beamrl.testing import eventually
from tests.rl.test_replay_server import columns

BIG = 1e6  #: a priority no transition has: an update that was applied shows in every weight


def replay_child(name: str, d: Path) -> Any:
    """A prioritized replay that checkpoints only when asked (so a kill loses what came after)."""
    return child(
        ReplayServer,
        1_000,
        checkpoint_dir=str(d),
        checkpoint_every=None,
        prioritized=True,
        alpha=1.0,
        seed=0,
        name=name,
    )


async def kill_and_wait(node: Node, name: str) -> dict[str, Any]:
    """Kill ``name`` in place (nothing of it runs, as ``kill -9``) and return its restarted process's stats."""
    old = node.whereis(name)
    node.kill(name)
    await eventually(lambda: node.whereis(name) not in (None, old), what=f"{name} restarted")
    stats: dict[str, Any] = await node.call(name, ["stats"])
    return stats


async def weights(node: Node, n: int = 150) -> np.ndarray:
    """The importance weights of the ``n`` latest transitions: they move with any priority set."""
    batch = await node.call("replay", ["sample", n, "latest"])
    return np.asarray(batch["weights"])


async def test_priorities_for_a_batch_of_the_process_before_a_restart_are_dropped_not_applied(
    node: Node, tmp_path: Path
) -> None:
    await node.start_supervisor([replay_child("replay", tmp_path)], max_restarts=5, max_seconds=60)
    await node.call("replay", ["add_batch", columns(0, 100)])
    await node.call("replay", ["checkpoint"])
    await node.call("replay", ["add_batch", columns(100, 50)])  # ids 100..149: lost by the kill below
    old = await node.call("replay", ["sample", 50, "latest"])  # a learner's batch, still out at the kill
    first = (await node.call("replay", ["stats"]))["incarnation"]
    assert old["incarnation"] == first
    np.testing.assert_array_equal(old["indices"], np.arange(100, 150))

    stats = await kill_and_wait(node, "replay")
    assert stats["lost"] == 50 and stats["incarnation"] != first  # a new process, a new incarnation
    await node.call("replay", ["add_batch", columns(500, 50)])  # ids 100..149 again, other transitions
    before = await weights(node)
    # the learner's priorities for the old batch arrive now, as casts, a call and a skipping call
    node.cast("replay", ["update_priorities", old["indices"], np.full(50, BIG), first])
    node.cast("replay", ["update_priorities", old["indices"], np.full(50, BIG), "skip", first])
    with pytest.raises(StaleIndex, match=f"sampled from incarnation {first}, not this one"):
        await node.call("replay", ["update_priorities", old["indices"], np.full(50, BIG), first])
    request = ["update_priorities", old["indices"], np.full(50, BIG), "skip", first]
    assert await node.call("replay", request) == 0
    np.testing.assert_array_equal(await weights(node), before)  # none of them was applied
    stats = await node.call("replay", ["stats"])
    assert stats["foreign_updates"] == stats["foreign_updates_total"] == 4
    assert stats["rejected_casts"] == 0  # not bad input: an update that came too late

    # this process's batches set priorities, named or not (the form callers used before incarnations)
    new = await node.call("replay", ["sample", 10, "latest"])
    node.cast("replay", ["update_priorities", new["indices"], np.full(10, BIG), new["incarnation"]])
    named = await weights(node)
    assert not np.array_equal(named, before)
    assert await node.call("replay", ["update_priorities", np.arange(100, 110), np.full(10, 2 * BIG)]) == 10
    assert not np.array_equal(await weights(node), named)

    # an incarnation that is not an integer is bad input: refused in a call, dropped and counted in a cast
    for bad in (True, "x", 1.5):
        with pytest.raises(ReplayError, match="the batch's incarnation \\(an integer\\)"):
            await node.call("replay", ["update_priorities", new["indices"], np.ones(10), bad])
        node.cast("replay", ["update_priorities", new["indices"], np.ones(10), bad])
    stats = await node.call("replay", ["stats"])
    assert stats["rejected_casts"] == 3 and stats["foreign_updates"] == 4


class HoldingLearner(GenServer):
    """Learns nothing; answers every row's |TD error| as ``BIG``, and while holding keeps its answers back.

    ``["release", hold]`` sends the answers held so far and answers the incarnations of their
    batches; with ``hold`` it holds the next ones too (the loop stops at its next batch).
    """

    async def init(self) -> None:
        self.version, self.hold = 0, True
        self.held: list[tuple[Any, dict[str, Any], Any]] = []

    async def handle_call(self, request: Any, from_: Any) -> Any:
        match request:
            case ["learn", batch]:
                self.version += 1
                answer = {"version": self.version, "td": np.full(len(batch["indices"]), BIG)}
                if not self.hold:
                    return answer
                self.held.append((from_, answer, batch.get("incarnation")))
                return NoReply
            case ["held"]:
                return len(self.held)
            case ["release", hold]:
                released = [incarnation for _, _, incarnation in self.held]
                for to, answer, _ in self.held:
                    reply(to, answer)
                self.held, self.hold = [], hold
                return released
        raise ValueError(request)


async def test_the_learner_loop_names_the_incarnation_so_a_restarted_replay_drops_its_old_batches(
    node: Node, tmp_path: Path
) -> None:
    """The loop holds a batch (and prefetched the next) while the replay is killed and restored;
    the ids those batches name are handed out again. Their priorities must not land there."""
    await node.start_supervisor([replay_child("replay", tmp_path)], max_restarts=5, max_seconds=60)
    await node.call("replay", ["add_batch", columns(0, 100)])
    await node.call("replay", ["checkpoint"])
    await node.call("replay", ["add_batch", columns(100, 50)])
    await node.start(HoldingLearner, name="learner")
    loop = await node.start(LearnerLoop, "replay", "learner", 64, name="loop")

    async def a_batch_held() -> bool:
        return bool(await node.call("learner", ["held"]) >= 1)

    await eventually(a_batch_held, what="the loop's first batch at the learner")
    stats = await kill_and_wait(node, "replay")
    assert stats["lost"] == 50
    await node.call("replay", ["add_batch", columns(500, 50)])  # the lost ids name new transitions now
    before = await weights(node)
    released: list[Any] = await node.call("learner", ["release", True])  # the batch held over the kill
    await eventually(a_batch_held, what="the loop at its next batch (the last one's update sent)")
    np.testing.assert_array_equal(await weights(node), before)  # its priorities changed nothing

    first, second = released[0], stats["incarnation"]
    assert first is not None and first != second
    while second not in released:  # the batches of the first process first, then one of the second's
        released += await node.call("learner", ["release", True])
        await eventually(a_batch_held, what="the loop at its next batch (the last one's update sent)")
        stats = await node.call("replay", ["stats"])
        assert stats["foreign_updates"] == released.count(first), (released, stats)
        if second not in released:
            np.testing.assert_array_equal(await weights(node), before)  # the old batches changed nothing
        assert len(released) < 10, released
    assert released.count(first) >= 1 and released[-1] == second
    assert not np.array_equal(await weights(node), before)  # the new process's batch did set its priorities
    assert node.whereis("loop") == loop  # the loop never crashed over it
    await node.call("learner", ["release", False])


async def test_summary_lost_sums_every_kill_of_every_shard(node: Node, tmp_path: Path) -> None:
    """Shard 0 killed twice (30 then 20 lost), shard 1 once (10 lost): summary.json's lost is 60, not the last."""
    cfg = apex_config("CartPole-v1", {"replay_shards": 2})
    specs = [replay_child(f"replay-{k}", tmp_path / f"replay-{k}") for k in range(2)]
    await node.start_supervisor(specs, max_restarts=5, max_seconds=60)

    async def lose(name: str, start: int, kept: int, lost: int) -> dict[str, Any]:
        await node.call(name, ["add_batch", columns(start, kept)])
        await node.call(name, ["checkpoint"])
        await node.call(name, ["add_batch", columns(start + kept, lost)])
        return await kill_and_wait(node, name)

    async def summary() -> dict[str, Any]:
        stats = await replay_stats(node, cfg, quiet=False)
        assert stats is not None
        return replay_summary(stats, {"shards": [{"updates": 0}, {"updates": 0}]})

    assert (await lose("replay-0", 0, 100, 30))["lost"] == 30
    assert (await lose("replay-0", 100, 40, 20))["lost"] == 20  # each restore reports its own
    assert (await lose("replay-1", 0, 100, 10))["lost"] == 10
    run = await summary()
    assert run["lost"] == 60 and [s["lost"] for s in run["shards"]] == [50, 10]
    assert run["total_added"] == 140 + 100 and [s["restored"] for s in run["shards"]] == [140, 100]

    # the count of dropped updates lasts over kills too: one from a batch of an earlier process
    stats = await node.call("replay-1", ["stats"])
    node.cast("replay-1", ["update_priorities", np.arange(3), np.ones(3), stats["incarnation"] + 1])
    stats = await lose("replay-1", 100, 10, 5)
    assert stats["lost"] == 5 and stats["lost_total"] == 15  # this restore's, and over every one
    assert stats["foreign_updates"] == 0 and stats["foreign_updates_total"] == 1
    run = await summary()
    assert run["lost"] == 65 and [s["lost"] for s in run["shards"]] == [50, 15]
    assert run["foreign_updates"] == 1 and [s["foreign_updates"] for s in run["shards"]] == [0, 1]


def test_a_ledger_keeps_the_counts_over_incarnations_and_reads_an_older_record(tmp_path: Path) -> None:
    older = {"format": LEDGER_FORMAT, "total_added": 42, "time": 1.0}  # written before the counts existed
    (tmp_path / LEDGER).write_text(json.dumps(older).ljust(128))
    assert read_ledger(tmp_path) == Ledger(42, 0, 0)
    write_ledger(tmp_path, Ledger(7, 3, 1))  # shorter than what it overwrites: still one record
    assert read_ledger(tmp_path) == Ledger(7, 3, 1)
    (tmp_path / LEDGER).write_text(json.dumps(older | {"lost": -1}))
    assert read_ledger(tmp_path) is None  # not a count: losses unknown, never a crash
