"""Issue 10 item 1: paths in a peer's requests stay inside the node's data directory.

Servers a peer starts (``start_child`` from another node) resolve their checkpoint paths
inside ``Node(data_dir=...)``: absolute paths, ``..`` and symlinks leading out are
``Rejected`` and nothing is written outside. Local code passing paths is not confined.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from beamrl import DynamicSupervisor, Node, Rejected
from beamrl.rl import QServer
from beamrl.testing import eventually
from beamrl.trust import PathRejected, confine
from tests import start_peer

QSERVER = "beamrl.rl.qserver:QServer"
REPLAY = "beamrl.rl.replay_server:ReplayServer"


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[Node, Node]]:
    async with (
        Node("host", listen="tcp://127.0.0.1:0", data_dir=tmp_path / "data") as host,
        Node("peer", listen="tcp://127.0.0.1:0") as peer,
    ):
        await host.start(DynamicSupervisor, name="dyn", max_restarts=10)
        await peer.connect(host.address)  # type: ignore[arg-type]
        yield host, peer


def _files(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*")) if directory.exists() else []


async def test_escaping_paths_in_a_peers_start_are_rejected(pair: tuple[Node, Node], tmp_path: Path) -> None:
    host, peer = pair
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "data").mkdir()
    os.symlink(outside, tmp_path / "data" / "link")
    bad = {
        str(outside / "q.npz"): "is absolute",
        "../outside/q.npz": "contains '..'",
        "runs/../../outside/q.npz": "contains '..'",
        "link/q.npz": "leads out of the node's data directory",
        "a" * 300: "longer than 255 bytes",
        "": "non-empty relative path",
    }
    for path, why in bad.items():
        with pytest.raises(Rejected, match=why):
            await peer.start_child(("dyn", "host"), {"start": QSERVER, "args": [4, 2], "kwargs": {"checkpoint": path}})
        with pytest.raises(Rejected, match=why):
            await peer.start_child(("dyn", "host"), {"start": REPLAY, "args": [8], "kwargs": {"checkpoint_dir": path}})
    nested = {"name": "inner", "children": [{"start": QSERVER, "args": [4, 2], "kwargs": {"checkpoint": "/etc/q"}}]}
    with pytest.raises(Rejected, match="is absolute"):
        await peer.start_child(("dyn", "host"), nested)
    assert _files(outside) == []
    assert await host.which_children("dyn") == []


async def test_a_peers_server_writes_inside_the_data_dir_and_keeps_it_across_restarts(
    pair: tuple[Node, Node], tmp_path: Path
) -> None:
    host, peer = pair
    spec = {"start": QSERVER, "args": [4, 2], "kwargs": {"checkpoint": "runs/q.npz"}, "name": "q"}
    pid = await peer.start_child(("dyn", "host"), spec)
    await peer.call(("q", "host"), ["set", 1, 1, 2.5])
    assert await peer.call(("q", "host"), ["checkpoint"]) == str((tmp_path / "data" / "runs" / "q.npz").resolve())
    assert not (Path.cwd() / "runs" / "q.npz").is_file()
    host.kill(pid)  # type: ignore[arg-type]
    # the supervisor restarts it as a peer's child: the same relative path, inside the data dir
    await eventually(lambda: host.whereis("q") not in (None, pid), what="q restarted")
    info = await eventually(lambda: _info(peer), what="q answers")
    assert info["resumed"] and await peer.call(("q", "host"), ["get", 1, 1]) == 2.5
    with pytest.raises(Rejected, match="plain file name"):
        await peer.call(("q", "host"), ["save", "../escape.npz"])
    with pytest.raises(Rejected, match="too long"):
        await peer.call(("q", "host"), ["save", "a" * 300])
    assert await peer.call(("q", "host"), ["get", 1, 1]) == 2.5


async def _info(peer: Node) -> dict[str, object] | None:
    try:
        info: dict[str, object] = await peer.call(("q", "host"), ["info"])
    except Exception:
        return None
    return info


async def test_local_code_passes_any_path(tmp_path: Path) -> None:
    async with Node("local", data_dir=tmp_path / "data") as node:
        path = tmp_path / "elsewhere" / "q.npz"
        await node.start(QServer, 4, 2, checkpoint=str(path), name="q")
        assert await node.call("q", ["checkpoint"]) == str(path)
        assert path.exists()


def test_confine(tmp_path: Path) -> None:
    root = tmp_path / "root"
    assert confine("a/b.npz", root) == (root / "a" / "b.npz").resolve()
    assert confine("./c", root) == (root / "c").resolve()
    for path in ("/abs", "..", "a/../../b", "x\x00y", 7, None):
        with pytest.raises(PathRejected):
            confine(path, root)  # type: ignore[arg-type]


async def test_node_start_takes_a_data_dir(node: Node, tmp_path: Path) -> None:
    tree = '[[children]]\nstart = "beamrl:DynamicSupervisor"\nname = "dyn"\n'
    peer = start_peer("data-dir-node", "--data-dir", str(tmp_path / "state"), tree_text=tree)
    try:
        name = await node.connect(peer.address)
        spec = {"start": QSERVER, "args": [3, 2], "kwargs": {"checkpoint": "tables/q.npz"}, "name": "q"}
        await node.start_child(("dyn", name), spec)
        written = await node.call(("q", name), ["checkpoint"])
        assert Path(written) == (tmp_path / "state" / "tables" / "q.npz").resolve()
        with pytest.raises(Rejected, match="is absolute"):
            await node.start_child(("dyn", name), {**spec, "name": "q2", "kwargs": {"checkpoint": str(tmp_path / "q")}})
    finally:
        assert peer.terminate() == 0, "".join(peer.output)
