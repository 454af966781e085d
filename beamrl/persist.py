"""One way to write state to disk: atomic writes and the ``Saveable`` protocol.

Everything beamrl persists (Q-tables, a QServer's checkpoint, replay memories, and the
learners to come) goes through ``atomic_write``::

    with atomic_write("runs/q.npz") as f:        # a binary file object
        np.savez(f, q=table)
    # here the file is complete on disk; a crash before this line left the old one

The bytes go to a temporary file with a unique name in the same directory; it is flushed
and fsynced, renamed over the target (atomic on POSIX and Windows), and the directory
is fsynced so the rename itself survives a power cut. Readers never see half a file, and
two writers of the same path never share a temporary file (the last rename wins).

``Saveable`` is what a checkpointer needs to know of an object: ``save(path)`` writes
its state, ``restore(path)`` reads it back into the object.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

__all__ = ["Saveable", "atomic_write", "atomic_write_bytes", "fsync_directory"]

# mkstemp creates its file readable by its owner only; a finished file gets the mode
# ``open`` would have given it. The umask can only be read by setting it: done once, here.
_UMASK = os.umask(0o022)
os.umask(_UMASK)
_FILE_MODE = 0o666 & ~_UMASK


@runtime_checkable
class Saveable(Protocol):
    """State that can be written to ``path`` and read back from it."""

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the state to ``path`` atomically (see ``atomic_write``)."""
        ...

    def restore(self, path: str | os.PathLike[str]) -> None:
        """Replace the state with the one ``save`` wrote to ``path``."""
        ...


def fsync_directory(directory: str | os.PathLike[str]) -> None:
    """Make a rename or a new file in ``directory`` durable (no-op where unsupported)."""
    if os.name == "nt":  # Windows cannot open a directory; its renames are journaled
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike[str],
    *,
    durable: bool = True,
    replace: Callable[[Path, Path], None] = os.replace,
) -> Iterator[BinaryIO]:
    """A binary file whose content replaces ``path`` only when the block ends without error.

    The parent directory is created if needed. On an exception the temporary file is
    removed and ``path`` keeps its old content (or stays absent). ``durable=False`` skips
    both fsyncs: the file still never appears half-written to a reader, but a power cut
    may lose the latest version (for small, frequent notes written on the event loop).
    ``replace`` does the final rename (a ``beamrl.fencing.WriterFence.replace`` refuses
    it once a newer writer took the checkpoint over; the temporary file is then removed).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            if os.name != "nt":
                os.fchmod(f.fileno(), _FILE_MODE)
            yield f
            f.flush()
            if durable:
                os.fsync(f.fileno())
        replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_directory(target.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, durable: bool = True) -> int:
    """Write ``data`` to ``path`` atomically; returns the number of bytes written."""
    with atomic_write(path, durable=durable) as f:
        f.write(data)
    return len(data)
