"""One writer per checkpoint: a fence a live server holds on the files it checkpoints to.

    fence = WriterFence.acquire("ckpt/replay", lambda: server_is_alive, "ckpt/replay/.writer.lock")
    with atomic_write("ckpt/replay/manifest.json", replace=fence.replace) as f:
        f.write(doc)                 # renamed into place only while this fence is current
    fence.release()                  # on a graceful stop

A server killed while its checkpoint thread runs cannot stop that thread; the server that
replaces it takes the fence over (a new *generation*), and from then on the old thread's
renames and deletions are refused (``Fenced``) and its temporary file is removed, so two
writers never interleave their files. Taking over is allowed only when the previous
holder in this OS process is no longer alive; a holder in another OS process is seen
through an ``flock`` on a lock file beside the checkpoint, which the OS releases when
that process dies (``kill -9`` included); a graceful release removes the lock file.
Where ``flock`` does not exist (Windows) only writers in the same OS process are fenced.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

from beamrl.errors import BeamError

try:
    import fcntl
except ImportError:  # Windows: in-process fencing only
    fcntl = None  # type: ignore[assignment]

__all__ = ["CheckpointInUse", "Fenced", "WriterFence"]


class CheckpointInUse(BeamError, RuntimeError):
    """Another live server writes this checkpoint: two writers would corrupt it."""


class Fenced(BeamError, RuntimeError):
    """A writer whose fence was taken over tried to write: its write is dropped."""


class _Slot:
    __slots__ = ("fd", "generation", "lock_path", "owner_alive")

    def __init__(self, fd: int | None, lock_path: Path) -> None:
        self.fd = fd
        self.lock_path = lock_path
        self.generation = 0
        self.owner_alive: Callable[[], bool] = lambda: False


_lock = threading.Lock()
_slots: dict[Path, _Slot] = {}


def _lock_file(key: Path, lock_path: Path) -> int | None:
    """Open and ``flock`` the lock file; ``CheckpointInUse`` if another OS process holds it.

    A holder removes the file when it lets go, so a lock taken on a file that was
    removed meanwhile is dropped and taken again on the new one.
    """
    if fcntl is None:
        return None
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise CheckpointInUse(
                f"{key}: another OS process is writing this checkpoint (it holds {lock_path}); "
                "give each server its own checkpoint path"
            ) from None
        try:
            same = os.fstat(fd).st_ino == os.stat(lock_path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # the previous holder removed it as we locked it: lock the new one


class WriterFence:
    """The right to write one checkpoint path, held by one live server (see the module docstring)."""

    def __init__(self, key: Path, slot: _Slot, generation: int) -> None:
        self.key = key
        self._slot = slot
        self.generation = generation

    @classmethod
    def acquire(
        cls,
        path: str | os.PathLike[str],
        owner_alive: Callable[[], bool],
        lock_path: str | os.PathLike[str],
        temporaries: str | None = None,
    ) -> WriterFence:
        """Take the fence of ``path`` for a server whose liveness ``owner_alive`` tells.

        Raises ``CheckpointInUse`` while another live server (in this OS process or
        another) holds it. ``lock_path`` is the lock file (beside or inside ``path``).
        ``temporaries`` is a glob, beside the lock file, for the temporary files a writer
        killed in another OS process left behind: once nobody else can write, they go.
        """
        key = Path(os.path.abspath(path))
        with _lock:
            slot = _slots.get(key)
            if slot is None:
                slot = _Slot(_lock_file(key, Path(lock_path)), Path(lock_path))
                _slots[key] = slot
                if temporaries is not None:  # no writer in this OS process, none in another: leftovers
                    for leftover in Path(lock_path).parent.glob(temporaries):
                        leftover.unlink(missing_ok=True)
            elif slot.owner_alive():
                raise CheckpointInUse(f"{key}: a live server in this node already writes this checkpoint")
            slot.generation += 1
            slot.owner_alive = owner_alive
            return cls(key, slot, slot.generation)

    @property
    def current(self) -> bool:
        """True while no newer writer took the fence over."""
        return _slots.get(self.key) is self._slot and self._slot.generation == self.generation

    def _check(self, what: str) -> None:
        if not self.current:
            raise Fenced(f"{self.key}: a newer writer took this checkpoint over; {what} dropped")

    def replace(self, src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        """``os.replace`` only while this fence is current (what ``atomic_write`` calls)."""
        with _lock:
            self._check(f"the write of {dst}")
            os.replace(src, dst)

    def unlink(self, path: Path) -> None:
        """Delete ``path`` (missing is fine) only while this fence is current."""
        with _lock:
            self._check(f"the deletion of {path}")
            path.unlink(missing_ok=True)

    def rmdir(self, path: Path) -> None:
        """Remove the empty directory ``path`` (missing is fine) only while this fence is current."""
        with _lock:
            self._check(f"the removal of {path}")
            try:
                path.rmdir()
            except FileNotFoundError:
                pass

    def release(self) -> None:
        """Give the fence up (a graceful stop); a no-op once taken over."""
        with _lock:
            if not self.current:
                return
            del _slots[self.key]
            if self._slot.fd is not None:
                self._slot.lock_path.unlink(missing_ok=True)  # removed while still locked: see _lock_file
                os.close(self._slot.fd)  # closing releases the flock
