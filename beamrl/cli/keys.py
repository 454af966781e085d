"""``beamrl keys generate DIR --name NODE``: a CURVE key pair for a secure node."""

from __future__ import annotations

import argparse

from beamrl.cli.options import HelpFormatter, help_of
from beamrl.transport.keys import generate_keys


def generate(args: argparse.Namespace) -> int:
    public, secret = generate_keys(args.dir, args.name, overwrite=args.force)
    print(f"wrote {public} (public: copy it to every node that should trust {args.name!r})")
    print(f"wrote {secret} (secret: keep it on this machine only)")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("keys", help="CURVE key pairs for secure nodes", formatter_class=HelpFormatter)
    p.set_defaults(handler=help_of(p))
    ksub = p.add_subparsers(dest="keys_command", metavar="SUBCOMMAND")
    g = ksub.add_parser(
        "generate", help="create DIR/NODE.key (public) and DIR/NODE.key_secret", formatter_class=HelpFormatter
    )
    g.add_argument("dir", metavar="DIR", help="the key directory (created if missing)")
    g.add_argument("--name", required=True, help="the node name the keys belong to")
    g.add_argument("--force", action="store_true", help="overwrite an existing key pair")
    g.set_defaults(handler=generate)
