from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator

import pytest

from beamrl import Node
from beamrl.testing import SPAWNER_TREE, Host, NodeProcess
from tests import start_peer


def pytest_configure(config: pytest.Config) -> None:
    """The suite's nodes (and the nodes it starts as OS processes) share a fresh cookie.

    Plaintext nodes authenticate with the cookie in ``$XDG_CONFIG_HOME/beamrl/cookie``;
    pointing that at a temporary directory keeps the user's own cookie out of the tests.
    """
    if "BEAMRL_TEST_CONFIG_HOME" not in os.environ:
        home = tempfile.mkdtemp(prefix="beamrl-test-config-")
        os.environ["BEAMRL_TEST_CONFIG_HOME"] = home
        os.environ["XDG_CONFIG_HOME"] = home


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, object]:
    """Run async tests on uvloop, the loop beamrl uses in production, where it exists."""
    if sys.platform == "win32":
        return {"asyncio": asyncio.new_event_loop}
    import uvloop

    return {"uvloop": uvloop.new_event_loop}


@pytest.fixture
async def node() -> AsyncIterator[Node]:
    async with Node("test") as n:
        yield n


@pytest.fixture(scope="module")
def host_peer(request: pytest.FixtureRequest) -> Iterator[NodeProcess]:
    """One peer node per test module, running the ``Spawner`` remote hosts use."""
    peer = start_peer(f"host-{request.module.__name__.rsplit('.', 1)[-1]}", tree_text=SPAWNER_TREE)
    yield peer
    assert peer.terminate() == 0, "".join(peer.output)


@pytest.fixture(params=["local", "remote"])
async def host(request: pytest.FixtureRequest, node: Node) -> AsyncIterator[Host]:
    """Where the processes under test run: ``node`` itself, or a peer in another OS process."""
    if request.param == "local":
        yield Host(node)
        return
    peer: NodeProcess = request.getfixturevalue("host_peer")
    remote = Host(node, await node.connect(peer.address))
    try:
        yield remote
    finally:
        await remote.reset()
