"""GenServer semantics, one behaviour per test, each proven on this node and across the wire.

``host`` runs the servers under test on the test's own node or on a peer node in another
OS process (``beamrl.testing.Host``); the test always calls from its own node. Server
classes live at module level so the peer can import them.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import Any

import pytest

import beamrl
from beamrl import (
    CallSelf,
    CallTimeout,
    GenServer,
    Node,
    NoProc,
    NoReply,
    Pid,
    ProcessCrashed,
    Rejected,
    Stop,
)
from beamrl.testing import Counter, Host, Journal, eventually


async def _calls_waiting(host: Host, pid: Pid, n: int) -> bool:
    info = await host.process_info(pid)
    return info is not None and info["calls_waiting"] == n


async def test_start_returns_after_init_with_its_state(host: Host) -> None:
    pid = await host.start(Counter, 5, name="counter")
    assert await host.whereis("counter") == pid
    assert await host.node.call(host.at("counter"), ["add", 2], timeout=5.0) == 7


async def test_init_that_raises_fails_start_with_that_error_and_frees_the_name(host: Host) -> None:
    with pytest.raises(ValueError, match="bad start value"):
        await host.start(Counter, "boom", name="counter")
    assert await host.whereis("counter") is None
    assert await host.start(Counter, 1, name="counter")


class Refuses(GenServer):
    async def init(self) -> Any:
        return Stop("not today")


async def test_init_returning_stop_refuses_to_start(host: Host) -> None:
    with pytest.raises(NoProc, match="not today"):
        await host.start(Refuses)


class Bare(GenServer):
    pass


async def test_init_without_arguments_rejects_start_arguments(host: Host) -> None:
    with pytest.raises(TypeError, match="defines no init"):
        await host.start(Bare, 1)


async def test_call_times_out_and_the_late_reply_is_dropped(host: Host) -> None:
    node = host.node
    pid = await host.start(Counter, 0)
    with pytest.raises(CallTimeout, match="timed out"):
        await node.call(pid, ["defer"], timeout=0.05)
    assert isinstance(CallTimeout("x"), TimeoutError)
    assert await node.call(pid, ["release", "late"]) == 1  # the late reply goes nowhere
    assert await node.call(pid, ["get"]) == 0  # and the next call gets its own reply


async def test_call_default_timeout_is_five_seconds() -> None:
    assert inspect.signature(Node.call).parameters["timeout"].default == 5.0
    assert inspect.signature(beamrl.call).parameters["timeout"].default == 5.0


class Delegates(GenServer):
    async def init(self, helper: Any) -> None:
        self.helper = helper

    async def handle_call(self, request: Any, from_: Any) -> Any:
        if request == ["ask"]:
            beamrl.send(self.helper, from_)  # someone else answers
            return NoReply
        return "still serving"


class Answers(GenServer):
    async def handle_info(self, from_: Any) -> None:
        beamrl.reply(from_, "from elsewhere")


async def test_deferred_reply_from_another_process(host: Host) -> None:
    helper = await host.start(Answers)
    server = await host.start(Delegates, helper)
    assert await host.node.call(server, ["ask"]) == "from elsewhere"
    assert await host.node.call(server, ["other"]) == "still serving"


async def test_call_to_unknown_name_or_dead_pid_raises_noproc(host: Host) -> None:
    node = host.node
    with pytest.raises(NoProc, match="nobody"):
        await node.call(host.at("nobody"), ["get"])
    pid = await host.start(Counter, 0)
    await node.stop(pid)
    with pytest.raises(NoProc, match="not alive"):
        await node.call(pid, ["get"])


async def test_crash_during_call_raises_process_crashed_with_type_and_message(host: Host) -> None:
    pid = await host.start(Counter, 0)
    with pytest.raises(ProcessCrashed, match="kaput") as info:
        await host.node.call(pid, ["crash", "kaput"])
    assert info.value.exc_type == "RuntimeError"
    assert info.value.exc_message == "kaput"
    assert await host.process_info(pid) is None


async def test_waiting_callers_fail_when_the_server_crashes_on_another_request(host: Host) -> None:
    node = host.node
    pid = await host.start(Counter, 0)
    waiting = asyncio.ensure_future(node.call(pid, ["defer"]))
    await eventually(lambda: _calls_waiting(host, pid, 1), what="defer handled")
    node.cast(pid, ["crash", "later"])
    with pytest.raises(ProcessCrashed, match="later"):
        await waiting


async def test_rejected_reaches_the_caller_and_the_server_keeps_running(host: Host) -> None:
    pid = await host.start(Counter, 3)
    with pytest.raises(Rejected, match="not that"):
        await host.node.call(pid, ["reject", "not that"])
    assert await host.node.call(pid, ["get"]) == 3


class SelfCaller(GenServer):
    """Calls itself and reports what that did, so the test sees the error, not a hang."""

    async def handle_call(self, request: Any, from_: Any) -> Any:
        if request == ["call_me"]:
            try:
                await beamrl.call(self.pid, ["never answered"], timeout=1.0)
            except CallSelf as exc:
                return ["CallSelf", str(exc)]
            return ["no error"]
        return "answered"


async def test_calling_yourself_is_an_error_not_a_deadlock(host: Host) -> None:
    pid = await host.start(SelfCaller)
    kind, message = await host.node.call(pid, ["call_me"])
    assert kind == "CallSelf"
    assert "itself" in message
    assert await host.node.call(pid, ["still there?"]) == "answered"
    with pytest.raises(ProcessCrashed, match="itself") as info:  # unhandled, it crashes the server
        await host.node.call(await host.start(Counter, 0), ["call_self"])
    assert info.value.exc_type == "beamrl.errors.CallSelf"


async def test_cast_never_fails(host: Host) -> None:
    node = host.node
    node.cast(host.at("nobody"), ["add", 1])
    pid = await host.start(Counter, 0)
    await node.stop(pid)
    node.cast(pid, ["add", 1])
    node.cast(("nobody", "elsewhere"), ["add", 1])
    beamrl.cast(host.at("nobody"), ["add", 1])


async def test_send_reaches_handle_info_and_dead_pids_swallow_messages(host: Host) -> None:
    node = host.node
    pid = await host.start(Counter, 0, name="c")
    node.send(pid, {"any": "message"})
    beamrl.send(host.at("c"), "by name")
    assert await node.call(pid, ["seen"]) == [{"any": "message"}, "by name"]
    if not host.remote:  # a name on another node is looked up there; like Erlang, that never raises
        with pytest.raises(NoProc):
            node.send("nobody", "x")
    await node.stop(pid)
    node.send(pid, "into the void")


async def test_messages_from_one_sender_arrive_in_order(host: Host) -> None:
    node = host.node
    pid = await host.start(Counter, 0)
    for i in range(1000):
        node.cast(pid, ["record", i])
        if i % 10 == 0:
            node.send(pid, f"info{i}")
    seen = await node.call(pid, ["seen"])
    assert [s for s in seen if isinstance(s, int)] == list(range(1000))
    assert [s for s in seen if isinstance(s, str)] == [f"info{i}" for i in range(0, 1000, 10)]


class Continues(GenServer):
    async def init(self) -> None:
        self.order: list[str] = []
        self.continue_with("setup")

    async def handle_continue(self, arg: Any) -> None:
        await asyncio.sleep(0.01)
        self.order.append(f"continue:{arg}")

    async def handle_call(self, request: Any, from_: Any) -> Any:
        self.order.append("call")
        if request == ["again"]:
            self.continue_with("after-call")
        return list(self.order)


async def test_handle_continue_runs_before_the_next_message(host: Host) -> None:
    pid = await host.start(Continues)
    assert await host.node.call(pid, ["first"]) == ["continue:setup", "call"]
    await host.node.call(pid, ["again"])
    assert await host.node.call(pid, ["x"]) == ["continue:setup", "call", "call", "continue:after-call", "call"]


class IdleOnce(GenServer):
    async def init(self, notify: Any) -> None:
        self.idle_timeout = 0.02
        self.notify = notify

    async def handle_info(self, message: Any) -> None:
        if message == "timeout":
            beamrl.send(self.notify, "idle")
            self.idle_timeout = None  # once is enough


async def test_idle_timeout_sends_timeout_to_handle_info(host: Host) -> None:
    node = host.node
    await host.start(IdleOnce, node.self_pid)
    assert await node.receive(timeout=2) == "idle"
    with pytest.raises(CallTimeout):
        await node.receive(timeout=0.1)


class IdleCounting(GenServer):
    async def init(self) -> None:
        self.idle_timeout = 0.2
        self.timeouts = 0

    async def handle_info(self, message: Any) -> None:
        if message == "timeout":
            self.timeouts += 1

    async def handle_call(self, request: Any, from_: Any) -> Any:
        return self.timeouts


async def test_idle_timeout_is_reset_by_each_message(host: Host) -> None:
    pid = await host.start(IdleCounting)
    for _ in range(10):  # 10 calls, far less than 0.2 s apart
        assert await host.node.call(pid, ["n"]) == 0


async def test_terminate_runs_on_graceful_stop_and_on_crash_never_on_kill(host: Host) -> None:
    node = host.node
    await host.start(Journal, name="journal")
    a = await host.start(Counter, 0, "journal", name="a")
    b = await host.start(Counter, 0, "journal", name="b")
    c = await host.start(Counter, 0, "journal", name="c")
    await node.stop(a, "shutdown")
    with pytest.raises(ProcessCrashed):
        await node.call(b, ["crash", "x"])
    ref = node.monitor(c)
    node.kill(c)
    down = await node.receive(timeout=2)
    assert down.ref == ref
    assert down.reason == "killed"
    entries = await node.call(host.at("journal"), ["entries"])
    assert ("a", "terminate:shutdown") in entries
    assert ("b", "terminate:RuntimeError") in entries
    assert ("c", "init") in entries
    assert not any(who == "c" and ev.startswith("terminate") for who, ev in entries)


async def test_stop_from_a_call_replies_then_stops(host: Host) -> None:
    node = host.node
    pid = await host.start(Counter, 0)
    ref = node.monitor(pid)
    assert await node.call(pid, ["stop", "normal", "bye"]) == "bye"
    down = await node.receive(timeout=2)
    assert (down.ref, down.reason) == (ref, "normal")


async def test_stop_of_a_stuck_server_kills_it_after_the_timeout(host: Host) -> None:
    node = host.node
    pid = await host.start(Counter, 0)
    node.cast(pid, ["add", 0])
    asyncio.ensure_future(node.call(pid, ["sleep", 30])).add_done_callback(lambda f: f.exception())
    await eventually(lambda: _calls_waiting(host, pid, 1), what="the call to arrive")
    ref = node.monitor(pid)
    await node.stop(pid, timeout=0.05)
    down = await node.receive(timeout=2)
    assert (down.ref, down.reason) == (ref, "killed")


class Echo(GenServer):
    async def handle_call(self, request: Any, from_: Any) -> Any:
        return request


async def test_proxy_turns_methods_into_calls_with_kwargs_as_a_trailing_dict(host: Host) -> None:
    node = host.node
    await host.start(Echo, name="echo")
    echo = node.proxy(host.at("echo"))
    assert await echo.step(1) == ["step", 1]
    assert await echo.reset(seed=0) == ["reset", {"seed": 0}]
    assert await echo.m(1, x=2) == ["m", 1, {"x": 2}]
    counter = await host.start(Counter, 4)
    assert await node.proxy(counter).add(1) == 5


async def test_crash_report_names_process_exception_and_traceback(node: Node, caplog: pytest.LogCaptureFixture) -> None:
    # local only: a remote node writes its crash reports to its own log
    caplog.set_level(logging.ERROR, logger="beamrl")
    pid = await node.start(Counter, 0, name="fragile")
    node.cast(pid, ["crash", "for the log"])
    await eventually(lambda: node.whereis("fragile") is None, what="crash")
    report = "\n".join(r.getMessage() for r in caplog.records)
    assert str(pid) in report
    assert "(fragile)" in report
    assert "RuntimeError: for the log" in report
    assert "Traceback" in report
