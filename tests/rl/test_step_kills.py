"""``--kill-at`` of runs over nodes (apex-dqn, a3c): one parser, one check of the node numbers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from beamrl import GenServer, Node, child
from beamrl.rl.training.actors import Faults, StepKill, check_step_kills, parse_step_kills
from beamrl.testing import eventually

TARGETS = ("actor-node", "learner", "replay")


def test_kills_parse_with_an_optional_actor_node_number_and_come_out_in_step_order() -> None:
    kills = parse_step_kills(["35000:actor-node:1", "15000:learner", "25000:replay", "5:actor-node"], TARGETS)
    assert kills == [
        StepKill(5, "actor-node", 0),
        StepKill(15000, "learner", 0),
        StepKill(25000, "replay", 0),
        StepKill(35000, "actor-node", 1),
    ]


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("100:actor", "--kill-at expects STEP:TARGET with TARGET one of actor-node, learner, replay"),
        ("x:learner", "got 'x:learner'"),
        ("100:actor-node:-1", "the actor node must be a number from 0 (STEP:actor-node:I), got '-1'"),
        ("100:actor-node:1.5", "got '1.5'"),
        ("100:actor-node:", "got ''"),
        ("100:replay:0", "only actor-node takes a node number"),
    ],
)
def test_a_bad_kill_is_refused_naming_what_was_wrong(item: str, message: str) -> None:
    with pytest.raises(ValueError, match="--kill-at") as info:
        parse_step_kills([item], TARGETS)
    assert message in str(info.value)


def test_the_node_number_must_be_one_the_run_starts() -> None:
    kills = parse_step_kills(["100:actor-node:1", "50:learner"], TARGETS)
    assert check_step_kills(kills, TARGETS, nodes=2) == sorted(kills)
    with pytest.raises(ValueError, match=r"100:actor-node:1 .* starts actor nodes 0\.\.0: give --nodes K > 1"):
        check_step_kills(kills, TARGETS, nodes=1)
    with pytest.raises(ValueError, match="starts no actor nodes"):
        check_step_kills([(100, "actor-node")], TARGETS, nodes=0)
    with pytest.raises(ValueError, match="unknown target 'qserver'"):
        check_step_kills([(100, "qserver")], TARGETS, nodes=1)
    # plain tuples, as Python callers pass them, become StepKills (node 0 unless given)
    assert check_step_kills([(9, "actor-node", 1), (3, "replay")], TARGETS, nodes=2) == [
        StepKill(3, "replay", 0),
        StepKill(9, "actor-node", 1),
    ]


def test_a_run_is_settled_once_every_fault_was_injected_and_recovered_from(tmp_path: Path) -> None:
    events: list[tuple[str, dict[str, Any]]] = []
    faults = Faults([StepKill(10, "learner")], None, tmp_path, lambda kind, **info: events.append((kind, info)))
    assert not faults.settled([])  # the learner kill is still to come
    faults.pending.clear()
    faults.killed["learner"] = None  # killed, not back yet
    assert not faults.settled([])
    faults.killed.clear()
    faults.nodes_killed.add("run-actor2")
    assert not faults.settled([("run-actor1", True), ("run-actor2", False)])  # its worker has not rejoined
    assert faults.settled([("run-actor1", False), ("run-actor2", True)])  # a node no fault killed does not count
    assert events == []


class Restored(GenServer):
    """Stands for a replay: its ``stats`` tell which life it is."""

    async def init(self, lives: list[int]) -> None:
        lives.append(len(lives))
        self.life = lives[-1]

    async def handle_call(self, request: Any, from_: Any) -> Any:
        return {"total_added": 100 * self.life, "lost": self.life}


async def test_a_second_kill_of_a_process_waits_until_it_is_back_from_the_first(tmp_path: Path) -> None:
    """Both kills due in one poll: one kill now, the next once the first restart was seen, and the
    last restart reported at the end of the run (``wait_back``) rather than left out of the events."""
    events: list[tuple[str, dict[str, Any]]] = []
    kills = [StepKill(10, "replay"), StepKill(20, "replay")]
    faults = Faults(kills, None, tmp_path, lambda kind, **info: events.append((kind, info)))
    lives: list[int] = []
    async with Node("faults") as node:
        await node.start_supervisor([child(Restored, lives, name="replay")], max_restarts=5, max_seconds=60)
        await faults.step(node, 25)
        assert [kind for kind, _ in events] == ["killed"] and len(faults.pending) == 1
        await eventually(lambda: len(lives) == 2, what="the first restart")
        await faults.step(node, 26)  # the first one is back: reported, and the second kill goes in
        assert [kind for kind, _ in events] == ["killed", "restarted", "killed"]
        await faults.wait_back(node)
    assert [(kind, info.get("lost")) for kind, info in events][-1] == ("restarted", 2)
    assert not faults.killed and not faults.pending and len(lives) == 3
