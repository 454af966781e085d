"""What ``beamrl shell`` and ``beamrl ps`` share: the options naming a node, and connecting to it."""

from __future__ import annotations

import argparse

from beamrl.session import Session, connect


def add_session_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("address", help="tcp://HOST:PORT of the node")
    p.add_argument("--keys", help="CURVE key directory (holding this client's key pair)")
    p.add_argument("--name", help="this client's node name (picks its key pair in --keys)")
    p.add_argument(
        "--cookie-file",
        dest="cookie_file",
        help="the cookie of a plaintext node (default: ~/.config/beamrl/cookie, as `beamrl node start`)",
    )
    p.add_argument("--timeout", type=float, default=5.0)


def open_session(args: argparse.Namespace) -> Session:
    """A blocking session with the node the options name."""
    return connect(args.address, keys=args.keys, name=args.name, timeout=args.timeout, cookie_file=args.cookie_file)
