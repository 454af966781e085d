"""``beamrl node start [NODE.toml] [...]``: run a node (and its tree) until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import os
import sys

from beamrl.node import run
from beamrl.node_config import NodeConfig, load_node_file
from beamrl.node_runner import serve
from beamrl.tree import load_tree


def start(args: argparse.Namespace) -> int:
    config = load_node_file(args.config) if args.config else NodeConfig()
    for key in ("name", "listen", "keys", "tree", "cookie_file", "data_dir"):
        value = getattr(args, key)
        if value is not None:
            setattr(config, key, value)
    if args.join:
        config.join = list(args.join)
    if args.allow_module:
        config.allow_modules = [*config.allow_modules, *args.allow_module]
    if args.insecure:
        config.insecure = True
    if args.heartbeat_timeout is not None:
        config.heartbeat_timeout = args.heartbeat_timeout
    sys.path.insert(0, os.getcwd())  # trees name classes of the project they run in
    if config.tree is not None:
        load_tree(config.tree)  # refuse a bad tree before anything starts
    return int(run(serve(config)))


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("node", help="run a node")
    nsub = p.add_subparsers(dest="node_command", required=True)
    s = nsub.add_parser("start", help="start a node (and its tree); Ctrl-C or SIGTERM stops it cleanly")
    s.add_argument("config", nargs="?", help="a node role file (nodes/*.toml)")
    s.add_argument("--name")
    s.add_argument("--listen", help="tcp://HOST:PORT (default tcp://127.0.0.1:0: a free loopback port)")
    s.add_argument("--join", action="append", help="address of a node to connect to (repeatable)")
    s.add_argument("--tree", help="supervision tree file to start (supervisors/*.toml)")
    s.add_argument("--keys", help="CURVE key directory")
    s.add_argument("--insecure", action="store_true", help="allow a non-loopback listen without keys")
    s.add_argument(
        "--cookie-file",
        dest="cookie_file",
        help="shared secret of plaintext nodes (default: $XDG_CONFIG_HOME/beamrl/cookie, created on first use)",
    )
    s.add_argument("--heartbeat-timeout", type=float, dest="heartbeat_timeout")
    s.add_argument(
        "--allow-module",
        action="append",
        dest="allow_module",
        metavar="MODULE",
        help="a module (and its submodules) whose classes peers may start, beside beamrl's own and the tree's "
        "(repeatable)",
    )
    s.add_argument(
        "--data-dir",
        dest="data_dir",
        help="directory the paths in peers' requests must stay in (default: ~/.local/state/beamrl/nodes/NAME)",
    )
    s.set_defaults(handler=start)
