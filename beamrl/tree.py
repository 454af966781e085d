"""Declarative supervision trees: ``supervisors/*.toml`` -> a running tree.

A tree file describes one supervisor::

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

Loading checks everything (keys, types, values, that every class imports and
is a process) before anything starts; a bad file raises ``TreeError`` naming
the file, the key and the problem.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from beamrl import child_spec
from beamrl.child_spec import ChildSpec, resolve_class
from beamrl.errors import BeamError
from beamrl.supervisor import Supervisor

__all__ = ["TreeError", "load_tree", "read_toml", "resolve_class", "spec_from_mapping", "start_tree", "tree_modules"]


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


def load_tree(path: str | Path) -> Any:
    """Read and check a tree file; returns the top supervisor's ``ChildSpec``. Starts nothing."""
    path = Path(path)
    data = read_toml(path)
    if "children" not in data:
        raise TreeError(f"{path}: missing key 'children' (an array of [[children]] tables)")
    try:
        return spec_from_mapping(data, where="tree")
    except (ValueError, TypeError) as exc:
        raise TreeError(f"{path}: {exc}") from None


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
