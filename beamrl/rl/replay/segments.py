"""The files of a replay checkpoint directory: segment names, manifests, what to restore from.

A checkpoint directory holds ``manifest.json`` and ``seg-NNNNNNNN-TOKEN.npz`` segments
(older ones: ``seg-NNNNNNNN.npz``); every segment also carries the manifest of the
checkpoint it completed, so the directory can be restored without ``manifest.json``.
These helpers read those files defensively: a manifest entry must be a segment file name
in the same directory, and unreadable files are described in words.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from beamrl.rl.errors import ReplayError

MANIFEST = "manifest.json"

SEGMENT_NAME = re.compile(r"seg-[0-9]{8,}(-[0-9a-f]{12})?\.npz")
"""A manifest entry names a segment file in the checkpoint's own directory, nothing else."""


def problem(exc: BaseException) -> str:
    """What is wrong with a file, in words (not a bare ``BadZipFile`` or ``KeyError``)."""
    if isinstance(exc, ReplayError):
        return str(exc)
    if isinstance(exc, zipfile.BadZipFile | EOFError):
        return f"not a complete .npz file (truncated or corrupt: {exc})"
    if isinstance(exc, KeyError):
        return f"an entry of the .npz file is missing or unreadable ({exc})"
    return f"{type(exc).__name__}: {exc}"


def read_manifest(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReplayError(f"cannot read {path}: it is missing") from None
    except (OSError, ValueError) as exc:
        raise ReplayError(f"cannot read {path}: {exc}") from exc


def embedded_manifest(path: Path) -> Any:
    """The manifest a segment carries (None for segments written before they carried one)."""
    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as data:
            if "manifest" not in data.files:
                return None
            raw = data["manifest"]
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):
        return None
    try:
        return json.loads(np.asarray(raw, dtype=np.uint8).tobytes().decode())
    except (ValueError, UnicodeDecodeError):
        return None


def seg_order(path: Path) -> tuple[int, float]:
    """Newest first: by sequence number, then by modification time."""
    match = re.match(r"seg-([0-9]+)", path.name)
    try:
        mtime = path.stat().st_mtime
    except OSError:
        mtime = 0.0
    return (int(match.group(1)) if match else -1, mtime)


def next_seq(d: Path) -> int:
    """A sequence number above every segment already in ``d`` (a new chain never reuses one)."""
    seqs = [seg_order(p)[0] for p in d.glob("seg-*.npz")]
    return max(seqs, default=-1) + 1


def has_checkpoint(directory: str | os.PathLike[str]) -> bool:
    """True when ``directory`` holds a manifest or any segment to restore from."""
    d = Path(directory)
    return (d / MANIFEST).exists() or any(d.glob("seg-*.npz"))
