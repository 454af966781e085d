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
"""

from __future__ import annotations

import io
import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from beamrl.persist import atomic_write_bytes
from beamrl.rl.deep.files import write_json
from beamrl.rl.deep.params import Params, params_from_bytes, params_to_bytes

__all__ = [
    "CheckpointError",
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


def write_checkpoint(directory: Path, files: dict[str, bytes], meta: dict[str, Any], tag: int = 0) -> Path:
    """Write a new checkpoint holding ``files`` and ``meta``; return its folder."""
    directory.mkdir(parents=True, exist_ok=True)
    folder = directory / f"ckpt-{tag:012d}-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    for name, data in files.items():
        if "/" in name or name.startswith("."):
            raise CheckpointError(f"checkpoint file names are plain names, got {name!r}")
        atomic_write_bytes(folder / name, data)
    write_json(folder / META, meta)
    write_json(directory / LATEST, {"folder": folder.name})
    for old in directory.glob("ckpt-*"):
        if old.is_dir() and old.name != folder.name:
            shutil.rmtree(old, ignore_errors=True)
    return folder


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
