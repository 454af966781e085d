"""``beamrl shell ADDR``: a Python REPL with a session on a live node and a proxy per name."""

from __future__ import annotations

import argparse
import code
import sys
from typing import Any

import numpy

import beamrl
from beamrl.cli.options import HelpFormatter
from beamrl.cli.session_args import add_session_args, open_session
from beamrl.errors import BeamError


class Console(code.InteractiveConsole):
    """The shell's console: beamrl errors print as one line, not as the session's internals."""

    def showtraceback(self) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, BeamError):
            self.write(f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}\n")
        else:
            super().showtraceback()


def shell(args: argparse.Namespace) -> int:
    session = open_session(args)
    namespace: dict[str, Any] = {"s": session, "session": session, "beamrl": beamrl, "np": numpy}
    bound = []
    for name in session.registered():
        if name.isidentifier() and name not in namespace:
            namespace[name] = session.proxy(name)
            bound.append(name)
    banner = (
        f"beamrl shell connected to node {session.peer!r} at {args.address}\n"
        f"  s          the session: s.call(name, request), s.proxy(name), s.registered(), s.tree()\n"
        f"  proxies    {', '.join(bound) if bound else '(no registered processes)'}"
        f"  — e.g. {bound[0] + '.' if bound else 's.proxy(name).'}method(args)\n"
    )
    try:
        Console(namespace).interact(banner=banner, exitmsg="")
    finally:
        session.close()
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("shell", help="a Python REPL with a session on a live node", formatter_class=HelpFormatter)
    add_session_args(p)
    p.set_defaults(handler=shell)
