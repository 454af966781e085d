"""``beamrl dashboard ADDR [--port 8080]``, and ``beamrl train``'s ``--dashboard [PORT]`` and ``--tensorboard DIR``.

The page needs the ``dashboard`` extra (aiohttp) and TensorBoard files the
``tensorboard`` extra; without them these options fail at once, saying what to
install, before anything starts.
"""

from __future__ import annotations

import argparse
from types import ModuleType
from typing import Any

from beamrl.cli.session_args import add_session_args
from beamrl.node import run


def _dashboard_run() -> ModuleType:
    try:
        from beamrl.dashboard import run as dashboard_run  # deferred: the optional dashboard extra
    except ImportError as exc:
        raise ValueError(f"the dashboard needs aiohttp ({exc}): pip install 'beamrl[dashboard]'") from exc
    return dashboard_run


def add_dashboard_args(p: argparse.ArgumentParser, train: bool) -> None:
    """The page's options; ``train`` adds ``--dashboard [PORT]`` and ``--tensorboard DIR``, else ``--port``."""
    if train:
        p.add_argument("--dashboard", type=int, nargs="?", const=8080, metavar="PORT", help="serve the live page")
        p.add_argument("--tensorboard", metavar="DIR", help="also write the learning scalars as TensorBoard files")
    else:
        p.add_argument("--port", type=int, default=8080, help="HTTP port (0: a free one)")
    p.add_argument("--host", dest="dashboard_host", default="127.0.0.1", help="bind address (beyond loopback: token)")
    p.add_argument("--token", help="the token requests must carry (default: generated when not on loopback)")
    p.add_argument("--allow-control", action="store_true", help="let the page stop and kill processes")


def observers(args: argparse.Namespace) -> list[Any]:
    """What ``train(observers=...)`` gets from ``--tensorboard`` and ``--dashboard``."""
    found = []
    if args.tensorboard is not None:
        found.append(_dashboard_run().tensorboard_observer(args.tensorboard))
    if args.dashboard is not None:
        observe = _dashboard_run().dashboard_observer
        found.append(observe(args.dashboard, args.dashboard_host, args.token, args.allow_control))
    return found


def dashboard(args: argparse.Namespace) -> int:
    serve = _dashboard_run().serve_cluster(
        args.address,
        keys=args.keys,
        name=args.name,
        timeout=args.timeout,
        host=args.dashboard_host,
        port=args.port,
        token=args.token,
        allow_control=args.allow_control,
        heartbeat_timeout=args.heartbeat_timeout,
    )
    return int(run(serve))


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dashboard", help="a live web page of a cluster, its trees, events and learning")
    add_session_args(p)
    add_dashboard_args(p, train=False)
    p.add_argument(
        "--heartbeat-timeout", type=float, default=3.0, help="seconds of silence before a node is shown down"
    )
    p.set_defaults(handler=dashboard)
