"""``EnvServer``: an environment as a process, on this node and on another OS process.

Each behaviour test runs twice: once with the server on the test's own node and once on a
real ``beamrl node start`` process running ``tests/trees/env_peer.toml``, where each test
starts a fresh server through the peer's ``dyn`` DynamicSupervisor. The last test drives
the peer's ``env`` from ``beamrl shell`` as a user would.
"""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import numpy as np
import pytest

from beamrl import Node, Rejected
from beamrl.rl import EnvServer, Exp, InvalidAction, make, make_vec
from beamrl.rl.spaces import Box, Discrete
from beamrl.testing import NodeProcess
from tests import ROOT, start_peer

_names = itertools.count()

FIELDS = ("state", "action", "reward", "next_state", "terminated", "truncated", "info")


@pytest.fixture(scope="module")
def env_peer() -> Iterator[NodeProcess]:
    peer = start_peer("envpeer", tree="tests/trees/env_peer.toml")
    yield peer
    assert peer.terminate() == 0, "".join(peer.output)


class Servers:
    """Starts fresh EnvServers on the test's node or on the peer; hands back proxies."""

    def __init__(self, node: Node, remote: str | None) -> None:
        self.node = node
        self.remote = remote

    async def start(self, env_id: str, **kwargs: Any) -> Any:
        name = f"env{next(_names)}"
        if self.remote is None:
            await self.node.start(EnvServer, env_id, name=name, **kwargs)
            return self.node.proxy(name)
        spec = {"start": "beamrl.rl:EnvServer", "args": [env_id], "kwargs": kwargs, "name": name}
        await self.node.start_child(("dyn", self.remote), {**spec, "restart": "temporary"})
        return self.node.proxy((name, self.remote))


@pytest.fixture(params=["local", "remote"])
async def servers(request: pytest.FixtureRequest) -> AsyncIterator[Servers]:
    async with Node(f"envtester{next(_names)}") as node:
        remote = None
        if request.param == "remote":
            peer: NodeProcess = request.getfixturevalue("env_peer")
            remote = await node.connect(peer.address)
        yield Servers(node, remote)


def assert_same_value(got: Any, want: Any, what: str) -> None:
    if isinstance(want, np.ndarray):
        assert isinstance(got, np.ndarray), f"{what}: {got!r} is not an array"
        assert got.dtype == want.dtype and got.shape == want.shape, f"{what}: {got!r} != {want!r}"
        np.testing.assert_array_equal(got, want, err_msg=what)
        return
    assert type(got) is type(want), f"{what}: {type(got).__name__} != {type(want).__name__}"
    if isinstance(want, dict):
        assert got.keys() == want.keys(), f"{what}: {got!r} != {want!r}"
        for key, value in want.items():
            assert_same_value(got[key], value, f"{what}[{key!r}]")
    elif isinstance(want, list | tuple):
        assert len(got) == len(want), f"{what}: {got!r} != {want!r}"
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_same_value(g, w, f"{what}[{i}]")
    else:
        assert got == want, f"{what}: {got!r} != {want!r}"


def assert_same_exp(got: Exp, want: Exp, when: str = "") -> None:
    assert isinstance(got, Exp), f"{when}: {got!r} is not an Exp"
    for name in FIELDS:
        assert_same_value(getattr(got, name), getattr(want, name), f"{when} Exp.{name}")


async def test_reset_step_observe_render_spaces_info(servers: Servers) -> None:
    env = await servers.start("FrozenLake-v1", is_slippery=False)
    assert await env.observe() is None
    assert await env.info() == {"env_id": "FrozenLake-v1", "episodes": 0, "steps": 0, "done": None, "num_envs": None}
    spaces = await env.spaces()
    assert spaces == {"action_space": Discrete(4), "observation_space": Discrete(16)}
    assert isinstance(spaces["action_space"], Discrete)

    first = await env.reset(0)
    assert (first.state, first.action, first.next_state, first.done) == (None, None, 0, False)
    exp = await env.step(1)  # down
    assert (exp.state, exp.action, exp.reward, exp.next_state, exp.done) == (0, 1, 0.0, 4, False)
    assert await env.observe() == 4
    text = await env.render()
    assert text.splitlines()[0].strip() == "(Down)"
    assert [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in text.splitlines()[1:5]] == [
        "SFFF",
        "FHFH",
        "FFFH",
        "HFFG",
    ]
    assert "\x1b[41mF\x1b[0mHFH" in text  # the agent's cell is highlighted, as gymnasium's ansi mode does
    assert await env.info() == {"env_id": "FrozenLake-v1", "episodes": 1, "steps": 1, "done": False, "num_envs": None}


async def test_unknown_requests_and_bad_reset_arguments_are_rejected(servers: Servers) -> None:
    env = await servers.start("FrozenLake-v1")
    with pytest.raises(Rejected, match=r"EnvServer does not understand \['jump', 3\]: use reset, step"):
        await env.jump(3)
    with pytest.raises(Rejected, match="reset takes seed and options, not bogus"):
        await env.reset(bogus=1)
    with pytest.raises(Rejected, match="reset seed must be an integer or None, got 'zero'"):
        await env.reset("zero")
    with pytest.raises(Rejected, match="reset seed must be an integer or None, got True"):
        await env.reset(True)
    with pytest.raises(Rejected, match="reset the environment before the first step"):
        await env.step(0)
    assert_same_exp(await env.reset(seed=4), await env.reset(4), "reset(seed=4) vs reset(4)")


@pytest.mark.parametrize(
    ("env_id", "kwargs"),
    [("FrozenLake-v1", {}), ("Taxi-v3", {"is_rainy": True}), ("Blackjack-v1", {})],
)
async def test_same_seed_and_actions_give_the_local_trajectory(
    servers: Servers, env_id: str, kwargs: dict[str, Any]
) -> None:
    env = await servers.start(env_id, **kwargs)
    reference = make(env_id, **kwargs)
    rng = np.random.default_rng(7)
    n_actions = reference.action_space.n
    assert_same_exp(await env.reset(42), reference.reset(seed=42), "reset(42)")
    episodes = 1
    for step in range(450):  # long enough for Taxi's 200-step time limit to end two episodes
        action = int(rng.integers(n_actions))
        want = reference.step(action)
        assert_same_exp(await env.step(action), want, f"step {step}")
        if want.done:  # unseeded resets continue the same generator on both sides
            assert_same_exp(await env.reset(), reference.reset(), f"reset after step {step}")
            episodes += 1
    assert episodes > 2
    info = await env.info()
    assert (info["episodes"], info["steps"]) == (episodes, 450)


BAD_ACTIONS = [4, -1, 2**40, 1.0, 2.5, True, False, "left", "1", None, [1], {"a": 1}, np.float32(1.0)]


async def test_invalid_actions_are_refused_and_leave_the_env_unchanged(servers: Servers) -> None:
    env = await servers.start("FrozenLake-v1")  # slippery: a consumed random draw would show
    reference = make("FrozenLake-v1")
    assert_same_exp(await env.reset(3), reference.reset(seed=3), "reset(3)")
    rng = np.random.default_rng(11)
    for step in range(60):
        bad = BAD_ACTIONS[step % len(BAD_ACTIONS)]
        before = (await env.observe(), await env.info())
        with pytest.raises(
            InvalidAction, match=rf"^action {re.escape(repr(bad))} is not in the action space Discrete\(4\)"
        ):
            await env.step(bad)
        assert (await env.observe(), await env.info()) == before, f"{bad!r} changed the env"
        action = int(rng.integers(4))
        want = reference.step(action)
        assert_same_exp(await env.step(action), want, f"step {step} after {bad!r}")
        if want.done:
            assert_same_exp(await env.reset(), reference.reset(), f"reset after step {step}")


async def test_invalid_action_is_a_rejected_and_numpy_integers_are_valid(servers: Servers) -> None:
    env = await servers.start("FrozenLake-v1", is_slippery=False)
    await env.reset(0)
    with pytest.raises(
        Rejected, match=r"action np\.int64\(9\) is not in the action space Discrete\(4\) of FrozenLake-v1"
    ):
        await env.step(np.int64(9))
    exp = await env.step(np.int64(2))
    assert (exp.action, exp.next_state) == (2, 1)


async def test_stepping_after_done_without_reset_is_refused(servers: Servers) -> None:
    env = await servers.start("FrozenLake-v1", is_slippery=False)
    await env.reset(0)
    await env.step(1)  # down to 4
    fell = await env.step(2)  # right into the hole at 5
    assert (fell.next_state, fell.terminated, fell.reward) == (5, True, 0.0)
    for action in (0, 1, 7):  # even an invalid one: the finished episode is the first problem
        with pytest.raises(Rejected, match=r"FrozenLake-v1: the episode is over .*: reset before stepping") as info:
            await env.step(action)
        assert not isinstance(info.value, InvalidAction)
    assert await env.observe() == 5
    assert (await env.info())["done"] is True
    assert (await env.reset(0)).next_state == 0
    assert (await env.step(2)).next_state == 1


async def test_truncation_at_the_time_limit_also_needs_a_reset(servers: Servers) -> None:
    env = await servers.start("FrozenLake-v1", is_slippery=False)
    await env.reset(0)
    exp = None
    for _ in range(100):  # walking into the left wall never ends the episode by itself
        exp = await env.step(0)
    assert exp is not None and exp.truncated and not exp.terminated
    with pytest.raises(Rejected, match="the episode is over"):
        await env.step(0)


async def test_step_many_equals_a_local_vector_env(servers: Servers) -> None:
    n = 8
    venv = await servers.start("FrozenLake-v1", num_envs=n)
    reference = make_vec("FrozenLake-v1", n)
    spaces = await venv.spaces()
    assert spaces == {"action_space": Discrete(4), "observation_space": Discrete(16)}
    with pytest.raises(Rejected, match="hosts a vector env: use step_many"):
        await venv.step(1)
    got = await venv.reset(5)
    obs, _ = reference.reset(seed=5)
    assert_same_value(got["obs"], obs, "reset obs")
    rng = np.random.default_rng(5)
    finished = 0
    for step in range(200):
        actions = rng.integers(4, size=n)
        got = await venv.step_many(actions)
        want = dict(zip(("obs", "reward", "terminated", "truncated"), reference.step(actions)[:4], strict=True))
        assert set(got) == set(want)
        for key, value in want.items():
            assert_same_value(got[key], value, f"step {step} {key}")
        finished += int(want["terminated"].sum() + want["truncated"].sum())
    assert finished > n  # the copies reset themselves and carry on, like gymnasium's autoreset
    assert (await venv.info())["steps"] == 200 * n


async def test_step_many_refuses_bad_batches_and_leaves_the_copies_unchanged(servers: Servers) -> None:
    n = 8
    venv = await servers.start("FrozenLake-v1", num_envs=n)
    reference = make_vec("FrozenLake-v1", n)
    await venv.reset(9)
    reference.reset(seed=9)
    for bad in ([1] * (n - 1), [1] * (n + 1), [4] + [0] * (n - 1), [0.5] * n, [[1] * n], "left"):
        with pytest.raises(InvalidAction, match=rf"step_many needs {n} actions, each in Discrete\(4\)"):
            await venv.step_many(bad)
    actions = np.array([0, 1, 2, 3, 3, 2, 1, 0])
    got = await venv.step_many(actions.tolist())  # a plain list works too
    assert_same_value(got["obs"], reference.step(actions)[0], "obs after refused batches")
    single = await servers.start("FrozenLake-v1")
    with pytest.raises(Rejected, match="step_many needs a vector env: start the EnvServer with num_envs=N"):
        await single.step_many([0] * n)


async def test_step_many_before_the_first_reset_is_rejected_and_the_server_lives_on(servers: Servers) -> None:
    venv = await servers.start("FrozenLake-v1", num_envs=4)
    with pytest.raises(Rejected, match="reset the vector env before the first step_many"):
        await venv.step_many([1] * 4)
    assert (await venv.reset(0))["obs"].tolist() == [0, 0, 0, 0]  # the same process answers
    assert (await venv.step_many([1] * 4))["obs"].shape == (4,)


async def test_a_gymnasium_env_through_the_server(servers: Servers) -> None:
    pytest.importorskip("gymnasium")
    env = await servers.start("CartPole-v1")
    reference = make("CartPole-v1")
    spaces = await env.spaces()
    assert isinstance(spaces["action_space"], Discrete) and spaces["action_space"] == Discrete(2)
    obs_space = spaces["observation_space"]
    assert isinstance(obs_space, Box)
    assert (obs_space.shape, obs_space.dtype) == ((4,), np.dtype(np.float32))
    assert obs_space == reference.observation_space
    first = await env.reset(seed=0)
    assert isinstance(first.next_state, np.ndarray) and first.next_state.dtype == np.float32
    assert obs_space.contains(first.next_state)
    assert_same_exp(first, reference.reset(seed=0), "reset(seed=0)")
    with pytest.raises(InvalidAction, match=r"action 2 is not in the action space Discrete\(2\) of CartPole-v1"):
        await env.step(2)
    with pytest.raises(InvalidAction, match=r"action 0\.0 is not in the action space"):
        await env.step(0.0)
    for step in range(40):
        action = step % 2
        want = reference.step(action)
        assert_same_exp(await env.step(action), want, f"step {step}")
        if want.done:
            break
    observed = await env.observe()
    np.testing.assert_array_equal(observed, want.next_state)
    reference.close()


def test_a_shell_drives_the_env_on_a_remote_node(env_peer: NodeProcess) -> None:
    lines = [
        "env.reset(0)",
        "env.step(1)",
        "print(env.render())",
        "env.step(7)",
        "print('after the refused action:', env.observe())",
        "env.reset(seed=0)",
        "print('vector:', venv.reset(0)['obs'].tolist(), venv.step_many([1] * 8)['obs'].shape)",
    ]
    result = subprocess.run(
        [sys.executable, "-m", "beamrl.cli", "shell", env_peer.address],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    out, err = result.stdout, result.stderr
    assert result.returncode == 0, out + err
    [proxies] = [line for line in err.splitlines() if line.strip().startswith("proxies")]
    assert {"env", "venv"} <= set(re.findall(r"\w+", proxies.split("—")[0])), err
    reference = make("FrozenLake-v1")
    reset, step = reference.reset(seed=0), reference.step(1)
    assert repr(reset).startswith("Exp(state=None, action=None, reward=0.0, next_state=0,")
    assert out.count(repr(reset)) == 2, out  # env.reset(0) and env.reset(seed=0)
    assert repr(step) in out, out
    plain = re.sub(r"\x1b\[[0-9;]*m", "", out)
    assert "  (Down)\n" in plain and "FHFH\nFFFH\nHFFG\n" in plain, out
    assert "InvalidAction: action 7 is not in the action space Discrete(4) of FrozenLake-v1" in err, err
    assert f"after the refused action: {step.next_state}" in out, out
    assert "vector: [0, 0, 0, 0, 0, 0, 0, 0] (8,)" in out, out
