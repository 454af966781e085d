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

import importlib
import tomllib
from pathlib import Path
from typing import Any

from beamrl.errors import BeamError
from beamrl.process import Process


class TreeError(BeamError, ValueError):
    """A supervision tree (or node) file is wrong: the message names file, key and problem."""


_WORKER_KEYS = {"start", "name", "args", "kwargs", "restart", "shutdown"}
_SUP_KEYS = {"name", "strategy", "max_restarts", "max_seconds", "max_children", "children", "restart", "shutdown"}


def resolve_class(ref: str) -> type[Process]:
    """Import ``"package.module:Class"`` and check it is a process class."""
    if not isinstance(ref, str) or ref.count(":") != 1:
        raise ValueError(f"expected 'module:Class', got {ref!r}")
    module_name, _, attr = ref.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import module {module_name!r}: {exc}") from exc
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ValueError(f"module {module_name!r} has no {attr!r}") from None
    if not (isinstance(obj, type) and issubclass(obj, Process)):
        raise ValueError(f"{ref!r} is not a process class (GenServer/Supervisor subclass)")
    return obj


def _shutdown(value: Any, where: str) -> float | str | None:
    if value == "infinity":
        return None
    if value == "brutal_kill":
        return "brutal_kill"
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f'{where}: shutdown must be seconds >= 0, "infinity" or "brutal_kill", got {value!r}')
    return float(value)


def spec_from_mapping(data: dict[str, Any], where: str) -> Any:
    """A ``ChildSpec`` from a mapping (a TOML table, or a spec that travelled as data)."""
    from beamrl.supervisor import Supervisor, child

    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a table, got {type(data).__name__}")
    if "children" in data:
        unknown = set(data) - _SUP_KEYS
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} for a nested supervisor")
        children = data["children"]
        if not isinstance(children, list):
            raise ValueError(f"{where}.children: expected an array of tables")
        specs = [spec_from_mapping(c, f"{where}.children[{i}]") for i, c in enumerate(children)]
        kwargs: dict[str, Any] = {
            k: data[k] for k in ("strategy", "max_restarts", "max_seconds", "max_children") if k in data
        }
        _check_flags(kwargs, where)
        extra: dict[str, Any] = {}
        if "shutdown" in data:
            extra["shutdown"] = _shutdown(data["shutdown"], where)
        return child(Supervisor, specs, name=_name(data, where), restart=_restart(data, where), **extra, **kwargs)
    unknown = set(data) - _WORKER_KEYS
    if unknown:
        allowed = ", ".join(sorted(_WORKER_KEYS))
        raise ValueError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} (allowed: {allowed})")
    if "start" not in data:
        raise ValueError(f"{where}: missing key 'start' (\"module:Class\"), or 'children' for a nested supervisor")
    try:
        cls = resolve_class(data["start"])
    except ValueError as exc:
        raise ValueError(f"{where}.start: {exc}") from None
    args = data.get("args", [])
    if not isinstance(args, list):
        raise ValueError(f"{where}.args: expected an array, got {args!r}")
    kwargs = data.get("kwargs", {})
    if not isinstance(kwargs, dict):
        raise ValueError(f"{where}.kwargs: expected a table, got {kwargs!r}")
    for key in kwargs:
        if key in ("name", "restart", "shutdown"):
            raise ValueError(f"{where}.kwargs.{key}: {key!r} is a child option; put it beside 'start'")
    extra = {}
    if "shutdown" in data:
        extra["shutdown"] = _shutdown(data["shutdown"], where)
    return child(cls, *args, name=_name(data, where), restart=_restart(data, where), **extra, **kwargs)


def _name(data: dict[str, Any], where: str) -> str | None:
    name = data.get("name")
    if name is not None and (not isinstance(name, str) or not name):
        raise ValueError(f"{where}.name: expected a non-empty string, got {name!r}")
    return name


def _restart(data: dict[str, Any], where: str) -> str:
    restart = data.get("restart", "permanent")
    if restart not in ("permanent", "transient", "temporary"):
        raise ValueError(f"{where}.restart: expected permanent, transient or temporary, got {restart!r}")
    return str(restart)


def _check_flags(flags: dict[str, Any], where: str) -> None:
    strategy = flags.get("strategy", "one_for_one")
    if strategy not in ("one_for_one", "one_for_all", "rest_for_one"):
        raise ValueError(f"{where}.strategy: expected one_for_one, one_for_all or rest_for_one, got {strategy!r}")
    mr = flags.get("max_restarts", 3)
    if isinstance(mr, bool) or not isinstance(mr, int) or mr < 0:
        raise ValueError(f"{where}.max_restarts: expected an integer >= 0, got {mr!r}")
    ms = flags.get("max_seconds", 5.0)
    if isinstance(ms, bool) or not isinstance(ms, int | float) or ms <= 0:
        raise ValueError(f"{where}.max_seconds: expected a number > 0, got {ms!r}")


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


async def start_tree(node: Any, path: str | Path) -> Any:
    """Load ``path`` and start its top supervisor on ``node``; returns its pid."""
    spec = load_tree(path)
    return await node.start(spec.start, *spec.args, name=spec.name, **spec.kwargs)
