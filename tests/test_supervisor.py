"""Supervisor semantics: strategies, restart types, intensity, shutdown, nesting, dynamic children.

Each test runs with the supervisors on the test's own node and on a peer node in another
OS process (``host``, see tests/conftest.py); child specs travel there as mappings.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from beamrl import DynamicSupervisor, Node, NoProc, Rejected, Supervisor, child
from beamrl.testing import Counter, FailsToStart, Host, Journal, SlowToDie, eventually


async def _pids(node: Node, sup: Any) -> dict[str, Any]:
    return {c.id: c.pid for c in await node.which_children(sup)}


async def _replaced(host: Host, name: str, old: Any) -> bool:
    """True once ``name`` is held by a process other than ``old``."""
    return await host.whereis(name) not in (None, old)


async def _crash(host: Host, name: str) -> Any:
    """Crash the named child and wait until a new process holds its name and has started.

    A name is registered before ``init`` runs, so the new process is also called once:
    its ``init`` (and what it sent, such as a journal entry) is then behind us.
    """
    old = await host.whereis(name)
    host.node.cast(host.at(name), ["crash", "injected"])
    await eventually(lambda: _replaced(host, name, old), what=f"{name} restarted")
    await host.node.call(host.at(name), ["get"])
    return old


async def _start(host: Host, strategy: str, **flags: Any) -> Any:
    await host.start(Journal, name="journal")
    return await host.start_supervisor(
        [child(Counter, 0, "journal", name=n) for n in ("a", "b", "c")], strategy=strategy, name="sup", **flags
    )


async def test_children_start_in_order_and_stop_in_reverse(host: Host) -> None:
    node = host.node
    sup = await _start(host, "one_for_one")
    await node.stop(sup)
    entries = await node.call(host.at("journal"), ["entries"])
    assert entries == [
        ("a", "init"),
        ("b", "init"),
        ("c", "init"),
        ("c", "terminate:shutdown"),
        ("b", "terminate:shutdown"),
        ("a", "terminate:shutdown"),
    ]


async def test_one_for_one_restarts_only_the_crashed_child(host: Host) -> None:
    node = host.node
    sup = await _start(host, "one_for_one")
    before = await _pids(node, sup)
    await _crash(host, "b")
    after = await _pids(node, sup)
    assert after["a"] == before["a"] and after["c"] == before["c"]
    assert after["b"] not in (None, before["b"])
    restarts = {c.id: c.restarts for c in await node.which_children(sup)}
    assert restarts == {"a": 0, "b": 1, "c": 0}
    assert await node.call(host.at("b"), ["get"]) == 0  # a fresh state


async def test_one_for_all_restarts_every_child_in_order(host: Host) -> None:
    node = host.node
    sup = await _start(host, "one_for_all")
    before = await _pids(node, sup)
    await node.call(host.at("journal"), ["clear"])
    await _crash(host, "b")
    await eventually(lambda: _replaced(host, "c", before["c"]), what="c restarted")
    await node.call(host.at("c"), ["get"])  # c's init (and its journal entry) is done
    after = await _pids(node, sup)
    assert all(after[k] not in (None, before[k]) for k in "abc")
    entries = await node.call(host.at("journal"), ["entries"])
    assert entries == [
        ("b", "terminate:RuntimeError"),
        ("c", "terminate:shutdown"),
        ("a", "terminate:shutdown"),
        ("a", "init"),
        ("b", "init"),
        ("c", "init"),
    ]


async def test_rest_for_one_restarts_the_child_and_those_after_it(host: Host) -> None:
    node = host.node
    sup = await _start(host, "rest_for_one")
    before = await _pids(node, sup)
    await _crash(host, "b")
    await eventually(lambda: _replaced(host, "c", before["c"]), what="c restarted")
    await node.call(host.at("c"), ["get"])  # c's init (and its journal entry) is done
    after = await _pids(node, sup)
    assert after["a"] == before["a"]
    assert after["b"] != before["b"] and after["c"] != before["c"]


async def test_a_transient_child_that_exits_normally_is_not_restarted(host: Host) -> None:
    node = host.node
    sup = await host.start_supervisor([child(Counter, 0, name="t", restart="transient")])
    ref = node.monitor(host.at("t"))
    node.cast(host.at("t"), ["stop", "normal"])
    assert (await node.receive(timeout=2)).ref == ref
    [info] = await node.which_children(sup)
    assert info.pid is None and info.restarts == 0


async def test_a_transient_child_that_crashes_is_restarted(host: Host) -> None:
    node = host.node
    sup = await host.start_supervisor([child(Counter, 0, name="t", restart="transient")])
    await _crash(host, "t")
    [info] = await node.which_children(sup)
    assert info.pid is not None and info.restarts == 1


async def test_a_temporary_child_is_never_restarted_and_is_forgotten(host: Host) -> None:
    node = host.node
    sup = await host.start_supervisor(
        [child(Counter, 0, name="tmp", restart="temporary"), child(Counter, 0, name="keep")]
    )
    ref = node.monitor(host.at("tmp"))
    node.cast(host.at("tmp"), ["crash", "gone"])
    assert (await node.receive(timeout=2)).ref == ref
    assert [c.id for c in await node.which_children(sup)] == ["keep"]


async def test_too_many_restarts_stop_the_supervisor_and_its_children_in_reverse(host: Host) -> None:
    node = host.node
    await host.start(Journal, name="journal")
    sup = await host.start_supervisor(
        [child(Counter, 0, "journal", name=n) for n in ("a", "b", "c")],
        max_restarts=2,
        max_seconds=60,
        name="sup",
    )
    ref = node.monitor(sup)
    await _crash(host, "b")
    await _crash(host, "b")
    await node.call(host.at("journal"), ["clear"])
    node.cast(host.at("b"), ["crash", "third strike"])
    down = await node.receive(timeout=2)
    assert (down.ref, down.reason) == (ref, "shutdown")
    entries = await node.call(host.at("journal"), ["entries"])
    assert entries == [("b", "terminate:RuntimeError"), ("c", "terminate:shutdown"), ("a", "terminate:shutdown")]
    assert await host.whereis("a") is None and await host.whereis("c") is None


async def test_restarts_outside_the_window_do_not_count(host: Host) -> None:
    node = host.node
    sup = await host.start_supervisor([child(Counter, 0, name="w")], max_restarts=1, max_seconds=0.05)
    for _ in range(4):
        await _crash(host, "w")
        await asyncio.sleep(0.06)  # the behaviour under test: letting the intensity window pass
    assert (await node.which_children(sup))[0].restarts == 4


async def test_intensity_escalates_to_the_parent_supervisor(host: Host) -> None:
    node = host.node
    inner = child(Supervisor, [child(Counter, 0, name="leaf")], max_restarts=0, name="inner")
    top = await host.start_supervisor([child(Counter, 0, name="sibling"), inner], strategy="one_for_one", name="top")
    before = await _pids(node, top)
    old_leaf = await host.whereis("leaf")
    node.cast(host.at("leaf"), ["crash", "escalate"])
    await eventually(lambda: _replaced(host, "inner", before["inner"]), what="inner restarted")
    await eventually(lambda: _replaced(host, "leaf", old_leaf), what="leaf back")
    after = {c.id: c for c in await node.which_children(top)}
    assert after["inner"].restarts == 1
    assert after["sibling"].pid == before["sibling"]


async def test_shutdown_timeout_then_kill(host: Host) -> None:
    node = host.node
    await host.start(Journal, name="journal")
    sup = await host.start_supervisor([child(SlowToDie, 30.0, "journal", name="slow", shutdown=0.05)])
    await node.stop(sup)
    entries = await node.call(host.at("journal"), ["entries"])
    assert entries == [("slow", "terminating")]  # never reached "terminated": killed
    assert await host.whereis("slow") is None


async def test_a_child_failing_to_start_fails_the_supervisor_start_and_stops_the_others(host: Host) -> None:
    node = host.node
    await host.start(Journal, name="journal")
    with pytest.raises(RuntimeError, match="no luck today"):
        await host.start_supervisor([child(Counter, 0, "journal", name="ok"), child(FailsToStart, name="bad")])
    assert await host.whereis("ok") is None
    assert await node.call(host.at("journal"), ["entries"]) == [("ok", "init"), ("ok", "terminate:shutdown")]


async def test_nested_supervisors_report_their_own_children(host: Host) -> None:
    node = host.node
    top = await host.start_supervisor(
        [child(Supervisor, [child(Counter, 1, name="x"), child(Counter, 2, name="y")], name="inner")], name="top"
    )
    [inner] = await node.which_children(top)
    assert inner.kind == "supervisor" and inner.name == "inner"
    assert [c.id for c in await node.which_children(host.at("inner"))] == ["x", "y"]
    assert await node.call(host.at("y"), ["get"]) == 2
    await node.stop(top)
    assert await host.whereis("x") is None and await host.whereis("inner") is None


async def test_static_supervisor_terminate_restart_delete_child(host: Host) -> None:
    node = host.node
    sup = await host.start_supervisor([child(Counter, 0, name="a")])
    await node.terminate_child(sup, "a")
    assert (await node.which_children(sup))[0].pid is None
    await node.call(sup, ["restart_child", "a"])
    assert await host.whereis("a") is not None
    with pytest.raises(Rejected, match="running"):
        await node.call(sup, ["delete_child", "a"])
    await node.terminate_child(sup, "a")
    await node.call(sup, ["delete_child", "a"])
    assert await node.which_children(sup) == []
    with pytest.raises(Rejected, match="no child"):
        await node.terminate_child(sup, "a")


async def test_dynamic_supervisor_adds_and_removes_children_within_max_children(host: Host) -> None:
    node = host.node
    sup = await host.start(DynamicSupervisor, max_children=2, name="dyn")
    p1 = await host.start_child(sup, child(Counter, 1))
    p2 = await host.start_child(sup, child(Counter, 2, name="two"))
    with pytest.raises(Rejected, match="max_children=2"):
        await host.start_child(sup, child(Counter, 3))
    assert [c.pid for c in await node.which_children(sup)] == [p1, p2]
    await node.terminate_child(sup, p1)
    with pytest.raises(NoProc):
        await node.call(p1, ["get"])
    assert [c.pid for c in await node.which_children(sup)] == [p2]
    old = await _crash(host, "two")
    assert old == p2
    [info] = await node.which_children(sup)
    assert info.restarts == 1 and info.pid == await host.whereis("two")
    with pytest.raises(Rejected, match="failed to start"):
        await host.start_child(sup, child(FailsToStart))


async def test_dynamic_supervisor_refuses_other_strategies(host: Host) -> None:
    with pytest.raises(ValueError, match="one_for_one"):
        await host.start(DynamicSupervisor, strategy="one_for_all")


async def test_bad_child_specs_and_flags_are_refused_clearly(host: Host) -> None:
    with pytest.raises(ValueError, match="restart must be one of"):
        child(Counter, restart="sometimes")
    with pytest.raises(ValueError, match="shutdown must be"):
        child(Counter, shutdown=-1)
    with pytest.raises(TypeError, match="Process subclass"):
        child(int)
    with pytest.raises(ValueError, match="strategy must be one of"):
        await host.start_supervisor([], strategy="all_for_none")
    with pytest.raises(ValueError, match="two children with the id"):
        await host.start_supervisor([child(Counter, name="x"), child(Counter, name="x")])
