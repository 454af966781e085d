"""Issue 10 item 1: a trusted peer starts only classes from modules the node allows.

A peer's ``start_child`` naming any other module is ``Rejected`` naming the module and the
module is never imported; whatever importing or initialising a child raises (``SystemExit``
and ``KeyboardInterrupt`` included) fails that start and leaves the node serving.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from beamrl import DynamicSupervisor, Node, Rejected, child
from beamrl.node_config import config_from_mapping
from beamrl.tree import TreeError
from beamrl.trust import ModuleAllowList, SpawnRejected
from tests import start_peer
from tests.security._hostile import Echo, ExitsInInit, InterruptsInInit


@pytest.fixture
async def pair() -> AsyncIterator[tuple[Node, Node]]:
    """``host`` runs a DynamicSupervisor named ``dyn``; ``peer`` is a connected node that sends requests."""
    async with (
        Node("host", listen="tcp://127.0.0.1:0") as host,
        Node("peer", listen="tcp://127.0.0.1:0") as peer,
    ):
        await host.start(DynamicSupervisor, name="dyn")
        await peer.connect(host.address)  # type: ignore[arg-type]
        yield host, peer


def _marker_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path]:
    """A module on sys.path that leaves a marker file when imported."""
    name = f"beamrl_probe_{uuid.uuid4().hex}"
    marker = tmp_path / "imported"
    (tmp_path / f"{name}.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('yes')\n"
        "from beamrl import GenServer\nclass Thing(GenServer):\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return name, marker


async def test_remote_start_child_of_a_module_not_allowed_is_rejected_without_importing_it(
    pair: tuple[Node, Node], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host, peer = pair
    module, marker = _marker_module(tmp_path, monkeypatch)
    with pytest.raises(Rejected, match=f"module '{module}' is not allowed"):
        await peer.start_child(("dyn", "host"), {"start": f"{module}:Thing"})
    nested = {"name": "inner", "children": [{"start": "beamrl:GenServer"}, {"start": f"{module}:Thing"}]}
    with pytest.raises(Rejected, match=f"module '{module}' is not allowed"):
        await peer.start_child(("dyn", "host"), nested)
    assert not marker.exists()
    assert module not in sys.modules
    # beamrl.testing's Spawner starts anything: it is not among the defaults
    with pytest.raises(Rejected, match=r"module 'beamrl\.testing' is not allowed"):
        await peer.start_child(("dyn", "host"), {"start": "beamrl.testing:Spawner"})
    for ref in ("os:system", "subprocess:Popen", "builtins:exec"):
        with pytest.raises(Rejected, match="is not allowed"):
            await peer.start_child(("dyn", "host"), {"start": ref})
    # gymnasium imports the module of a "module:Env-v0" id: the same allow-list applies
    env = {"start": "beamrl.rl.env_server:EnvServer", "args": [f"{module}:Env-v0"]}
    with pytest.raises(Rejected, match=f"module '{module}' is not allowed"):
        await peer.start_child(("dyn", "host"), env)
    assert not marker.exists()
    assert await host.which_children("dyn") == []
    # beamrl's own servers are allowed
    pid = await peer.start_child(("dyn", "host"), {"start": "beamrl.rl.env_server:EnvServer", "args": ["Taxi-v3"]})
    assert pid is not None and pid.node == "host"


async def test_an_allowed_module_starts_and_a_child_spec_object_is_not_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module, marker = _marker_module(tmp_path, monkeypatch)
    async with Node("local", allow_modules=[module]) as node:
        await node.start(DynamicSupervisor, name="dyn")
        assert await node.start_child("dyn", {"start": f"{module}:Thing"}) is not None
        assert marker.exists()
    async with Node("other") as node:
        await node.start(DynamicSupervisor, name="dyn")
        # a class handed over by code in the node is that code's business
        assert await node.start_child("dyn", child(Echo)) is not None
        with pytest.raises(Rejected, match=r"module 'tests\.security\._hostile' is not allowed"):
            await node.start_child("dyn", {"start": "tests.security._hostile:Echo"})


async def test_importing_a_module_that_exits_fails_the_start_not_the_node(pair: tuple[Node, Node]) -> None:
    host, peer = pair
    host.allowed_modules.add("tests.security")
    with pytest.raises(Rejected, match="raised SystemExit"):
        await peer.start_child(("dyn", "host"), {"start": "tests.security._exits_on_import:Nothing"})
    for cls, what in ((ExitsInInit, "SystemExit"), (InterruptsInInit, "KeyboardInterrupt")):
        with pytest.raises(Rejected, match=what):
            await peer.start_child(("dyn", "host"), {"start": f"tests.security._hostile:{cls.__name__}"})
        with pytest.raises(RuntimeError, match=what):
            await host.start(cls)
    assert await peer.call(("dyn", "host"), ["count_children"]) == {
        "specs": 0,
        "active": 0,
        "supervisors": 0,
        "workers": 0,
    }


def test_allow_list_entries() -> None:
    allow = ModuleAllowList(["myproject"])
    assert allow.allows("beamrl.rl.qserver")
    assert allow.allows("myproject") and allow.allows("myproject.envs.cart")
    assert not allow.allows("myprojectx") and not allow.allows("beamrl.testing")
    with pytest.raises(SpawnRejected, match="dotted module name"):
        allow.check("../../etc:x")
    with pytest.raises(ValueError, match="dotted module name"):
        ModuleAllowList(["not a module"])


async def test_a_node_process_survives_hostile_spawn_requests(node: Node) -> None:
    """A real ``beamrl node start`` (rc 2 on today's main) keeps serving."""
    tree = '[[children]]\nstart = "beamrl:DynamicSupervisor"\nname = "dyn"\n'
    peer = start_peer("spawn-target", tree_text=tree)
    try:
        name = await node.connect(peer.address)
        with pytest.raises(Rejected, match="raised SystemExit"):  # tests is allowed on test peers
            await node.start_child(("dyn", name), {"start": "tests.security._exits_on_import:Nothing"})
        with pytest.raises(Rejected, match="module 'os' is not allowed"):
            await node.start_child(("dyn", name), {"start": "os:system"})
        assert await node.call(("dyn", name), ["count_children"]) is not None
        assert peer.proc.poll() is None
    finally:
        assert peer.terminate() == 0, "".join(peer.output)


def test_a_role_file_names_modules_to_allow() -> None:
    config = config_from_mapping({"allow_modules": ["myproject.envs"], "data_dir": "/srv/beamrl"}, "actor.toml")
    assert (config.allow_modules, config.data_dir) == (["myproject.envs"], "/srv/beamrl")
    with pytest.raises(TreeError, match="allow_modules: expected a list of module names"):
        config_from_mapping({"allow_modules": [1]}, "actor.toml")
