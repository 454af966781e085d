"""``beamrl.persist``: atomic writes leave either the old file or the new one, never half."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import numpy as np
import pytest

from beamrl.persist import Saveable, atomic_write, atomic_write_bytes
from beamrl.rl.qtable import DictQTable, QTable
from beamrl.rl.replay import ReplayMemory


def test_a_write_replaces_the_file_and_leaves_no_temporary_behind(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "state.bin"
    assert atomic_write_bytes(path, b"first") == 5
    assert atomic_write_bytes(path, b"second") == 6
    assert path.read_bytes() == b"second"
    assert sorted(p.name for p in path.parent.iterdir()) == ["state.bin"]


def test_an_error_inside_the_block_keeps_the_old_content(tmp_path: Path) -> None:
    path = tmp_path / "state.bin"
    path.write_bytes(b"old")

    def interrupted_write() -> None:
        with atomic_write(path) as f:
            f.write(b"half of the new")
            raise RuntimeError("disk gremlin")

    with pytest.raises(RuntimeError, match="disk gremlin"):
        interrupted_write()
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.bin"]


def test_an_error_before_the_first_write_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "never.bin"

    def refused() -> None:
        with atomic_write(path):
            raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        refused()
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


def test_concurrent_writers_use_distinct_temporary_files(tmp_path: Path) -> None:
    path = tmp_path / "shared.bin"
    inside = threading.Barrier(2)
    names: list[str] = []

    def write(payload: bytes) -> None:
        with atomic_write(path) as f:
            names.append(f.name)  # type: ignore[attr-defined]
            inside.wait(timeout=10)  # both temporaries exist at once
            f.write(payload)

    threads = [threading.Thread(target=write, args=(p,)) for p in (b"a" * 1000, b"b" * 1000)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(names)) == 2
    assert path.read_bytes() in (b"a" * 1000, b"b" * 1000)
    assert [p.name for p in tmp_path.iterdir()] == ["shared.bin"]


@pytest.mark.skipif(os.name == "nt", reason="POSIX file modes")
def test_a_written_file_gets_the_usual_mode_not_the_temporary_ones(tmp_path: Path) -> None:
    path = tmp_path / "out.bin"
    atomic_write_bytes(path, b"x")
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_tables_and_replay_memories_are_saveable(tmp_path: Path) -> None:
    q = QTable(3, 2)
    q.set(1, 1, 2.5)
    q.save(tmp_path / "q.npz")
    fresh = QTable(3, 2)
    fresh.restore(tmp_path / "q.npz")
    assert fresh.get(1, 1) == 2.5

    d = DictQTable(2)
    d.set((1, 2), 0, -1.0)
    d.save(tmp_path / "d.npz")
    d2 = DictQTable(2)
    d2.restore(tmp_path / "d.npz")
    assert d2.get((1, 2), 0) == -1.0

    memory = ReplayMemory(10, seed=0)
    memory.add_batch(
        {
            "state": np.zeros((4, 2), np.float32),
            "action": np.arange(4),
            "reward": np.ones(4),
            "next_state": np.ones((4, 2), np.float32),
            "terminated": np.zeros(4, bool),
            "truncated": np.zeros(4, bool),
        }
    )
    memory.save(tmp_path / "m.npz")
    other = ReplayMemory(10)
    other.restore(tmp_path / "m.npz")
    assert len(other) == 4
    memory.checkpoint(tmp_path / "ckpt")
    from_dir = ReplayMemory(3)
    from_dir.restore(tmp_path / "ckpt")  # a checkpoint directory restores the same way
    assert (len(from_dir), from_dir.capacity) == (4, 10)
    assert len(ReplayMemory.restore(tmp_path / "ckpt")) == 4  # the class form builds a new memory
    for obj in (q, d, memory):
        assert isinstance(obj, Saveable)


def test_a_write_that_need_not_be_durable_is_still_atomic(tmp_path: Path) -> None:
    path = tmp_path / "ledger.json"
    atomic_write_bytes(path, b'{"total": 1}', durable=False)
    atomic_write_bytes(path, b'{"total": 2}', durable=False)
    assert path.read_bytes() == b'{"total": 2}'
    assert [p.name for p in tmp_path.iterdir()] == ["ledger.json"]
