"""Node runtime: pids, names, links, monitors, exit signals, timers, spawned functions."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import beamrl
from beamrl import AlreadyRegistered, CallTimeout, Down, Exit, GenServer, Node, NotInProcess, Pid
from beamrl.testing import Counter, Journal, eventually


class Trapper(GenServer):
    """Traps exits and reports every message it gets to ``notify``."""

    async def init(self, notify: Any) -> None:
        self.trap_exit = True
        self.notify = notify

    async def handle_info(self, message: Any) -> None:
        beamrl.send(self.notify, message)

    async def handle_call(self, request: Any, from_: Any) -> Any:
        match request:
            case ["link", target]:
                beamrl.link(target)
            case ["unlink", target]:
                beamrl.unlink(target)
            case ["monitor", target]:
                return beamrl.monitor(target)
            case ["demonitor", ref]:
                beamrl.demonitor(ref)
            case ["send_after", seconds, message]:
                return beamrl.send_after(seconds, self.pid, message)
            case ["cancel", ref]:
                return beamrl.cancel_timer(ref)
        return None


async def test_pids_are_unique_printable_and_carry_the_node_name(node: Node) -> None:
    a = await node.start(Counter, 0)
    b = await node.start(Counter, 0)
    assert a != b
    assert a.node == "test" == b.node
    assert str(a).startswith("#PID<test.")
    assert hash(a) != hash(b)
    assert Pid(*a) == a


async def test_second_registration_of_a_live_name_fails_clearly(node: Node) -> None:
    first = await node.start(Counter, 0, name="solo")
    with pytest.raises(AlreadyRegistered, match="'solo' is already registered") as info:
        await node.start(Counter, 0, name="solo")
    assert info.value.pid == first
    assert node.whereis("solo") == first


async def test_a_name_is_freed_when_its_process_dies(node: Node) -> None:
    pid = await node.start(Counter, 0, name="solo")
    node.kill(pid)
    await eventually(lambda: node.whereis("solo") is None, what="name freed")
    assert await node.start(Counter, 0, name="solo") != pid


async def test_register_and_unregister_names_at_run_time(node: Node) -> None:
    pid = await node.start(Counter, 1)
    node.register("late", pid)
    assert await node.call("late", ["get"]) == 1
    node.unregister("late")
    assert node.whereis("late") is None
    assert await node.call(pid, ["get"]) == 1


async def test_exit_of_a_linked_process_arrives_as_exit_when_trapping(node: Node) -> None:
    trapper = await node.start(Trapper, node.self_pid)
    victim = await node.start(Counter, 0)
    await node.call(trapper, ["link", victim])
    node.cast(victim, ["crash", "linked crash"])
    message = await node.receive(timeout=2)
    assert isinstance(message, Exit)
    assert message.pid == victim
    assert isinstance(message.reason, RuntimeError)
    assert await node.call(trapper, ["noop"]) is None  # still alive


async def test_normal_exit_does_not_kill_linked_processes(node: Node) -> None:
    class Linker(GenServer):
        async def handle_call(self, request: Any, from_: Any) -> Any:
            match request:
                case ["link", t]:
                    beamrl.link(t)
                case ["ping"]:
                    return "pong"
            return None

    survivor = await node.start(Linker)
    leaver = await node.start(Counter, 0)
    await node.call(survivor, ["link", leaver])
    await node.stop(leaver, "normal")
    assert await node.call(survivor, ["ping"]) == "pong"


async def test_an_abnormal_linked_exit_kills_a_non_trapping_process(node: Node) -> None:
    class Linker(GenServer):
        async def handle_call(self, request: Any, from_: Any) -> Any:
            beamrl.link(request[1])

    follower = await node.start(Linker)
    leader = await node.start(Counter, 0)
    await node.call(follower, ["link", leader])
    ref = node.monitor(follower)
    node.cast(leader, ["crash", "shared fate"])
    down = await node.receive(timeout=2)
    assert down.ref == ref
    assert isinstance(down.reason, RuntimeError)
    assert str(down.reason) == "shared fate"


async def test_kill_is_untrappable_and_propagates_as_killed(node: Node) -> None:
    trapper = await node.start(Trapper, node.self_pid)
    other = await node.start(Trapper, node.self_pid)
    await node.call(other, ["link", trapper])
    ref = node.monitor(trapper)
    node.kill(trapper)
    got = {type(m).__name__: m for m in [await node.receive(timeout=2), await node.receive(timeout=2)]}
    assert got["Down"].ref == ref
    assert got["Down"].reason == "killed"
    assert got["Exit"].pid == trapper
    assert got["Exit"].reason == "killed"


async def test_exit_signal_with_a_reason(node: Node) -> None:
    pid = await node.start(Counter, 0)
    ref = node.monitor(pid)
    node.exit(pid, "shutdown")
    down = await node.receive(timeout=2)
    assert (down.ref, down.reason) == (ref, "shutdown")
    trapper = await node.start(Trapper, node.self_pid)
    node.exit(trapper, "please")
    message = await node.receive(timeout=2)
    assert message == Exit(node.self_pid, "please")


async def test_linking_to_a_dead_process_sends_noproc(node: Node) -> None:
    trapper = await node.start(Trapper, node.self_pid)
    dead = await node.start(Counter, 0)
    await node.stop(dead)
    await node.call(trapper, ["link", dead])
    assert await node.receive(timeout=2) == Exit(dead, "noproc")


async def test_monitors_are_one_way_stackable_and_carry_the_reason(node: Node) -> None:
    watcher = await node.start(Trapper, node.self_pid)
    target = await node.start(Counter, 0)
    r1 = await node.call(watcher, ["monitor", target])
    r2 = await node.call(watcher, ["monitor", target])
    assert r1 != r2
    await node.stop(target, "shutdown")
    downs = [await node.receive(timeout=2), await node.receive(timeout=2)]
    assert {d.ref for d in downs} == {r1, r2}
    assert all(d.pid == target and d.reason == "shutdown" for d in downs)
    assert await node.call(watcher, ["noop"]) is None  # a monitor never kills the watcher


async def test_demonitor_stops_the_down_message(node: Node) -> None:
    target = await node.start(Counter, 0)
    ref = node.monitor(target)
    node.demonitor(ref)
    await node.stop(target)
    with pytest.raises(CallTimeout):
        await node.receive(timeout=0.05)


async def test_monitoring_a_dead_process_gives_noproc_at_once(node: Node) -> None:
    dead = await node.start(Counter, 0)
    await node.stop(dead)
    ref = node.monitor(dead)
    assert await node.receive(timeout=1) == Down(ref, dead, "noproc")
    ref2 = node.monitor("never-registered")
    assert await node.receive(timeout=1) == Down(ref2, "never-registered", "noproc")


async def test_send_after_delivers_and_cancel_timer_stops_it(node: Node) -> None:
    trapper = await node.start(Trapper, node.self_pid)
    await node.call(trapper, ["send_after", 0.01, "tick"])
    assert await node.receive(timeout=2) == "tick"
    ref = await node.call(trapper, ["send_after", 0.05, "never"])
    assert await node.call(trapper, ["cancel", ref]) is True
    assert await node.call(trapper, ["cancel", ref]) is False
    with pytest.raises(CallTimeout):
        await node.receive(timeout=0.15)


async def test_spawned_function_receives_messages_and_exits_normally(node: Node) -> None:
    async def echo_once() -> None:
        message = await beamrl.receive(timeout=2)
        beamrl.send(message["reply_to"], ("echo", message["body"]))

    pid = await node.spawn(echo_once)
    ref = node.monitor(pid)
    node.send(pid, {"reply_to": node.self_pid, "body": 42})
    assert await node.receive(timeout=2) == ("echo", 42)
    assert await node.receive(timeout=2) == Down(ref, pid, "normal")


async def test_spawned_function_that_raises_crashes_with_the_error(node: Node) -> None:
    async def fails() -> None:
        await asyncio.sleep(0)
        raise KeyError("missing")

    pid = await node.spawn(fails)
    ref = node.monitor(pid)
    down = await node.receive(timeout=2)
    assert down.ref == ref
    assert isinstance(down.reason, KeyError)


async def test_module_level_shortcuts_act_on_the_current_node(node: Node) -> None:
    pid = await beamrl.start(Counter, 1, name="c")
    assert beamrl.whereis("c") == pid
    assert await beamrl.call("c", ["add", 1]) == 2
    beamrl.cast("c", ["add", 1])
    assert await beamrl.proxy("c").get() == 3
    assert beamrl.self_pid() == node.self_pid
    await beamrl.stop(pid)
    assert beamrl.whereis("c") is None


async def test_shortcuts_outside_any_node_say_what_to_do() -> None:
    with pytest.raises(NotInProcess, match=r"async with beamrl\.Node"):
        beamrl.whereis("x")
    beamrl.cast("x", ["never raises"])


async def test_node_shutdown_stops_processes_in_reverse_start_order() -> None:
    async with Node("order") as n:
        await n.start(Journal, name="journal")
        for name in ("first", "second", "third"):
            await n.start(Counter, 0, "journal", name=name)
        journal = n._procs[n.whereis("journal").id]  # type: ignore[union-attr]
    entries = [e for e in journal.entries if e[1].startswith("terminate")]  # type: ignore[attr-defined]
    assert [who for who, _ in entries] == ["third", "second", "first"]
    assert all(ev == "terminate:shutdown" for _, ev in entries)


async def test_a_linked_process_started_from_outside_still_stops_gracefully_at_shutdown() -> None:
    async with Node("linked") as n:
        await n.start(Journal, name="journal")
        await n.start(Counter, 0, "journal", name="linked", link=True)
        journal = n._procs[n.whereis("journal").id]  # type: ignore[union-attr]
    assert ("linked", "terminate:shutdown") in journal.entries  # type: ignore[attr-defined]


async def test_a_starter_that_gives_up_takes_the_half_started_process_with_it(node: Node) -> None:
    class SlowInit(GenServer):
        async def init(self) -> None:
            await asyncio.sleep(30)

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(node.start(SlowInit, name="slow"), 0.05)
    await eventually(lambda: node.whereis("slow") is None, what="the half-started process to go")


async def test_monitoring_or_linking_a_remote_target_without_any_connection(node: Node) -> None:
    ref = node.monitor(("far", "away"))
    assert await node.receive(timeout=1) == Down(ref, ("far", "away"), "noconnection")
    trapper = await node.start(Trapper, node.self_pid)
    await node.call(trapper, ["link", Pid("away", 1, 1)])
    assert await node.receive(timeout=1) == Exit(Pid("away", 1, 1), "noconnection")
