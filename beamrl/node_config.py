"""Node role files: ``nodes/*.toml`` describe one kind of machine in a layout.

    name = "learner"                      # node name, unique in the cluster
    listen = "tcp://0.0.0.0:7001"         # where peers reach it (loopback unless told otherwise)
    join = ["tcp://10.0.0.5:7001"]        # nodes to connect to at start (retried until they answer)
    keys = "../keys/"                     # CURVE: own key pair + trusted peers' public keys
    insecure = false                      # allow a non-loopback listen without keys
    tree = "../supervisors/learner.toml"  # the supervision tree to start (or a packaged one: "actor_node")
    cookie_file = "/etc/beamrl/cookie"    # plaintext nodes' shared secret (default ~/.config/beamrl/cookie)
    allow_modules = ["myproject.envs"]    # more modules peers may start classes from
    data_dir = "/var/lib/beamrl/learner"  # where paths in peers' requests stay
    heartbeat_interval = 0.5
    heartbeat_timeout = 3.0

Relative paths (``keys``, ``tree``, ``data_dir``, ``cookie_file``) are resolved from the role file's folder, so
``beamrl node start path/to/role.toml`` works from any directory; a ``tree`` that is
no file there names a tree beamrl ships (``"actor_node"``). A bad file is refused
whole, naming file, key and problem.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from beamrl.tree import TreeError, read_toml


@dataclass
class NodeConfig:
    """Everything ``beamrl node start`` needs to bring a node up."""

    name: str | None = None
    """Node name; a unique default when None."""
    listen: str = "tcp://127.0.0.1:0"
    """Listen address; port 0 picks a free port (printed at start)."""
    join: list[str] = field(default_factory=list)
    """Addresses of nodes to connect to at start."""
    keys: str | None = None
    """Key directory for CURVE; None for a plaintext node (loopback only unless insecure)."""
    insecure: bool = False
    """Allow listening on a non-loopback address without keys."""
    tree: str | None = None
    """Supervision tree file to start."""
    cookie_file: str | None = None
    """The cookie (shared secret) of a plaintext node; None: ``~/.config/beamrl/cookie``."""
    heartbeat_interval: float = 0.5
    """Seconds between heartbeats."""
    heartbeat_timeout: float = 3.0
    """Seconds of silence after which a peer is declared down."""
    stop_with_parent: bool = False
    """Stop when the process that started this node is gone (nodes a trainer starts)."""
    allow_modules: list[str] = field(default_factory=list)
    """Modules (and their submodules) peers may start classes from, beside beamrl's own and the tree's."""
    data_dir: str | None = None
    """Where paths named in peers' requests must stay; None: ``beamrl.trust.default_data_dir``."""


_TYPES: dict[str, Any] = {
    "name": str,
    "listen": str,
    "join": list,
    "keys": str,
    "insecure": bool,
    "tree": str,
    "cookie_file": str,
    "heartbeat_interval": (int, float),
    "heartbeat_timeout": (int, float),
    "stop_with_parent": bool,
    "allow_modules": list,
    "data_dir": str,
}


def load_node_file(path: str | Path) -> NodeConfig:
    """Read and check a node role file."""
    path = Path(path)
    config = config_from_mapping(read_toml(path), str(path))
    here = path.resolve().parent
    if config.keys is not None:
        config.keys = str(here / config.keys)
    if config.data_dir is not None:
        config.data_dir = str(here / Path(config.data_dir).expanduser())
    if config.cookie_file is not None:
        config.cookie_file = str(here / Path(config.cookie_file).expanduser())
    if (config.tree is not None and (here / config.tree).is_file()) or _is_a_path(config.tree):
        config.tree = str(here / str(config.tree))  # else a packaged tree's name ("actor_node")
    return config


def config_from_mapping(data: dict[str, Any], where: str) -> NodeConfig:
    """A ``NodeConfig`` from a mapping, with a clear error for each wrong key."""
    for key, value in data.items():
        expected = _TYPES.get(key)
        if expected is None:
            raise TreeError(f"{where}: unknown key {key!r} (allowed: {', '.join(_TYPES)})")
        if (isinstance(value, bool) and expected is not bool) or not isinstance(value, expected):
            raise TreeError(f"{where}: {key}: expected {_type_name(expected)}, got {value!r}")
    join = data.get("join", [])
    if not all(isinstance(a, str) and a.startswith("tcp://") for a in join):
        raise TreeError(f"{where}: join: expected a list of 'tcp://host:port' addresses, got {join!r}")
    allow = data.get("allow_modules", [])
    if not all(isinstance(m, str) and m for m in allow):
        raise TreeError(f"{where}: allow_modules: expected a list of module names, got {allow!r}")
    listen = data.get("listen", "tcp://127.0.0.1:0")
    if not listen.startswith("tcp://"):
        raise TreeError(f"{where}: listen: expected 'tcp://host:port', got {listen!r}")
    if data.get("heartbeat_timeout", 3.0) <= data.get("heartbeat_interval", 0.5):
        raise TreeError(f"{where}: heartbeat_timeout must be longer than heartbeat_interval")
    return NodeConfig(**{k: v for k, v in data.items()})


def _is_a_path(tree: str | None) -> bool:
    """Whether a role file's ``tree`` is a path (it has a folder or ends in .toml) rather than a name."""
    return tree is not None and ("/" in tree or "\\" in tree or tree.endswith(".toml"))


def _type_name(expected: Any) -> str:
    if expected == (int, float):
        return "a number"
    return {str: "a string", list: "a list", bool: "true or false"}[expected]
