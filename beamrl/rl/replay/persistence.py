"""A replay memory on disk: one ``.npz`` (``save``/``load``) or incremental checkpoints.

Neither uses pickle: every entry is a plain numeric array, the metadata is JSON text
stored as a ``uint8`` array, and loading passes ``allow_pickle=False``. Every file goes
through ``beamrl.persist.atomic_write`` (unique temporary name, fsync, rename, directory
fsync), so a crash leaves the previous file or checkpoint readable.
"""

from __future__ import annotations

import json
import os
import uuid
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

import numpy as np

from beamrl.fencing import WriterFence
from beamrl.persist import atomic_write
from beamrl.rl.errors import ReplayError
from beamrl.rl.replay.segments import (
    MANIFEST,
    SEGMENT_NAME,
    embedded_manifest,
    next_seq,
    problem,
    read_manifest,
    seg_order,
)
from beamrl.rl.replay.storage import COLUMNS, NUMERIC_KINDS, Batch, ReplayStorage

FORMAT = "beamrl.replay/1"
CHECKPOINT_FORMAT = "beamrl.replay-checkpoint/1"


class _Restore:
    """``restore`` on the class or on a memory (so a memory is a ``beamrl.persist.Saveable``).

    ``ReplayMemory.restore(directory)`` builds a new memory from a checkpoint directory, as it
    always did; ``memory.restore(path)`` replaces this memory's whole state with that of a
    checkpoint directory or of a file ``save`` wrote.
    """

    def __get__(self, memory: Any, cls: Any) -> Any:
        if memory is None:
            return cls.from_checkpoint
        return memory._restore_from


class ReplayPersistence(ReplayStorage):
    """Saving, loading and checkpointing of the state a ``ReplayStorage`` holds, plus the
    configuration and sampler state a ``ReplayMemory`` adds."""

    prioritized: bool
    n_step: int
    _beta0: float
    _beta_steps: int | None
    _beta_t: int
    _rng: np.random.Generator
    _ckpt_dir: Path | None
    _ckpt_token: str | None

    restore = _Restore()

    def _restore_from(self, path: str | os.PathLike[str]) -> None:
        source = Path(path)
        other = type(self).from_checkpoint(source) if source.is_dir() else type(self).load(source)
        state = vars(self)
        state.clear()
        state.update(vars(other))

    def state_dict(self) -> Batch:
        """The whole memory as a flat dict of numpy arrays: what ``save`` writes.

        ``meta``: UTF-8 JSON as ``uint8`` (format, config, cursor, count, max
        priority, β progress, sampler state, column spec). ``col.<name>``: the filled
        slots ``0 .. len-1`` of each column, in slot order (the oldest item sits at
        ``cursor`` once the memory is full). ``leaf``: the sum-tree leaves
        ``(p + eps) ** alpha`` of those slots (prioritized memories only). Pending
        n-step windows are not included.
        """
        out: Batch = {"meta": _json_bytes(self._meta(FORMAT))}
        n = self._size
        for name, col in self._cols.items():
            out[f"col.{name}"] = col[:n]
        if self._sum is not None:
            out["leaf"] = self._sum.get(np.arange(n))
        return out

    @classmethod
    def from_state_dict(cls, state: Mapping[str, np.ndarray]) -> Self:
        """Rebuild a memory from ``state_dict()`` output (or an opened ``.npz``)."""
        meta = _parse_meta(state, FORMAT)
        memory = cls._from_meta(meta)
        n = int(meta["size"])
        if memory._spec is not None:
            for name in COLUMNS:
                arr = _entry(state, f"col.{name}")
                memory._check_loaded(name, arr, n)
                memory._cols[name][:n] = arr
        if memory._sum is not None and memory._min is not None:
            leaf = _entry(state, "leaf")
            if leaf.shape != (n,):
                raise ReplayError(f"'leaf' has shape {leaf.shape}, expected ({n},)")
            leaves = np.zeros(memory.capacity)
            leaves[:n] = leaf
            memory._load_leaves(leaves, n)
        return memory

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the memory to one uncompressed ``.npz`` file (see ``state_dict``)."""
        _write_npz(Path(path), self.state_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Self:
        """Read a memory written by ``save``."""
        try:
            with open(Path(path), "rb") as fh, np.load(fh, allow_pickle=False) as data:
                return cls.from_state_dict({k: data[k] for k in data.files})
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
            raise ReplayError(f"cannot read a replay memory from {path}: {problem(exc)}") from exc

    def checkpoint(self, directory: str | os.PathLike[str], *, fence: WriterFence | None = None) -> int:
        """Write what changed since the last checkpoint into ``directory``; return bytes written.

        Layout: ``manifest.json`` (format, a token naming the latest checkpoint, the
        metadata of ``state_dict`` and the ordered list of segment files) and
        ``seg-NNNNNNNN-TOKEN.npz`` segments. A segment holds ``rows`` (slots) with
        ``col.<name>`` values for them, ``prio_slots`` with their ``leaf`` values, and
        ``manifest``: the manifest of the checkpoint it completes, so a lost
        ``manifest.json`` costs nothing (``from_checkpoint`` restores the newest complete
        segment set). Restoring applies segments in order onto an empty memory. The first
        checkpoint into a directory (or one whose manifest this memory did not write)
        is a base segment of every filled slot; later ones hold only the slots added
        or re-prioritised since. When the segments hold more than twice the memory's
        rows (or 64 segments), a new base replaces them.

        Crash and kill safety: segment names are unique per checkpoint (no two writers
        ever share a file); the manifest is renamed into place only once its segments
        are complete, and old segments are deleted only after that. With ``fence`` (the
        server's ``beamrl.fencing.WriterFence``) a writer that was taken over renames and
        deletes nothing (``Fenced``).
        """
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        replace = os.replace if fence is None else fence.replace
        manifest = self._chain_manifest(d)
        n = self._size
        if manifest is None:
            rows = np.arange(n, dtype=np.int64)
            prio_slots = rows
            segments: list[dict[str, Any]] = []
            seq = next_seq(d)
        else:
            rows = np.flatnonzero(self._dirty_rows[:n])
            prio_slots = np.flatnonzero(self._dirty_rows[:n] | self._dirty_prio[:n])
            segments = list(manifest["segments"])
            seq = int(manifest["next_seq"])
            stored = sum(int(s["rows"]) for s in segments) + rows.size
            if stored > 2 * max(n, 1) or len(segments) >= 64:  # compact into a new base
                rows = np.arange(n, dtype=np.int64)
                prio_slots = rows
                segments = []
        # A fresh token per checkpoint: a memory whose last checkpoint is no longer the
        # head of the chain (another memory restored from it and wrote since) starts over.
        token = uuid.uuid4().hex
        name = f"seg-{seq:08d}-{token[:12]}.npz"
        segments.append({"file": name, "rows": int(rows.size)})
        doc = {
            "format": CHECKPOINT_FORMAT,
            "token": token,
            "next_seq": seq + 1,
            "segments": segments,
            "meta": self._meta(FORMAT),
        }
        seg: Batch = {"rows": rows, "manifest": _json_bytes(doc)}
        for col_name, col in self._cols.items():
            seg[f"col.{col_name}"] = col[rows]
        if self._sum is not None:
            seg["prio_slots"] = prio_slots
            seg["leaf"] = self._sum.get(prio_slots)
        written = _write_npz(d / name, seg, replace)
        with atomic_write(d / MANIFEST, replace=replace) as f:
            f.write(json.dumps(doc, indent=1).encode())
            written += f.tell()
        keep = {s["file"] for s in segments}
        for old in d.glob("seg-*.npz"):
            if old.name not in keep:
                if fence is None:
                    old.unlink(missing_ok=True)
                else:
                    fence.unlink(old)
        self._ckpt_dir = d.resolve()
        self._ckpt_token = token
        self._dirty_rows[:] = False
        self._dirty_prio[:] = False
        return written

    @classmethod
    def from_checkpoint(cls, directory: str | os.PathLike[str]) -> Self:
        """Rebuild a memory from a ``checkpoint`` directory; later checkpoints there stay
        incremental. ``ReplayMemory.restore(directory)`` is the same call.

        Without a readable ``manifest.json`` (lost, or pointing at segments that are
        gone), the newest complete segment set is restored: every segment carries the
        manifest of the checkpoint it completed. A ``ReplayError`` names the file and
        the problem when nothing there can be restored.
        """
        d = Path(directory)
        try:
            return cls._from_manifest(d, read_manifest(d / MANIFEST), d / MANIFEST)
        except ReplayError as exc:
            first = exc
        for seg_path in sorted(d.glob("seg-*.npz"), key=seg_order, reverse=True):
            try:
                doc = embedded_manifest(seg_path)
                if doc is None or doc["segments"][-1]["file"] != seg_path.name:
                    continue
                memory = cls._from_manifest(d, doc, seg_path)
            except (ReplayError, KeyError, IndexError, TypeError):
                continue
            memory._ckpt_token = None  # the next checkpoint starts a new chain (and a new manifest)
            return memory
        raise first

    @classmethod
    def _from_manifest(cls, d: Path, doc: Any, source: Path) -> Self:
        """The memory ``doc`` (a manifest read from ``source``) describes, from its segments in ``d``."""
        if not isinstance(doc, dict) or doc.get("format") != CHECKPOINT_FORMAT:
            raise ReplayError(f"{source} is not a {CHECKPOINT_FORMAT} manifest")
        segments = doc.get("segments")
        if not isinstance(segments, list) or not segments or "meta" not in doc or "token" not in doc:
            raise ReplayError(f"{source}: the manifest lacks 'segments', 'meta' or 'token'")
        for entry in segments:
            file = entry.get("file") if isinstance(entry, dict) else None
            if not isinstance(file, str) or not SEGMENT_NAME.fullmatch(file):
                raise ReplayError(f"{source}: segment entry {entry!r:.100} is not a segment file name in {d}")
        meta = doc["meta"]
        try:
            memory = cls._from_meta(meta)
        except ReplayError as exc:
            raise ReplayError(f"{source}: {exc}") from exc
        n = int(meta["size"])
        leaves = np.zeros(memory.capacity)
        for entry in segments:
            path = d / entry["file"]
            try:
                with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as data:
                    seg = {k: data[k] for k in data.files}
            except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
                raise ReplayError(f"cannot read checkpoint segment {path}: {problem(exc)}") from exc
            try:
                memory._apply_segment(seg, n, leaves)
            except ReplayError as exc:
                raise ReplayError(f"{path}: {exc}") from exc
        if memory._sum is not None:
            memory._load_leaves(leaves, n)
        memory._ckpt_dir = d.resolve()
        memory._ckpt_token = str(doc["token"])
        return memory

    def _apply_segment(self, seg: Mapping[str, np.ndarray], n: int, leaves: np.ndarray) -> None:
        rows = _entry(seg, "rows").astype(np.int64)
        if rows.ndim != 1:
            raise ReplayError(f"'rows' has shape {rows.shape}, expected one dimension")
        if rows.size and (rows.min() < 0 or rows.max() >= n):
            raise ReplayError(f"rows outside 0..{n - 1}")
        # a segment written before the first add has no columns
        if self._spec is not None and rows.size:
            for name in COLUMNS:
                arr = _entry(seg, f"col.{name}")
                self._check_loaded(name, arr, rows.size)
                self._cols[name][rows] = arr
        if self._sum is not None:
            ps = _entry(seg, "prio_slots").astype(np.int64)
            leaf = _entry(seg, "leaf")
            if ps.ndim != 1 or leaf.shape != ps.shape:
                raise ReplayError(f"'prio_slots' {ps.shape} and 'leaf' {leaf.shape} do not match")
            if ps.size and (ps.min() < 0 or ps.max() >= n):
                raise ReplayError(f"prio_slots outside 0..{n - 1}")
            if not np.isfinite(leaf).all() or (leaf < 0).any():
                raise ReplayError("'leaf' holds NaN, infinite or negative priorities")
            leaves[ps] = leaf

    def _meta(self, fmt: str) -> dict[str, Any]:
        return {
            "format": fmt,
            "config": {
                "capacity": self.capacity,
                "prioritized": self.prioritized,
                "alpha": self.alpha,
                "beta": self._beta0,
                "eps": self.eps,
                "n_step": self.n_step,
                "gamma": self.gamma,
                "beta_steps": self._beta_steps,
            },
            "cursor": self._cursor,
            "count": self._count,
            "size": self._size,
            "max_priority": self._max_priority,
            "beta_t": self._beta_t,
            "rng": self._rng.bit_generator.state,
            "spec": None if self._spec is None else {k: [list(shape), dt.str] for k, (shape, dt) in self._spec.items()},
        }

    @classmethod
    def _from_meta(cls, meta: Mapping[str, Any]) -> Self:
        try:
            memory = cls(**meta["config"])
            memory._cursor = int(meta["cursor"])
            memory._count = int(meta["count"])
            memory._size = int(meta["size"])
            memory._max_priority = float(meta["max_priority"])
            memory._beta_t = int(meta["beta_t"])
            memory._rng.bit_generator.state = meta["rng"]
            spec = meta["spec"]
            if spec is not None:
                memory._allocate(
                    {
                        k: (tuple(int(d) for d in spec[k][0]), np.dtype(spec[k][1]))
                        for k in ("state", "action", "next_state")
                    }
                )
                for k, (shape, dt) in (memory._spec or {}).items():
                    if [list(shape), dt.str] != [list(spec[k][0]), spec[k][1]]:
                        raise ReplayError(f"column {k!r}: stored spec {spec[k]} is not supported")
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ReplayError):
                raise
            raise ReplayError(f"bad replay metadata: {exc!r}") from exc
        cap = memory.capacity
        ok = (
            0 <= memory._size <= cap
            and memory._count >= memory._size
            and memory._cursor == memory._count % cap
            and (memory._size == cap or memory._size == memory._count)
        )
        if not ok:
            raise ReplayError("bad replay metadata: cursor, count and size disagree")
        return memory

    def _check_loaded(self, name: str, arr: np.ndarray, rows: int) -> None:
        assert self._spec is not None
        shape, dtype = self._spec[name]
        if arr.shape != (rows, *shape) or arr.dtype != dtype:
            raise ReplayError(
                f"column {name!r} has shape {arr.shape} dtype {arr.dtype}, expected {(rows, *shape)} {dtype}"
            )

    def _chain_manifest(self, d: Path) -> dict[str, Any] | None:
        """The manifest in ``d`` if this memory's last checkpoint wrote it, else None."""
        if self._ckpt_dir is None or self._ckpt_dir != d.resolve():
            return None
        try:
            doc = json.loads((d / MANIFEST).read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(doc, dict) or doc.get("token") != self._ckpt_token:
            return None
        if not all((d / s["file"]).exists() for s in doc.get("segments", [])):
            return None
        return doc


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------


def _json_bytes(obj: Any) -> np.ndarray:
    return np.frombuffer(json.dumps(obj).encode(), dtype=np.uint8)


def _parse_meta(state: Mapping[str, np.ndarray], fmt: str) -> dict[str, Any]:
    raw = _entry(state, "meta")
    try:
        meta = json.loads(np.asarray(raw, dtype=np.uint8).tobytes().decode())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ReplayError(f"'meta' is not JSON: {exc}") from exc
    found = meta.get("format") if isinstance(meta, dict) else None
    if found != fmt:
        raise ReplayError(f"not a {fmt} replay memory (format {found!r})")
    return meta


def _entry(state: Mapping[str, np.ndarray], key: str) -> np.ndarray:
    try:
        arr = np.asarray(state[key])
    except KeyError:
        raise ReplayError(f"entry {key!r} is missing") from None
    if arr.dtype.kind not in NUMERIC_KINDS:
        raise ReplayError(f"entry {key!r} has non-numeric dtype {arr.dtype}")
    return arr


def _write_npz(path: Path, arrays: Mapping[str, np.ndarray], replace: Any = os.replace) -> int:
    with atomic_write(path, replace=replace) as f:
        np.savez(f, allow_pickle=False, **arrays)
        size = f.tell()
    return size
