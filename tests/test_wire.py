"""Wire messages as typed records, and the rate-limited warnings the wire boundary logs."""

from __future__ import annotations

import logging

import pytest

from beamrl import Pid, Ref, codec, wire
from beamrl.ratelog import RateLimitedLog


def test_every_kind_round_trips_through_the_codec() -> None:
    pid, ref = Pid("a", 1, 2), Ref("a", 3)
    messages = [
        wire.Call(7, pid, "env", ["step", 1]),
        wire.Reply(7, True, {"x": (1, 2)}),
        wire.Cast(pid, ["add", 1]),
        wire.Send("name", "hello"),
        wire.ExitSignal(pid, pid, "shutdown", True),
        wire.Link(pid, pid),
        wire.Unlink(pid, pid),
        wire.Monitor(pid, ref, "env"),
        wire.Demonitor(ref, "env"),
        wire.DownSignal(pid, ref, pid, "noproc"),
        wire.Stop(8, pid, "env", "normal", 5.0),
    ]
    assert {type(m) for m in messages} == set(wire.KINDS.values())
    for m in messages:
        assert wire.from_wire(codec.decode(codec.encode(wire.to_wire(m)))) == m


def test_malformed_messages_say_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="list starting with its kind"):
        wire.from_wire({"call": 1})
    with pytest.raises(ValueError, match="list starting with its kind"):
        wire.from_wire([])
    with pytest.raises(ValueError, match="unknown kind 'spawn'"):
        wire.from_wire(["spawn", 1])
    with pytest.raises(ValueError, match="'cast' message has 2 fields, got 3"):
        wire.from_wire(["cast", "a", "b", "c"])


def test_a_repeated_warning_is_logged_once_per_period_with_a_count(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    warn = RateLimitedLog(logging.getLogger("beamrl.test"), period=1.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="beamrl.test"):
        for _ in range(5):
            warn("k", "dropped %s", "x")
        warn("other", "another kind")
        now[0] = 1.5
        warn("k", "dropped %s", "y")
    assert [r.getMessage() for r in caplog.records] == [
        "dropped x",
        "another kind",
        "dropped y (4 similar dropped)",
    ]
