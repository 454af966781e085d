"""Bounded reprs (issue 10 item 7): a big request never floods a log or an error text.

Before, twenty 1 MB casts a server did not handle grew its log by 32 MB, and a refused
1 MB call came back as a 1 MB ``Rejected``. Every place that logs or echoes a request
now goes through ``beamrl.reprs.short_repr``.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest

from beamrl import GenServer, Node, Rejected, child
from beamrl.node_server import NodeServer
from beamrl.reprs import REPR_LIMIT, short_repr, short_text
from beamrl.rl.env_server import EnvServer
from beamrl.rl.qserver import QServer
from beamrl.rl.replay_server import ReplayServer
from beamrl.testing import Counter

MB = 1 << 20
BIG = ["bogus", b"\xff" * MB, "s" * MB, list(range(100_000)), {i: "v" * 1000 for i in range(1000)}]


class Ignorer(GenServer):
    """Handles nothing: the default callbacks log what they got."""


@pytest.mark.parametrize(
    "value",
    [b"\xff" * MB, "s" * MB, bytearray(MB), memoryview(bytes(MB)), list(range(MB)), BIG, np.zeros(MB), (BIG,) * 3],
)
def test_short_repr_is_bounded_and_says_how_big_the_value_was(value: Any) -> None:
    text = short_repr(value)
    assert len(text) <= REPR_LIMIT
    assert len(short_repr(value, 60)) <= 60


def test_short_repr_keeps_small_values_whole_and_survives_a_failing_repr() -> None:
    assert short_repr(["step", 1]) == "['step', 1]"
    assert short_repr(b"ab") == "b'ab'"
    assert "1048576 bytes" in short_repr(b"x" * MB)

    class Broken:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    assert short_repr(Broken()).startswith("<Broken instance at ")
    assert short_text("x" * 1000, 50).endswith("(1000 chars)")


async def test_big_unhandled_casts_add_little_to_the_log(node: Node, caplog: pytest.LogCaptureFixture) -> None:
    pid = await node.start(Ignorer)
    counter = await node.start(Counter)
    with caplog.at_level(logging.DEBUG, logger="beamrl"):
        for _ in range(20):
            node.cast(pid, BIG)
            node.send(pid, BIG)
            node.cast(counter, BIG)
        await node.call(counter, ["get"])
        with pytest.raises(Rejected) as refused:
            await node.call(pid, BIG)
    assert len(str(refused.value)) < 2 * REPR_LIMIT
    logged = [r.getMessage() for r in caplog.records]
    assert len(logged) >= 40
    assert sum(map(len, logged)) < 40 * 2 * REPR_LIMIT


async def start(node: Node, server: str) -> Any:
    match server:
        case "counter":
            return await node.start(Counter)
        case "supervisor":
            return await node.start_supervisor([child(Counter, name=None)])
        case "env":
            return await node.start(EnvServer, "FrozenLake-v1")
        case "qserver":
            return await node.start(QServer, 4, 2)
        case "replay":
            return await node.start(ReplayServer, 10, checkpoint_every=None)
        case "node":
            return await node.start(NodeServer)
    raise AssertionError(server)


@pytest.mark.parametrize("server", ["counter", "supervisor", "env", "qserver", "replay", "node"])
async def test_a_refused_big_request_is_echoed_briefly(node: Node, server: str) -> None:
    target = await start(node, server)
    with pytest.raises(Rejected) as refused:
        await node.call(target, BIG)
    assert len(str(refused.value)) < 2 * REPR_LIMIT
