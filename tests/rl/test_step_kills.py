"""``--kill-at`` of runs over nodes (apex-dqn, a3c): one parser, one check of the node numbers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from beamrl.rl.training.actors import Faults, StepKill, check_step_kills, parse_step_kills

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
