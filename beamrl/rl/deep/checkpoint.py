"""Checkpoints: a directory of safetensors files plus one JSON, swapped in atomically.

    write_checkpoint(Path("run/learner"), {"model.safetensors": data, ...}, {"updates": 2000})
    found = read_checkpoint(Path("run/learner"))     # (folder, meta) of the latest, or None

Layout: ``DIR/ckpt-<tag>-<unique>/`` holds the files and ``checkpoint.json`` (config and
counters); ``DIR/latest.json`` names the complete one. A checkpoint folder is filled
first (each file written atomically), then ``latest.json`` is replaced, then older
folders are removed: a crash at any moment leaves the previous checkpoint readable.
Files are safetensors (weights, optimizer moments, RNG states: see ``Algorithm.state``)
or ``.npz`` read with ``allow_pickle=False``; nothing is ever unpickled and ``torch.load``
is never used.

A process that checkpoints holds the directory's writer fence (``beamrl.fencing``)::

    fence = checkpoint_fence(Path("run/learner"), lambda: self._alive)   # in init
    write_checkpoint(Path("run/learner"), files, meta, tag=2000, fence=fence)
    fence.release()                                                      # in terminate

Every rename and deletion of ``write_checkpoint`` then goes through the fence: once a
restarted successor took the directory over, a killed writer's leftover thread gets
``Fenced`` on its next file and cannot replace ``latest.json`` or remove the successor's
folders.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from beamrl.fencing import WriterFence
from beamrl.persist import atomic_write
from beamrl.rl.deep.files import json_bytes
from beamrl.rl.deep.params import Params, params_from_bytes, params_to_bytes

__all__ = [
    "CheckpointError",
    "checkpoint_fence",
    "npz_bytes",
    "read_checkpoint",
    "read_npz",
    "read_tensors",
    "tensor_bytes",
    "write_checkpoint",
]

LATEST = "latest.json"
META = "checkpoint.json"


class CheckpointError(ValueError):
    """A checkpoint directory is missing a file or holds something unreadable."""


def tensor_bytes(tensors: Params) -> bytes:
    """Arrays as safetensors bytes."""
    return params_to_bytes(tensors)


def read_tensors(path: Path) -> Params:
    """The arrays of a safetensors file in a checkpoint."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint file {path} is missing")
    return params_from_bytes(path.read_bytes(), str(path))[0]


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """Arrays as an uncompressed ``.npz`` (plain numeric arrays only)."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]
    return buf.getvalue()


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """An ``.npz`` of a checkpoint, read without pickle."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError) as e:
        raise CheckpointError(f"cannot read {path}: {e}") from e


def checkpoint_fence(directory: Path, owner_alive: Callable[[], bool]) -> WriterFence:
    """The writer fence of a checkpoint directory for a process whose liveness ``owner_alive`` tells.

    Raises ``beamrl.fencing.CheckpointInUse`` while another live process writes there.
    """
    directory.mkdir(parents=True, exist_ok=True)
    return WriterFence.acquire(directory, owner_alive, directory / ".writer.lock", ".*.tmp")


def open_checkpoint(
    directory: Path, owner_alive: Callable[[], bool], restore: Callable[[Path, dict[str, Any]], None]
) -> WriterFence:
    """Take ``directory``'s fence and ``restore(folder, meta)`` its latest checkpoint, if any.

    What a checkpointing process does in ``init``: should the restore fail, the fence is
    released before the error goes on, so a supervisor's retry can take it again.
    """
    fence = checkpoint_fence(directory, owner_alive)
    try:
        if (found := read_checkpoint(directory)) is not None:
            restore(*found)
    except BaseException:
        fence.release()
        raise
    return fence


def write_checkpoint(
    directory: Path, files: dict[str, bytes], meta: dict[str, Any], tag: int = 0, fence: WriterFence | None = None
) -> Path:
    """Write a new checkpoint holding ``files`` and ``meta``; return its folder (``fence``: see above)."""
    replace = os.replace if fence is None else fence.replace
    directory.mkdir(parents=True, exist_ok=True)
    folder = directory / f"ckpt-{tag:012d}-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    for name, data in files.items():
        if "/" in name or name.startswith("."):
            raise CheckpointError(f"checkpoint file names are plain names, got {name!r}")
        _write(folder / name, data, replace)
    _write(folder / META, json_bytes(meta), replace)
    _write(directory / LATEST, json_bytes({"folder": folder.name}), replace)
    for old in directory.glob("ckpt-*"):
        if old.is_dir() and old.name != folder.name:
            if fence is None:
                shutil.rmtree(old, ignore_errors=True)
            else:
                for item in old.iterdir():
                    fence.unlink(item)
                fence.rmdir(old)
    return folder


def _write(path: Path, data: bytes, replace: Callable[[Path, Path], None]) -> None:
    with atomic_write(path, replace=replace) as f:
        f.write(data)


def read_checkpoint(directory: Path) -> tuple[Path, dict[str, Any]] | None:
    """(folder, meta) of the latest complete checkpoint under ``directory``, or None when there is none."""
    latest = directory / LATEST
    if not latest.is_file():
        return None
    try:
        name = json.loads(latest.read_text())["folder"]
        folder = directory / str(name)
        if folder.parent != directory or not folder.is_dir():
            raise CheckpointError(f"{latest} names a missing checkpoint folder {name!r}")
        meta = json.loads((folder / META).read_text())
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"cannot read the checkpoint in {directory}: {e}") from e
    if not isinstance(meta, dict):
        raise CheckpointError(f"{folder / META} does not hold a JSON object")
    return folder, meta
