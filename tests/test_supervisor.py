"""Supervisor semantics: strategies, restart types, intensity, shutdown, nesting, dynamic children."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from beamrl import DynamicSupervisor, Node, NoProc, Rejected, Supervisor, child
from beamrl.testing import Counter, FailsToStart, Journal, SlowToDie, eventually


async def _pids(node: Node, sup: Any) -> dict[str, Any]:
    return {c.id: c.pid for c in await node.which_children(sup)}


async def _crash(node: Node, name: str) -> Any:
    """Crash the named child and wait until its name is free."""
    old = node.whereis(name)
    node.cast(name, ["crash", "injected"])
    await eventually(lambda: node.whereis(name) not in (None, old), what=f"{name} restarted")
    return old


async def _start(node: Node, strategy: str, **flags: Any) -> Any:
    await node.start(Journal, name="journal")
    return await node.start_supervisor(
        [child(Counter, 0, "journal", name=n) for n in ("a", "b", "c")], strategy=strategy, name="sup", **flags
    )


async def test_children_start_in_order_and_stop_in_reverse(node: Node) -> None:
    sup = await _start(node, "one_for_one")
    await node.stop(sup)
    entries = await node.call("journal", ["entries"])
    assert entries == [
        ("a", "init"),
        ("b", "init"),
        ("c", "init"),
        ("c", "terminate:shutdown"),
        ("b", "terminate:shutdown"),
        ("a", "terminate:shutdown"),
    ]


async def test_one_for_one_restarts_only_the_crashed_child(node: Node) -> None:
    sup = await _start(node, "one_for_one")
    before = await _pids(node, sup)
    await _crash(node, "b")
    after = await _pids(node, sup)
    assert after["a"] == before["a"] and after["c"] == before["c"]
    assert after["b"] not in (None, before["b"])
    restarts = {c.id: c.restarts for c in await node.which_children(sup)}
    assert restarts == {"a": 0, "b": 1, "c": 0}
    assert await node.call("b", ["get"]) == 0  # a fresh state


async def test_one_for_all_restarts_every_child_in_order(node: Node) -> None:
    sup = await _start(node, "one_for_all")
    before = await _pids(node, sup)
    await node.call("journal", ["clear"])
    await _crash(node, "b")
    await eventually(lambda: node.whereis("c") not in (None, before["c"]), what="c restarted")
    after = await _pids(node, sup)
    assert all(after[k] not in (None, before[k]) for k in "abc")
    entries = await node.call("journal", ["entries"])
    assert entries == [
        ("b", "terminate:RuntimeError"),
        ("c", "terminate:shutdown"),
        ("a", "terminate:shutdown"),
        ("a", "init"),
        ("b", "init"),
        ("c", "init"),
    ]


async def test_rest_for_one_restarts_the_child_and_those_after_it(node: Node) -> None:
    sup = await _start(node, "rest_for_one")
    before = await _pids(node, sup)
    await _crash(node, "b")
    await eventually(lambda: node.whereis("c") not in (None, before["c"]), what="c restarted")
    after = await _pids(node, sup)
    assert after["a"] == before["a"]
    assert after["b"] != before["b"] and after["c"] != before["c"]


async def test_a_transient_child_that_exits_normally_is_not_restarted(node: Node) -> None:
    sup = await node.start_supervisor([child(Counter, 0, name="t", restart="transient")])
    ref = node.monitor("t")
    node.cast("t", ["stop", "normal"])
    assert (await node.receive(timeout=2)).ref == ref
    [info] = await node.which_children(sup)
    assert info.pid is None and info.restarts == 0


async def test_a_transient_child_that_crashes_is_restarted(node: Node) -> None:
    sup = await node.start_supervisor([child(Counter, 0, name="t", restart="transient")])
    await _crash(node, "t")
    [info] = await node.which_children(sup)
    assert info.pid is not None and info.restarts == 1


async def test_a_temporary_child_is_never_restarted_and_is_forgotten(node: Node) -> None:
    sup = await node.start_supervisor(
        [child(Counter, 0, name="tmp", restart="temporary"), child(Counter, 0, name="keep")]
    )
    ref = node.monitor("tmp")
    node.cast("tmp", ["crash", "gone"])
    assert (await node.receive(timeout=2)).ref == ref
    assert [c.id for c in await node.which_children(sup)] == ["keep"]


async def test_too_many_restarts_stop_the_supervisor_and_its_children_in_reverse(node: Node) -> None:
    await node.start(Journal, name="journal")
    sup = await node.start_supervisor(
        [child(Counter, 0, "journal", name=n) for n in ("a", "b", "c")],
        max_restarts=2,
        max_seconds=60,
        name="sup",
    )
    ref = node.monitor(sup)
    await _crash(node, "b")
    await _crash(node, "b")
    await node.call("journal", ["clear"])
    node.cast("b", ["crash", "third strike"])
    down = await node.receive(timeout=2)
    assert (down.ref, down.reason) == (ref, "shutdown")
    entries = await node.call("journal", ["entries"])
    assert entries == [("b", "terminate:RuntimeError"), ("c", "terminate:shutdown"), ("a", "terminate:shutdown")]
    assert node.whereis("a") is None and node.whereis("c") is None


async def test_restarts_outside_the_window_do_not_count(node: Node) -> None:
    sup = await node.start_supervisor([child(Counter, 0, name="w")], max_restarts=1, max_seconds=0.05)
    for _ in range(4):
        await _crash(node, "w")
        await asyncio.sleep(0.06)  # the behaviour under test: letting the intensity window pass
    assert (await node.which_children(sup))[0].restarts == 4


async def test_intensity_escalates_to_the_parent_supervisor(node: Node) -> None:
    inner = child(Supervisor, [child(Counter, 0, name="leaf")], max_restarts=0, name="inner")
    top = await node.start_supervisor([child(Counter, 0, name="sibling"), inner], strategy="one_for_one", name="top")
    before = await _pids(node, top)
    old_leaf = node.whereis("leaf")
    node.cast("leaf", ["crash", "escalate"])
    await eventually(lambda: node.whereis("inner") not in (None, before["inner"]), what="inner restarted")
    await eventually(lambda: node.whereis("leaf") not in (None, old_leaf), what="leaf back")
    after = {c.id: c for c in await node.which_children(top)}
    assert after["inner"].restarts == 1
    assert after["sibling"].pid == before["sibling"]


async def test_shutdown_timeout_then_kill(node: Node) -> None:
    await node.start(Journal, name="journal")
    sup = await node.start_supervisor([child(SlowToDie, 30.0, "journal", name="slow", shutdown=0.05)])
    await node.stop(sup)
    entries = await node.call("journal", ["entries"])
    assert entries == [("slow", "terminating")]  # never reached "terminated": killed
    assert node.whereis("slow") is None


async def test_a_child_failing_to_start_fails_the_supervisor_start_and_stops_the_others(node: Node) -> None:
    await node.start(Journal, name="journal")
    with pytest.raises(RuntimeError, match="no luck today"):
        await node.start_supervisor([child(Counter, 0, "journal", name="ok"), child(FailsToStart, name="bad")])
    assert node.whereis("ok") is None
    assert await node.call("journal", ["entries"]) == [("ok", "init"), ("ok", "terminate:shutdown")]


async def test_nested_supervisors_report_their_own_children(node: Node) -> None:
    top = await node.start_supervisor(
        [child(Supervisor, [child(Counter, 1, name="x"), child(Counter, 2, name="y")], name="inner")], name="top"
    )
    [inner] = await node.which_children(top)
    assert inner.kind == "supervisor" and inner.name == "inner"
    assert [c.id for c in await node.which_children("inner")] == ["x", "y"]
    assert await node.call("y", ["get"]) == 2
    await node.stop(top)
    assert node.whereis("x") is None and node.whereis("inner") is None


async def test_static_supervisor_terminate_restart_delete_child(node: Node) -> None:
    sup = await node.start_supervisor([child(Counter, 0, name="a")])
    await node.terminate_child(sup, "a")
    assert (await node.which_children(sup))[0].pid is None
    await node.call(sup, ["restart_child", "a"])
    assert node.whereis("a") is not None
    with pytest.raises(Rejected, match="running"):
        await node.call(sup, ["delete_child", "a"])
    await node.terminate_child(sup, "a")
    await node.call(sup, ["delete_child", "a"])
    assert await node.which_children(sup) == []
    with pytest.raises(Rejected, match="no child"):
        await node.terminate_child(sup, "a")


async def test_dynamic_supervisor_adds_and_removes_children_within_max_children(node: Node) -> None:
    sup = await node.start(DynamicSupervisor, max_children=2, name="dyn")
    p1 = await node.start_child(sup, child(Counter, 1))
    p2 = await node.start_child(sup, child(Counter, 2, name="two"))
    with pytest.raises(Rejected, match="max_children=2"):
        await node.start_child(sup, child(Counter, 3))
    assert [c.pid for c in await node.which_children(sup)] == [p1, p2]
    await node.terminate_child(sup, p1)
    with pytest.raises(NoProc):
        await node.call(p1, ["get"])
    assert [c.pid for c in await node.which_children(sup)] == [p2]
    old = await _crash(node, "two")
    assert old == p2
    [info] = await node.which_children(sup)
    assert info.restarts == 1 and info.pid == node.whereis("two")
    with pytest.raises(Rejected, match="failed to start"):
        await node.start_child(sup, child(FailsToStart))


async def test_dynamic_supervisor_refuses_other_strategies(node: Node) -> None:
    with pytest.raises(ValueError, match="one_for_one"):
        await node.start(DynamicSupervisor, strategy="one_for_all")


async def test_bad_child_specs_and_flags_are_refused_clearly(node: Node) -> None:
    with pytest.raises(ValueError, match="restart must be one of"):
        child(Counter, restart="sometimes")
    with pytest.raises(ValueError, match="shutdown must be"):
        child(Counter, shutdown=-1)
    with pytest.raises(TypeError, match="Process subclass"):
        child(int)
    with pytest.raises(ValueError, match="strategy must be one of"):
        await node.start_supervisor([], strategy="all_for_none")
    with pytest.raises(ValueError, match="two children with the id"):
        await node.start_supervisor([child(Counter, name="x"), child(Counter, name="x")])
