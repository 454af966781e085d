"""Declarative supervision trees: ``supervisors/*.toml`` -> a running tree.

A tree file describes one supervisor::

    pythonpath = [".."]            # folders (relative to this file) to import the classes from
    name = "demo"                  # registered name of the top supervisor (optional)
    strategy = "one_for_one"       # one_for_one | one_for_all | rest_for_one
    max_restarts = 3
    max_seconds = 5.0

    [[children]]                   # a worker
    start = "examples.crash_demo:Flaky"   # module:Class, a GenServer subclass
    name = "flaky"
    args = [0.5]
    kwargs = { label = "worker" }
    restart = "permanent"          # permanent | transient | temporary
    shutdown = 5.0                 # seconds, "infinity", or "brutal_kill"

    [[children]]                   # a nested supervisor: a child with children
    name = "inner"
    strategy = "one_for_all"
    [[children.children]]
    start = "..."

A tree is named by its path (relative paths from the current directory) or, for
the trees beamrl ships (``beamrl/trees/``), by name: ``actor_node``. Paths inside
the file (``pythonpath``) are relative to the file, so it works from any directory.

Loading checks everything (keys, types, values, that every class imports and
is a process, that each child's ``init`` takes its ``args`` and ``kwargs``)
before anything starts; a bad file raises ``TreeError`` naming the file, the
child and the problem.
"""

from __future__ import annotations

import inspect
import sys
import tomllib
from pathlib import Path
from typing import Any

from beamrl import child_spec
from beamrl.child_spec import ChildSpec, resolve_class
from beamrl.errors import BeamError
from beamrl.supervisor import Supervisor
from beamrl.trees import packaged_trees, tree_path

__all__ = [
    "TreeError",
    "find_tree",
    "load_tree",
    "read_toml",
    "resolve_class",
    "spec_from_mapping",
    "start_tree",
    "tree_modules",
]


class TreeError(BeamError, ValueError):
    """A supervision tree (or node) file is wrong: the message names file, key and problem."""


def spec_from_mapping(data: dict[str, Any], where: str) -> ChildSpec:
    """A ``ChildSpec`` from a mapping; nested supervisors are ``Supervisor`` processes."""
    return child_spec.spec_from_mapping(data, where, Supervisor)


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML file's table, or a ``TreeError`` naming the file and what is wrong with it."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TreeError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TreeError(f"{path}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise TreeError(f"{path}: not valid TOML: {exc}") from None


def find_tree(ref: str | Path) -> Path:
    """The file of tree ``ref``: a path to a file, or the name of a tree beamrl ships."""
    path = Path(ref)
    if path.is_file():
        return path
    if len(path.parts) == 1 and path.name in packaged_trees():
        return tree_path(path.name)
    if len(path.parts) == 1 and path.suffix != ".toml" and f"{path.name}.toml" in packaged_trees():
        return tree_path(f"{path.name}.toml")
    shipped = ", ".join(name.removesuffix(".toml") for name in packaged_trees())
    raise TreeError(f"{path}: no such file (nor a tree beamrl ships: {shipped})")


def load_tree(path: str | Path) -> Any:
    """Read and check a tree file; returns the top supervisor's ``ChildSpec``. Starts nothing.

    ``path`` is a file or the name of a packaged tree (``find_tree``).
    """
    path = find_tree(path)
    data = read_toml(path)
    _extend_import_path(path, data.pop("pythonpath", []))
    if "children" not in data:
        raise TreeError(f"{path}: missing key 'children' (an array of [[children]] tables)")
    try:
        spec = spec_from_mapping(data, where="tree")
    except (ValueError, TypeError) as exc:
        raise TreeError(f"{path}: {exc}") from None
    _check_arguments(path, data, spec, "tree")
    return spec


def _extend_import_path(path: Path, folders: Any) -> None:
    """Put the tree's ``pythonpath`` folders (relative to the file) on ``sys.path``."""
    if not isinstance(folders, list) or not all(isinstance(f, str) for f in folders):
        raise TreeError(f"{path}: pythonpath: expected a list of folders relative to the file, got {folders!r}")
    for folder in folders:
        where = (path.resolve().parent / folder).resolve()
        if not where.is_dir():
            raise TreeError(f"{path}: pythonpath: {folder!r} is no folder (it resolves to {where})")
        if str(where) not in sys.path:
            sys.path.insert(0, str(where))


def _check_arguments(path: Path, data: dict[str, Any], spec: ChildSpec, where: str) -> None:
    """Each worker's ``init`` accepts the ``args`` and ``kwargs`` the file gives it."""
    if "children" in data:
        for i, (sub_data, sub_spec) in enumerate(zip(data["children"], spec.args[0], strict=True)):
            _check_arguments(path, sub_data, sub_spec, f"{where}.children[{i}]")
        return
    cls = spec.start
    try:
        inspect.signature(cls.init).bind(None, *spec.args, **spec.kwargs)
    except TypeError as exc:
        label = f" ({spec.name})" if spec.name else ""
        raise TreeError(f"{path}: {where}{label}: {cls.__qualname__}.init {exc}") from None


def tree_modules(spec: ChildSpec) -> set[str]:
    """The modules of every class a loaded tree starts (what a node running it allows)."""
    modules = {spec.start.__module__} if isinstance(spec.start, type) else {spec.label().partition(":")[0]}
    for arg in spec.args:
        if isinstance(arg, list | tuple):
            for item in arg:
                if isinstance(item, ChildSpec):
                    modules |= tree_modules(item)
    return modules


async def start_tree(node: Any, path: str | Path) -> Any:
    """Load ``path`` and start its top supervisor on ``node``; returns its pid.

    The modules the tree names join the node's allow-list: the operator chose them,
    so peers may start their classes too (``beamrl.trust``).
    """
    spec = load_tree(path)
    for module in sorted(tree_modules(spec)):
        node.allowed_modules.add(module)
    return await node.start(spec.start, *spec.args, name=spec.name, **spec.kwargs)
