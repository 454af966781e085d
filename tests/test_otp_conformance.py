"""Deviations from OTP found by porting OTP's own gen_server and supervisor tests.

Each test states the OTP rule it checks; the Erlang behaviour is in comments.
"""

from __future__ import annotations

from typing import Any

import pytest

import beamrl
from beamrl import (
    DynamicSupervisor,
    GenServer,
    Ignore,
    Node,
    NoProc,
    NoReply,
    Rejected,
    StartRefused,
    Stop,
    child,
)
from beamrl.testing import Counter, FailsToStart, Journal, eventually
from beamrl.tree import spec_from_mapping

# -- processes these tests use ---------------------------------------------------------------


class Refuses(GenServer):
    """``init`` returns ``Stop(reason)``: OTP's ``{stop, Reason}``."""

    async def init(self, reason: Any = "normal") -> Any:
        return Stop(reason)


class Ignores(GenServer):
    """``init`` returns ``Ignore``: OTP's ``ignore``."""

    async def init(self, journal: str | None = None) -> Any:
        if journal is not None:
            beamrl.cast(journal, ["log", "ignores", "init"])
        return Ignore


class Starter(GenServer):
    """Starts others with ``start_link`` on request and keeps every message it receives."""

    async def init(self, trap_exit: bool) -> None:
        self.trap_exit = trap_exit
        self.seen: list[Any] = []

    async def handle_call(self, request: Any, from_: Any) -> Any:
        match request:
            case ["start_link", cls, args]:
                try:
                    pid = await beamrl.start_link(cls, *args)
                except StartRefused as exc:
                    return ("error", exc.reason)
                except RuntimeError as exc:
                    return ("raised", str(exc))
                return ("ok", pid)
            case ["seen"]:
                return list(self.seen)
        raise Rejected(f"unknown request {request!r}")

    async def handle_info(self, message: Any) -> Any:
        self.seen.append(message)
        return None


class Chains(GenServer):
    """``handle_continue`` asks for the next continue, three times in a row."""

    async def init(self, journal: str) -> None:
        self.journal = journal
        self.steps: list[int] = []
        self.continue_with(1)

    async def handle_continue(self, arg: Any) -> Any:
        self.steps.append(arg)
        if arg < 3:
            self.continue_with(arg + 1)
        else:
            beamrl.cast(self.journal, ["log", "chains", "done"])
        return None

    async def handle_call(self, request: Any, from_: Any) -> Any:
        return list(self.steps)


class FailsWhenGated(Counter):
    """A Counter whose ``init`` fails while the ``gate`` counter is above zero (and counts it down)."""

    async def init(self, start: int = 0, journal: str | None = None) -> None:
        if await beamrl.call("gate", ["get"]) > 0:
            await beamrl.call("gate", ["add", -1])
            if journal is not None:
                beamrl.cast(journal, ["log", "b", "init failed"])
            raise RuntimeError("gate closed")
        await super().init(start, journal)


class Barrier(GenServer):
    """Answers ``["arrive"]`` only once ``n`` callers have arrived."""

    async def init(self, n: int) -> None:
        self.n = n
        self.waiting: list[Any] = []

    async def handle_call(self, request: Any, from_: Any) -> Any:
        self.waiting.append(from_)
        if len(self.waiting) == self.n:
            for waiting in self.waiting:
                beamrl.reply(waiting, "go")
        return NoReply


class MeetsAtBarrier(GenServer):
    """Its ``terminate`` finishes only when every sibling is terminating at the same time."""

    async def init(self, journal: str) -> None:
        self.journal = journal

    async def terminate(self, reason: Any) -> None:
        await beamrl.call("barrier", ["arrive"], timeout=30.0)
        beamrl.cast(self.journal, ["log", str(self.pid), "released"])


def crash_reports(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "crashed" in r.getMessage()]


# -- 1. init returning Stop(reason) or Ignore --------------------------------------------------


async def test_init_stop_fails_start_with_the_reason_and_frees_the_name(node: Node) -> None:
    # {stop, Reason} -> start returns {error, Reason}
    with pytest.raises(StartRefused, match="not today") as info:
        await node.start(Refuses, "not today", name="refuser")
    assert info.value.reason == "not today"
    assert isinstance(info.value, NoProc)  # what start raised for it before: `except NoProc` keeps working
    assert node.whereis("refuser") is None
    assert await node.start(Counter, 0, name="refuser")


@pytest.mark.parametrize(
    ("cls", "answer"),
    [(Refuses, ("error", "normal")), (Ignores, ("ok", None)), (FailsToStart, ("raised", "no luck today"))],
)
async def test_a_failed_start_link_leaves_no_exit_in_a_trapping_starter(node: Node, cls: type, answer: Any) -> None:
    # OTP 26 proc_lib:start_link: when the start fails, the 'EXIT' message is consumed
    starter = await node.start(Starter, True)
    assert await node.call(starter, ["start_link", cls, []]) == answer
    node.send(starter, "marker")  # everything sent to it before is in its mailbox before this
    assert await eventually(lambda: node.call(starter, ["seen"]), what="the marker") == ["marker"]


async def test_init_stop_normal_leaves_a_linked_starter_running(node: Node, caplog: pytest.LogCaptureFixture) -> None:
    # {stop, normal}: an exit signal `normal` does not kill a non-trapping linked process
    starter = await node.start(Starter, False)
    assert await node.call(starter, ["start_link", Refuses, ["normal"]]) == ("error", "normal")
    assert await node.call(starter, ["seen"]) == []
    assert crash_reports(caplog) == []


async def test_init_stop_with_an_abnormal_reason_takes_a_linked_starter_with_it(node: Node) -> None:
    # as in OTP, the exit signal carries Reason to linked processes: a non-trapping starter exits with it
    starter = await node.start(Starter, False)
    ref = node.monitor(starter)
    with pytest.raises(beamrl.ProcessCrashed):
        await node.call(starter, ["start_link", Refuses, ["bad config"]])
    down = await node.receive(timeout=5.0)
    assert (down.ref, down.reason) == (ref, "bad config")


async def test_init_ignore_returns_none_and_exits_normal(node: Node, caplog: pytest.LogCaptureFixture) -> None:
    # ignore -> start returns ignore; the process exits normal, no crash report
    before = set(node.processes())
    assert await node.start(Ignores, name="ignorer") is None
    assert node.whereis("ignorer") is None
    await eventually(lambda: set(node.processes()) == before, what="the ignoring process to exit")
    assert crash_reports(caplog) == []


async def test_init_ignore_leaves_a_linked_starter_running(node: Node) -> None:
    starter = await node.start(Starter, False)
    assert await node.call(starter, ["start_link", Ignores, []]) == ("ok", None)
    assert await node.call(starter, ["seen"]) == []


async def test_static_supervisor_keeps_an_ignoring_child_without_a_pid(node: Node) -> None:
    # OTP: the child spec is kept with pid undefined; the other children start as usual
    await node.start(Journal, name="journal")
    sup = await node.start_supervisor(
        [child(Counter, 0, name="a"), child(Ignores, "journal", name="quiet"), child(Counter, 0, name="c")],
        strategy="one_for_all",
    )
    rows = {c.id: c.pid for c in await node.which_children(sup)}
    assert list(rows) == ["a", "quiet", "c"]
    assert rows["quiet"] is None and rows["a"] is not None and rows["c"] is not None
    assert await node.call(sup, ["count_children"]) == {"specs": 3, "active": 2, "supervisors": 0, "workers": 3}
    # ignoring is not a crash: nothing was restarted
    assert {c.id: c.restarts for c in await node.which_children(sup)} == {"a": 0, "quiet": 0, "c": 0}
    assert {c.id: c.pid for c in await node.which_children(sup)} == rows
    # start_child and restart_child of an ignoring child answer None
    assert await node.start_child(sup, child(Ignores, name="late")) is None
    assert [c.id for c in await node.which_children(sup)] == ["a", "quiet", "c", "late"]
    assert await node.call(sup, ["restart_child", "quiet"]) is None
    assert await node.call("journal", ["entries"]) == [("ignores", "init")] * 2


async def test_static_supervisor_forgets_an_ignoring_temporary_child(node: Node) -> None:
    sup = await node.start_supervisor(
        [child(Counter, 0, name="a"), child(Ignores, name="t1", restart="temporary"), child(Counter, 0, name="c")]
    )
    assert [(c.id, c.pid is not None) for c in await node.which_children(sup)] == [("a", True), ("c", True)]
    assert await node.start_child(sup, child(Ignores, name="t2", restart="temporary")) is None
    assert [c.id for c in await node.which_children(sup)] == ["a", "c"]


async def test_dynamic_supervisor_adds_no_child_for_ignore(node: Node) -> None:
    # OTP (simple_one_for_one): start_child returns {ok, undefined} and no child is added
    sup = await node.start(DynamicSupervisor)
    assert await node.start_child(sup, child(Ignores)) is None
    assert await node.which_children(sup) == []
    pid = await node.start_child(sup, child(Counter, 1))
    assert [c.pid for c in await node.which_children(sup)] == [pid]


# -- 2. a continue asked for inside handle_continue --------------------------------------------


async def test_chained_continue_runs_before_any_message(node: Node) -> None:
    # OTP: {noreply, S, {continue, C}} from handle_continue runs handle_continue(C) next
    await node.start(Journal, name="journal")
    pid = await node.start(Chains, "journal")
    assert await node.call(pid, ["steps"]) == [1, 2, 3]


async def test_chained_continue_runs_without_any_message(node: Node) -> None:
    await node.start(Journal, name="journal")
    await node.start(Chains, "journal")
    await eventually(lambda: node.call("journal", ["entries"]), what="the third continue")


# -- 3. one_for_all when a sibling fails to restart ---------------------------------------------


async def test_one_for_all_restarts_the_whole_group_again_when_a_sibling_fails_to_restart(node: Node) -> None:
    # OTP: the restarted children are shut down (reverse order) and the whole group restarts in order
    await node.start(Journal, name="journal")
    await node.start(Counter, 0, name="gate")
    sup = await node.start_supervisor(
        [
            child(Counter, 0, "journal", name="a"),
            child(FailsWhenGated, 0, "journal", name="b"),
            child(Counter, 0, "journal", name="c"),
        ],
        strategy="one_for_all",
    )
    await node.call("journal", ["clear"])
    await node.call("gate", ["add", 1])  # b's next start fails, once
    node.cast("a", ["crash", "boom"])
    await eventually(lambda: _logged(node, ("c", "init")), what="c to start again")
    assert await node.call("journal", ["entries"]) == [
        ("a", "terminate:RuntimeError"),
        ("c", "terminate:shutdown"),
        ("b", "terminate:shutdown"),
        ("a", "init"),
        ("b", "init failed"),
        ("a", "terminate:shutdown"),
        ("a", "init"),
        ("b", "init"),
        ("c", "init"),
    ]
    rows = await node.which_children(sup)
    assert all(c.pid is not None for c in rows)
    assert await node.call("b", ["add", 1]) == 1


async def _logged(node: Node, entry: tuple[str, str]) -> bool:
    return entry in await node.call("journal", ["entries"])


# -- 4. terminate_child of a dynamic child that is already dead ---------------------------------


async def test_dynamic_terminate_child_of_a_dead_pid_is_ok(node: Node) -> None:
    # OTP: terminate_child(Sup, Pid) answers ok when Pid is no longer alive
    sup = await node.start(DynamicSupervisor)
    pid = await node.start_child(sup, child(Counter, 0, restart="temporary"))
    await node.stop(pid)
    await eventually(lambda: _no_children(node, sup), what="the temporary child to be forgotten")
    assert await node.terminate_child(sup, pid) is None


async def test_dynamic_terminate_child_of_a_live_non_child_is_refused(node: Node) -> None:
    sup = await node.start(DynamicSupervisor)
    stranger = await node.start(Counter, 0)
    with pytest.raises(Rejected, match="has no child"):
        await node.terminate_child(sup, stranger)
    assert await node.call(stranger, ["get"]) == 0


async def _no_children(node: Node, sup: Any) -> bool:
    return await node.which_children(sup) == []


# -- 5. stop with an invalid timeout --------------------------------------------------------------


@pytest.mark.parametrize(("timeout", "error"), [("invalid", TypeError), (True, TypeError), (-1.0, ValueError)])
async def test_stop_with_an_invalid_timeout_leaves_the_process_running(
    node: Node, timeout: Any, error: type[Exception]
) -> None:
    pid = await node.start(Counter, 3)
    with pytest.raises(error, match="timeout"):
        await node.stop(pid, "normal", timeout=timeout)
    assert await node.call(pid, ["get"]) == 3


# -- shutdown="brutal_kill" ---------------------------------------------------------------------


async def test_brutal_kill_child_is_killed_without_terminate(node: Node) -> None:
    # OTP: shutdown = brutal_kill -> exit(Child, kill); terminate does not run; reason killed
    await node.start(Journal, name="journal")
    sup = await node.start_supervisor([child(Counter, 0, "journal", name="a", shutdown="brutal_kill")])
    pid = node.whereis("a")
    assert pid is not None
    ref = node.monitor(pid)
    await node.terminate_child(sup, "a")
    down = await node.receive(timeout=5.0)
    assert (down.ref, down.reason) == (ref, "killed")
    assert await node.call("journal", ["entries"]) == [("a", "init")]


async def test_brutal_kill_applies_when_the_supervisor_stops(node: Node) -> None:
    await node.start(Journal, name="journal")
    sup = await node.start_supervisor(
        [child(Counter, 0, "journal", name="a"), child(Counter, 0, "journal", name="b", shutdown="brutal_kill")]
    )
    await node.stop(sup, "shutdown")
    assert await node.call("journal", ["entries"]) == [("a", "init"), ("b", "init"), ("a", "terminate:shutdown")]


async def test_shutdown_accepts_brutal_kill_and_names_it_when_wrong() -> None:
    assert child(Counter, shutdown="brutal_kill").shutdown == "brutal_kill"
    with pytest.raises(ValueError, match="brutal_kill"):
        child(Counter, shutdown="brutal")
    spec = spec_from_mapping({"start": "beamrl.testing:Counter", "shutdown": "brutal_kill"}, where="tree.toml")
    assert spec.shutdown == "brutal_kill"


# -- a dynamic supervisor stops its children in parallel ------------------------------------------


async def test_dynamic_supervisor_stops_its_children_in_parallel(node: Node) -> None:
    # OTP: a simple_one_for_one supervisor sends `shutdown` to all children, then waits for all;
    # here each child's terminate returns only once all three are terminating together
    await node.start(Journal, name="journal")
    await node.start(Barrier, 3, name="barrier")
    sup = await node.start(DynamicSupervisor)
    for _ in range(3):
        await node.start_child(sup, child(MeetsAtBarrier, "journal", shutdown=2.0))
    await node.stop(sup, "shutdown", timeout=30.0)
    entries = await node.call("journal", ["entries"])
    assert [event for _, event in entries] == ["released"] * 3
