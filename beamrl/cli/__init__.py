"""The ``beamrl`` command line: one module per command.

beamrl bench [local|remote|env|replay|train|codec|learn|dashboard|all] [--quick]   ``bench``
beamrl keys generate DIR --name NODE                           ``keys``
beamrl node start [ROLE.toml] [--name N --listen ADDR --join ADDR --tree TREE --keys DIR ...]  ``node``
beamrl shell ADDR [--keys DIR]                                 ``shell``
beamrl ps ADDR [--keys DIR]                                    ``ps``
beamrl train ALGO ENV_ID [--episodes N | --steps N] [--seed S] [--out DIR] [--nodes K]  ``train``
              [--dashboard [PORT]] [--tensorboard DIR] [--env-server local|NAME@ADDR ...]
beamrl dashboard ADDR [--port 8080] [--host H] [--allow-control] [--keys DIR]  ``dashboard``
beamrl eval RUN_DIR [--episodes N] [--render] [--seed S]        ``eval``
beamrl serve RUN_DIR [--listen ADDR] [--name NAME] [--keys DIR] [--watch S]  ``serve``

Each command module has ``add_parser(subparsers)``, which registers the command and
sets ``handler`` (``args -> exit code``). A new command is a new module listed in
``COMMANDS``; ``options`` holds what they share (value types whose errors name the
option, the help formatter that shows defaults). A command given without its
subcommand prints its help. Errors a user can fix (``ValueError``, ``OSError``,
``BeamError``) print as one line, in the CLI's words (``--keys DIR``), with exit code 2;
Ctrl-C exits with 130.
"""

from __future__ import annotations

import argparse
import sys

from beamrl.cli import bench, dashboard, eval, keys, node, ps, serve, shell, train
from beamrl.cli.options import HelpFormatter, cli_wording, help_of
from beamrl.errors import BeamError

COMMANDS = (bench, keys, node, shell, ps, train, eval, serve, dashboard)


def build_parser() -> argparse.ArgumentParser:
    """The full ``beamrl`` parser."""
    parser = argparse.ArgumentParser(
        prog="beamrl",
        description="Erlang/OTP's process model for reinforcement learning",
        formatter_class=HelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    parser.set_defaults(handler=help_of(parser))
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``beamrl`` console script."""
    args = build_parser().parse_args(argv)
    command = f"beamrl {args.command}" if args.command else "beamrl"
    try:
        code: int = args.handler(args)
    except KeyboardInterrupt:
        return 130
    except (ValueError, OSError, BeamError) as exc:
        print(f"{command}: {cli_wording(str(exc))}", file=sys.stderr)
        return 2
    return code
