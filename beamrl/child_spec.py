"""Child specs as data: ``ChildSpec``, ``child()``, ``ChildInfo`` and specs read from mappings.

A supervisor's children are described by ``ChildSpec`` values (``child(Counter, 0,
name="c1")``); ``spec_from_mapping`` builds one from a TOML table or from a spec that
travelled as data, checking every key; ``resolve_class`` turns ``"module:Class"`` into
a process class. ``ChildInfo`` (a row of ``which_children``) travels over the wire.
"""

from __future__ import annotations

import importlib
from dataclasses import astuple, dataclass, field
from typing import Any

from beamrl import codec
from beamrl.errors import Rejected
from beamrl.pid import Pid
from beamrl.process import Process
from beamrl.trust import ModuleAllowList

STRATEGIES = ("one_for_one", "one_for_all", "rest_for_one")
RESTARTS = ("permanent", "transient", "temporary")
BRUTAL_KILL = "brutal_kill"
_DEFAULT: Any = object()


@dataclass(frozen=True)
class ChildSpec:
    """How a supervisor starts, restarts and stops one child."""

    start: Any
    """The process class, or ``"module:Class"``."""
    args: tuple[Any, ...] = ()
    """Positional arguments for the child's ``init``."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments for the child's ``init``."""
    name: str | None = None
    """Registered name; also the child's id inside the supervisor."""
    restart: str = "permanent"
    """``permanent``, ``transient`` or ``temporary``."""
    shutdown: float | str | None = 5.0
    """Seconds a graceful stop may take before the child is killed; None: no limit;
    ``"brutal_kill"``: killed at once (its ``terminate`` does not run, the reason is ``killed``)."""

    def __post_init__(self) -> None:
        if self.restart not in RESTARTS:
            raise ValueError(f"restart must be one of {', '.join(RESTARTS)}; got {self.restart!r}")
        if not (self.shutdown is None or self.shutdown == BRUTAL_KILL or _is_seconds(self.shutdown)):
            raise ValueError(
                f"shutdown must be a number of seconds >= 0, None or {BRUTAL_KILL!r}; got {self.shutdown!r}"
            )
        if self.name is not None and (not isinstance(self.name, str) or not self.name):
            raise ValueError(f"name must be a non-empty string or None; got {self.name!r}")
        if not (isinstance(self.start, str) or (isinstance(self.start, type) and issubclass(self.start, Process))):
            raise TypeError(f"a child starts a Process subclass or a 'module:Class' string; got {self.start!r}")

    @property
    def is_supervisor(self) -> bool:
        """True when the child is itself a supervisor."""
        return isinstance(self.start, type) and issubclass(self.start, Process) and self.start.is_supervisor

    def label(self) -> str:
        """``module:Class`` of the child."""
        if isinstance(self.start, str):
            return self.start
        return f"{self.start.__module__}:{self.start.__qualname__}"


def child(
    start: Any,
    /,
    *args: Any,
    name: str | None = None,
    restart: str = "permanent",
    shutdown: float | str | None = _DEFAULT,
    **kwargs: Any,
) -> ChildSpec:
    """A child spec: ``child(Counter, 0, name="c1", restart="transient")``.

    ``args``/``kwargs`` go to the child's ``init``. ``shutdown`` defaults to 5 s
    for workers and to no limit for supervisors; ``"brutal_kill"`` kills at once.
    """
    if shutdown is _DEFAULT:
        is_sup = isinstance(start, type) and issubclass(start, Process) and start.is_supervisor
        shutdown = None if is_sup else 5.0
    return ChildSpec(start, tuple(args), dict(kwargs), name, restart, shutdown)


@dataclass(frozen=True)
class ChildInfo:
    """One row of ``which_children``."""

    id: Any
    """The child's id: its name, ``Class#index`` for unnamed static children, its pid for dynamic ones."""
    name: str | None
    """Registered name, if any."""
    pid: Pid | None
    """Current pid; None while the child is not running."""
    restarts: int
    """How many times this child was restarted."""
    restart: str
    """Restart type."""
    kind: str
    """``"worker"`` or ``"supervisor"``."""
    module: str
    """``module:Class`` of the child."""


def _child_info_from_data(data: Any) -> ChildInfo:
    if type(data) is not list or len(data) != 7:
        raise ValueError("a ChildInfo is a list of 7 fields")
    return ChildInfo(*data)


_CHILD_INFO_CODE = 22  # beamrl's layers own extension codes 16..63
codec.register(_CHILD_INFO_CODE, ChildInfo, lambda c: list(astuple(c)), _child_info_from_data)


_WORKER_KEYS = {"start", "name", "args", "kwargs", "restart", "shutdown"}
_SUP_KEYS = {"name", "strategy", "max_restarts", "max_seconds", "max_children", "children", "restart", "shutdown"}


def resolve_class(ref: str, allow: ModuleAllowList | None = None) -> type[Process]:
    """Import ``"package.module:Class"`` and check it is a process class.

    With ``allow``, a module it does not allow is refused (``SpawnRejected``)
    before anything is imported. Whatever importing raises,
    ``SystemExit`` and ``KeyboardInterrupt`` included, becomes a ``ValueError``.
    """
    if not isinstance(ref, str) or ref.count(":") != 1:
        raise ValueError(f"expected 'module:Class', got {ref!r:.120}")
    module_name, _, attr = ref.partition(":")
    if allow is not None:
        allow.check(ref)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import module {module_name!r}: {exc}") from exc
    except BaseException as exc:  # a module that raises (even SystemExit) must not end the node
        raise ValueError(f"importing module {module_name!r} raised {type(exc).__name__}: {exc}") from exc
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
    if value == BRUTAL_KILL:
        return BRUTAL_KILL
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f'{where}: shutdown must be seconds >= 0, "infinity" or "brutal_kill", got {value!r}')
    return float(value)


def spec_from_mapping(
    data: dict[str, Any], where: str, supervisor: type[Process], allow: ModuleAllowList | None = None
) -> ChildSpec:
    """A ``ChildSpec`` from a mapping (a TOML table, or a spec that travelled as data).

    A mapping with ``children`` is a nested supervisor of class ``supervisor``. With
    ``allow``, every ``start`` must name an allowed module (checked before importing).
    """
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a table, got {type(data).__name__}")
    if "children" in data:
        unknown = set(data) - _SUP_KEYS
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} for a nested supervisor")
        children = data["children"]
        if not isinstance(children, list):
            raise ValueError(f"{where}.children: expected an array of tables")
        specs = [spec_from_mapping(c, f"{where}.children[{i}]", supervisor, allow) for i, c in enumerate(children)]
        kwargs: dict[str, Any] = {
            k: data[k] for k in ("strategy", "max_restarts", "max_seconds", "max_children") if k in data
        }
        _check_flags(kwargs, where)
        extra: dict[str, Any] = {}
        if "shutdown" in data:
            extra["shutdown"] = _shutdown(data["shutdown"], where)
        return child(supervisor, specs, name=_name(data, where), restart=_restart(data, where), **extra, **kwargs)
    unknown = set(data) - _WORKER_KEYS
    if unknown:
        allowed = ", ".join(sorted(_WORKER_KEYS))
        raise ValueError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} (allowed: {allowed})")
    if "start" not in data:
        raise ValueError(f"{where}: missing key 'start' (\"module:Class\"), or 'children' for a nested supervisor")
    try:
        cls = resolve_class(data["start"], allow)
    except (ValueError, Rejected) as exc:
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


def _is_seconds(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and value >= 0
