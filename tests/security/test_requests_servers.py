"""Issue 10 item 4: every server answers wrong requests with ``Rejected`` and keeps its state.

Per server, a hypothesis property sends a few hundred random well-formed-but-wrong requests
(the server's own verbs and some it does not know, with arguments of every wire type:
negative, huge, NaN and infinite numbers, long strings, nested lists, maps, arrays):
no crash, no restart, every answer a value or ``Rejected``, and after a ``Rejected`` the
server's state is what it was before.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beamrl import DynamicSupervisor, Node, Rejected, Supervisor, child
from beamrl.rl import EnvServer, QServer, ReplayServer
from beamrl.testing import Counter

EXAMPLES = 40  # x 4..16 requests: a few hundred per server

_numbers = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**64),
    st.sampled_from([-1, 0, 1, 2**31, 2**63 - 1, -(2**63)]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -0.0]),
)
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    _numbers,
    st.text(max_size=8),
    st.sampled_from(["a" * 300, "../x", "/etc/passwd", "", ".", "c1", "x\x00y"]),
    st.binary(max_size=8),
)
_arrays = st.one_of(
    st.builds(lambda n: np.arange(n, dtype=np.int64) - 2, st.integers(0, 6)),
    st.builds(lambda n: np.full(n, np.nan), st.integers(1, 4)),
    st.builds(lambda n: np.ones((n, 2), dtype=np.float32), st.integers(1, 3)),
    st.just(np.array(["a", "b"])),
)
_values = st.recursive(
    st.one_of(_scalars, _arrays),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.one_of(st.text(max_size=6), st.integers()), inner, max_size=3)
    ),
    max_leaves=8,
)


def requests(verbs: list[str]) -> st.SearchStrategy[list[Any]]:
    verb = st.one_of(st.sampled_from(verbs), st.text(max_size=10))
    return st.builds(lambda v, args: [v, *args], verb, st.lists(st.one_of(_scalars, _values), max_size=4))


def run_property(
    start: Callable[[Node], Awaitable[Any]],
    verbs: list[str],
    state: Callable[[Node, Any], Awaitable[Any]],
    *,
    known: tuple[list[Any], ...] = (),
    listen: bool = False,
) -> None:
    """Start a server with ``start``; send the ``known`` bad requests, then random ones;
    check the property after each."""
    loop = asyncio.new_event_loop()
    node = Node("props", listen="tcp://127.0.0.1:0" if listen else None)
    loop.run_until_complete(node.start_node())
    target = loop.run_until_complete(start(node))
    pid = node.whereis(target) if isinstance(target, str) else target
    answers = {"value": 0, "rejected": 0}

    async def check(batch: list[list[Any]]) -> None:
        for request in batch:
            before = await state(node, target)
            try:
                await node.call(target, request, timeout=5.0)
            except Rejected:
                answers["rejected"] += 1
                after = await state(node, target)
                assert _equal(before, after), f"{request!r:.200} was rejected but changed the state"
            else:
                answers["value"] += 1
            assert (node.whereis(target) if isinstance(target, str) else target) == pid
            assert node.process_info(pid) is not None, f"{request!r:.200} ended the server"

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.lists(requests(verbs), min_size=4, max_size=16))
    def prop(batch: list[list[Any]]) -> None:
        loop.run_until_complete(check(batch))

    try:
        loop.run_until_complete(check(list(known)))
        prop()
    finally:
        loop.run_until_complete(node.shutdown())
        loop.close()
    print(f"{verbs[0]}...: {answers['value'] + answers['rejected']} requests, {answers}")
    assert answers["rejected"] > 100, answers  # the property saw mostly wrong requests


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return bool(np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


# -- the servers ---------------------------------------------------------------------------


async def _env_state(node: Node, target: Any) -> Any:
    return [await node.call(target, ["info"]), await node.call(target, ["observe"])]


def test_env_server_refuses_wrong_requests() -> None:
    async def start(node: Node) -> Any:
        await node.start(EnvServer, "FrozenLake-v1", name="env")
        await node.call("env", ["reset", 0])
        return "env"

    known = (["reset", -1], ["reset", {"seed": -5}], ["reset", 2**70], ["step", -1], ["step", math.nan])
    run_property(start, ["reset", "step", "step_many", "observe", "render", "spaces", "info"], _env_state, known=known)


def test_vector_env_server_refuses_wrong_requests() -> None:
    async def start(node: Node) -> Any:
        await node.start(EnvServer, "Taxi-v3", num_envs=2, name="venv")
        await node.call("venv", ["reset", 0])
        return "venv"

    run_property(start, ["reset", "step", "step_many", "observe", "info"], _env_state)


async def _q_state(node: Node, target: Any) -> Any:
    return [await node.call(target, ["table"]), await node.call(target, ["version"])]


def test_qserver_refuses_wrong_requests(tmp_path: Any) -> None:
    async def start(node: Node) -> Any:
        await node.start(QServer, 5, 3, checkpoint=str(tmp_path / "q.npz"), name="q")
        return "q"

    verbs = ["get", "set", "values", "greedy", "table", "td_update", "version", "info", "checkpoint", "save"]
    known = (
        ["save", "a" * 300],
        ["set", 0, 0, math.nan],
        ["set", 0, 0, math.inf],
        ["td_update", [0, 1], [0, 1], [1.0, math.nan], 0.5],
        ["td_update", [0], [0], [1.0], math.inf],
        ["get", 2**70, 0],
    )
    run_property(start, verbs, _q_state, known=known)


async def _replay_state(node: Node, target: Any) -> Any:
    stats = await node.call(target, ["stats"])
    for key in ("samples", "last_checkpoint", "last_checkpoint_seconds", "last_checkpoint_bytes", "ledger_total"):
        stats.pop(key)
    held = stats["len"]
    return [stats, await node.call(target, ["sample", held, "latest"]) if held else None]


@pytest.mark.parametrize("prioritized", [False, True])
def test_replay_server_refuses_wrong_requests(tmp_path: Any, prioritized: bool) -> None:
    async def start(node: Node) -> Any:
        await node.start(
            ReplayServer, 16, prioritized=prioritized, checkpoint_dir=str(tmp_path), checkpoint_every=None, name="r"
        )
        state = np.zeros((4, 2), dtype=np.float32)
        batch = {
            "state": state,
            "action": np.arange(4),
            "reward": np.ones(4, dtype=np.float32),
            "next_state": state,
            "terminated": np.zeros(4, dtype=bool),
            "truncated": np.zeros(4, dtype=bool),
        }
        await node.call("r", ["add_batch", batch])
        return "r"

    verbs = ["add", "add_batch", "sample", "update_priorities", "flush", "len", "stats", "checkpoint"]
    run_property(start, verbs, _replay_state)


async def _sup_state(node: Node, target: Any) -> Any:
    return [await node.call(target, ["which_children"]), await node.call(target, ["count_children"])]


@pytest.mark.parametrize("cls", [Supervisor, DynamicSupervisor])
def test_supervisors_refuse_wrong_requests(cls: type[Supervisor]) -> None:
    async def start(node: Node) -> Any:
        children = [child(Counter, 0, name="c1")] if cls is Supervisor else []
        await node.start(cls, children, name="sup", max_restarts=1, max_seconds=60)
        if cls is DynamicSupervisor:
            await node.start_child("sup", child(Counter, 0))
        return "sup"

    verbs = ["which_children", "count_children", "start_child", "terminate_child", "restart_child", "delete_child"]
    run_property(start, verbs, _sup_state)


async def _node_state(node: Node, target: Any) -> Any:
    return [await node.call(target, ["registered"]), await node.call(target, ["nodes"])]


def test_the_node_server_refuses_wrong_requests() -> None:
    async def start(node: Node) -> Any:
        await node.start(Counter, 1, name="counter")
        return "$node"

    run_property(start, ["registered", "nodes", "processes", "tree"], _node_state, listen=True)
