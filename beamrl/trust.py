"""What a trusted peer may make a node do: which modules it may start classes from, and
where the files it names may live.

A peer that passed the node's authentication can send any request, but:

* **Modules.** A ``"module:Class"`` that arrives as data (a child spec sent to a
  supervisor's ``start_child``, a nested supervisor's children) is started only when
  ``ModuleAllowList`` allows its module; anything else is ``SpawnRejected`` naming the
  module, *before* it is imported. Allowed by default: beamrl's own modules (its
  behaviours and servers), except ``beamrl.testing``, whose ``Spawner`` starts whatever
  it is told. A node adds the modules of the tree it starts, its role file's
  ``allow_modules``, ``--allow-module`` and ``Node(allow_modules=...)``. An entry allows
  the module and its submodules (``"myproject"`` allows ``myproject.envs``). Classes
  handed over as Python objects by code running in the node are not checked: that code
  is already trusted.
* **Paths.** A process started on behalf of a remote request (``started_for_a_peer()`` is
  true while it starts, so it holds in its ``init`` and in everything it starts) resolves
  the paths it was given with ``confine``: a relative path lands inside the node's data
  directory; an absolute path, ``..`` or a symlink leading out of it is ``PathRejected``.
  Local code that passes paths as Python arguments is not confined. The same holds for
  other names that import code: an ``EnvServer`` started for a peer accepts a gymnasium
  ``"module:Env-v0"`` id only from an allowed module.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from beamrl.errors import Rejected
from beamrl.reprs import short_repr

__all__ = [
    "DEFAULT_MODULES",
    "ModuleAllowList",
    "PathRejected",
    "SpawnRejected",
    "confine",
    "default_data_dir",
    "for_a_peer",
    "started_for_a_peer",
]

DEFAULT_MODULES = ("beamrl",)
"""Allowed on every node: beamrl's own behaviours and servers."""
_EXCLUDED = ("beamrl.testing",)
"""Inside ``DEFAULT_MODULES`` but allowed only when named explicitly."""
_MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_MAX_PATH_CHARS = 1024
_MAX_NAME_BYTES = 255


class SpawnRejected(Rejected):
    """A remote request named a class from a module this node does not allow."""


class PathRejected(Rejected):
    """A path in a remote request points outside the node's data directory (or is malformed)."""


def _within(module: str, entry: str) -> bool:
    return module == entry or module.startswith(entry + ".")


class ModuleAllowList:
    """The modules a node starts classes from when a request names them as data."""

    def __init__(self, modules: Iterable[str] = ()) -> None:
        self._explicit: set[str] = set()
        for name in modules:
            self.add(name)

    def add(self, module: str) -> None:
        """Allow ``module`` and its submodules (a dotted module name, e.g. ``myproject.envs``)."""
        if not isinstance(module, str) or not _MODULE_NAME.match(module):
            raise ValueError(f"allow_modules: expected a dotted module name such as 'myproject.envs', got {module!r}")
        self._explicit.add(module)

    @property
    def modules(self) -> list[str]:
        """Every allowed entry (the defaults first)."""
        return [*DEFAULT_MODULES, *sorted(self._explicit)]

    def allows(self, module: str) -> bool:
        """True when classes of ``module`` may be started on request."""
        if any(_within(module, entry) for entry in self._explicit):
            return True
        if any(_within(module, entry) for entry in _EXCLUDED):
            return False
        return any(_within(module, entry) for entry in DEFAULT_MODULES)

    def check(self, ref: str) -> None:
        """Raise ``SpawnRejected`` unless the module of ``"module:Class"`` is allowed. Imports nothing."""
        module = ref.partition(":")[0] if isinstance(ref, str) else ""
        if not _MODULE_NAME.match(module):
            raise SpawnRejected(f"cannot start {_short(ref)}: expected 'module:Class' with a dotted module name")
        if not self.allows(module):
            raise SpawnRejected(
                f"module {module!r} is not allowed on this node: a node starts classes only from beamrl's "
                "own modules, its tree's modules and those given with --allow-module / allow_modules="
            )

    def __repr__(self) -> str:
        return f"ModuleAllowList({self.modules})"


# -- paths ------------------------------------------------------------------------------

_untrusted: contextvars.ContextVar[bool] = contextvars.ContextVar("beamrl_started_for_a_peer", default=False)


def started_for_a_peer() -> bool:
    """True inside a process started on behalf of a remote request (and in what it starts)."""
    return _untrusted.get()


@contextlib.contextmanager
def for_a_peer(untrusted: bool = True) -> Iterator[None]:
    """Processes started inside this block (and their own children) act for a peer: they
    confine their paths and import only allowed modules.

    A process's task copies the context it was started in, so the flag holds in its
    ``init`` and handlers, and in every process it starts in turn.
    """
    if not untrusted:
        yield
        return
    token = _untrusted.set(True)
    try:
        yield
    finally:
        _untrusted.reset(token)


def default_data_dir(node_name: str) -> Path:
    """``$XDG_STATE_HOME/beamrl/nodes/NAME`` (``~/.local/state/...``; ``%LOCALAPPDATA%`` on Windows)."""
    if os.name == "nt":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    else:
        base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return base / "beamrl" / "nodes" / (node_name if node_name.strip(".") else f"_{node_name}")


def confine(path: str | os.PathLike[str], data_dir: str | os.PathLike[str], what: str = "path") -> Path:
    """``path`` resolved inside ``data_dir``, or ``PathRejected`` saying why not.

    Refused: anything but a non-empty string, an absolute path, a ``..`` part, a NUL,
    an over-long path or file name, and a path whose existing part leads (through a
    symlink) out of ``data_dir``. The directory itself is created if missing.
    """
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
    if not isinstance(path, str) or not path:
        raise PathRejected(f"{what}: expected a non-empty relative path, got {_short(path)}")
    if "\x00" in path or len(path) > _MAX_PATH_CHARS:
        raise PathRejected(f"{what}: not a usable path: {_short(path)}")
    rel = Path(path)
    if rel.is_absolute() or rel.drive or path.startswith(("/", "\\")):
        raise PathRejected(f"{what}: {_short(path)} is absolute; give a path relative to the node's data directory")
    if ".." in rel.parts:
        raise PathRejected(f"{what}: {_short(path)} contains '..'; paths stay inside the node's data directory")
    if any(len(part.encode("utf-8", "surrogateescape")) > _MAX_NAME_BYTES for part in rel.parts):
        raise PathRejected(f"{what}: a part of {_short(path)} is longer than {_MAX_NAME_BYTES} bytes")
    root = Path(data_dir)
    root.mkdir(parents=True, exist_ok=True)
    root = root.resolve()
    target = (root / rel).resolve()  # follows symlinks that exist
    if target != root and not target.is_relative_to(root):
        raise PathRejected(f"{what}: {_short(path)} leads out of the node's data directory (through a symlink)")
    return target


def _short(value: object, limit: int = 120) -> str:
    return short_repr(value, limit)
