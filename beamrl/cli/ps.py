"""``beamrl ps ADDR``: the live supervision tree of a node (names, pids, restarts, mailboxes)."""

from __future__ import annotations

import argparse

from beamrl.cli.options import HelpFormatter
from beamrl.cli.session_args import add_session_args, open_session
from beamrl.node_server import format_tree


def ps(args: argparse.Namespace) -> int:
    session = open_session(args)
    try:
        print(f"node {session.peer!r} at {args.address}")
        print(format_tree(session.tree()))
    finally:
        session.close()
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ps", help="the live supervision tree of a node", formatter_class=HelpFormatter)
    add_session_args(p)
    p.set_defaults(handler=ps)
