"""Issue 10 items 3 and 7: a lost manifest, tampered manifests and broken files.

A lost ``manifest.json`` restores the newest complete segment set (not an empty memory
that then deletes the old segments); manifest entries cannot point outside their
directory; a broken checkpoint raises an error naming the file and the problem, never a
bare ``BadZipFile``, ``EOFError`` or ``KeyError``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from beamrl import Node
from beamrl.rl import QServer, ReplayServer
from beamrl.rl.errors import QTableError, ReplayError
from beamrl.rl.qtable import QTable
from beamrl.rl.replay import ReplayMemory
from tests.security.test_checkpoint_kills import rows


def _memory(n: int) -> ReplayMemory:
    memory = ReplayMemory(64, prioritized=True, seed=0)
    memory.add_batch(rows(0, n))
    return memory


def _same(a: ReplayMemory, b: ReplayMemory) -> None:
    assert (a.count, len(a)) == (b.count, len(b))
    np.testing.assert_array_equal(a.state_dict()["col.reward"], b.state_dict()["col.reward"])
    np.testing.assert_allclose(a.state_dict()["leaf"], b.state_dict()["leaf"])


async def test_a_lost_manifest_restores_the_newest_complete_segment_set(node: Node, tmp_path: Path) -> None:
    d = tmp_path / "replay"
    pid = await node.start(ReplayServer, 64, checkpoint_dir=str(d), checkpoint_every=None, prioritized=True)
    for start, n in ((0, 10), (10, 10), (20, 5)):  # a base and two increments
        await node.call(pid, ["add_batch", rows(start, n)])
        await node.call(pid, ["checkpoint"])
    await node.call(pid, ["add_batch", rows(25, 3)])  # never checkpointed
    node.kill(pid)
    (d / "manifest.json").unlink()
    (d / "seg-99999999-0123456789ab.npz").write_bytes(b"half a segment")  # an incomplete newer one
    pid = await node.start(ReplayServer, 64, checkpoint_dir=str(d), checkpoint_every=None, prioritized=True)
    stats = await node.call(pid, ["stats"])
    assert (stats["restored"], stats["restored_total"]) == (25, 25)
    batch = await node.call(pid, ["sample", 25, "latest"])
    assert sorted(batch["reward"].tolist()) == list(range(25))
    await node.call(pid, ["checkpoint"])  # a new chain; the old segments go only after its manifest
    assert (d / "manifest.json").exists()
    assert ReplayMemory.restore(d).count == 25
    assert len(list(d.glob("seg-*.npz"))) == 1


def test_manifest_entries_cannot_point_outside_their_directory(tmp_path: Path) -> None:
    d = tmp_path / "ckpt"
    memory = _memory(12)
    memory.checkpoint(d)
    outside = tmp_path / "outside.npz"
    _memory(40).save(outside)
    doc = json.loads((d / "manifest.json").read_text())
    for bad in ("../outside.npz", str(outside), "seg-00000000.npz/../../outside.npz"):
        doc["segments"][0]["file"] = bad
        (d / "manifest.json").write_text(json.dumps(doc))
        _same(ReplayMemory.restore(d), memory)  # the segment's own manifest, not the tampered one
    for seg in d.glob("seg-*.npz"):
        seg.unlink()
    with pytest.raises(ReplayError, match=r"manifest\.json: segment entry .* is not a segment file name"):
        ReplayMemory.restore(d)


def test_broken_files_name_the_file_and_the_problem(tmp_path: Path) -> None:
    d = tmp_path / "ckpt"
    _memory(12).checkpoint(d)
    (seg,) = d.glob("seg-*.npz")
    seg.write_bytes(seg.read_bytes()[:100])
    with pytest.raises(ReplayError, match=rf"{seg.name}: not a complete \.npz file"):
        ReplayMemory.restore(d)
    (d / "manifest.json").write_text("{not json")
    with pytest.raises(ReplayError, match=r"cannot read .*manifest\.json"):
        ReplayMemory.restore(d)

    saved = tmp_path / "memory.npz"
    _memory(5).save(saved)
    saved.write_bytes(saved.read_bytes()[:-30])
    with pytest.raises(ReplayError, match=r"memory\.npz: not a complete \.npz file"):
        ReplayMemory.load(saved)
    np.savez(tmp_path / "nometa.npz", x=np.zeros(2))
    with pytest.raises(ReplayError, match="'meta' is missing"):
        ReplayMemory.load(tmp_path / "nometa.npz")

    table = QTable(3, 2)
    table.save(tmp_path / "q.npz")
    (tmp_path / "q.npz").write_bytes((tmp_path / "q.npz").read_bytes()[:-20])
    with pytest.raises(QTableError, match=r"q\.npz'?: not a complete \.npz file"):
        QTable(3, 2).restore(tmp_path / "q.npz")
    with pytest.raises(QTableError, match=r"q\.npz'?: not a complete \.npz file"):
        QTable.load(tmp_path / "q.npz")
    np.savez(tmp_path / "noq.npz", x=np.zeros(2))
    with pytest.raises(QTableError, match="has no array 'q'"):
        QTable(3, 2).restore(tmp_path / "noq.npz")
    np.savez(tmp_path / "badversion.npz", q=np.zeros((3, 2)), version=np.array([1, 2]))
    with pytest.raises(QTableError, match=r"'version'.*one integer"):
        QTable(3, 2).restore(tmp_path / "badversion.npz")


async def test_a_qserver_with_a_broken_checkpoint_fails_to_start_saying_why(node: Node, tmp_path: Path) -> None:
    path = tmp_path / "q.npz"
    path.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(QTableError, match=r"q\.npz'?: not a complete \.npz file"):
        await node.start(QServer, 3, 2, checkpoint=str(path))
    # the failed start released the checkpoint: a fixed file can be used at once
    QTable(3, 2).save(path)
    assert await node.start(QServer, 3, 2, checkpoint=str(path)) is not None
