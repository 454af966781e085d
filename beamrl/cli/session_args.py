"""What ``beamrl shell`` and ``beamrl ps`` share: the options naming a node, and connecting to it."""

from __future__ import annotations

import argparse

from beamrl.cli.options import address
from beamrl.errors import NodeDown
from beamrl.session import Session, connect


def add_session_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("address", type=address, metavar="ADDR", help="tcp://HOST:PORT of the node")
    p.add_argument("--keys", metavar="DIR", help="CURVE key directory (holding this client's key pair)")
    p.add_argument("--name", help="this client's node name (picks its key pair in --keys)")
    p.add_argument(
        "--cookie-file",
        dest="cookie_file",
        metavar="FILE",
        help="the cookie of a plaintext node (default: ~/.config/beamrl/cookie, as `beamrl node start`)",
    )
    p.add_argument(
        "--timeout", type=float, metavar="SECONDS", default=5.0, help="seconds to wait for the node, and for each call"
    )


def open_session(args: argparse.Namespace) -> Session:
    """A blocking session with the node the options name; one sentence when nothing answers."""
    try:
        return connect(args.address, keys=args.keys, name=args.name, timeout=args.timeout, cookie_file=args.cookie_file)
    except NodeDown as exc:
        raise NodeDown(nothing_answered(args.address, args.timeout, str(exc))) from None


def nothing_answered(address: str, timeout: float, message: str) -> str:
    """``message``, or one sentence when it says that no node answered at ``address`` at all."""
    if "no answer from" not in message or "refused" in message or "trust" in message:
        return message
    return (
        f"nothing answered at {address} within {timeout:g} s: is a node listening there"
        " (and, if it uses CURVE keys, did you pass --keys DIR)?"
    )
