"""The ``beamrl`` command line: one module per command.

beamrl bench [local|remote|env|replay|train|codec|learn|dashboard|all] [--quick]   ``bench``
beamrl keys generate DIR --name NODE                           ``keys``
beamrl node start [NODE.toml] [--name N --listen ADDR --join ADDR --tree TREE.toml --keys DIR --insecure]  ``node``
beamrl shell ADDR [--keys DIR]                                 ``shell``
beamrl ps ADDR [--keys DIR]                                    ``ps``
beamrl train ALGO ENV_ID [--episodes N | --steps N] [--seed S] [--out DIR] [--nodes K]  ``train``
              [--dashboard [PORT]] [--tensorboard DIR]
beamrl dashboard ADDR [--port 8080] [--host H] [--allow-control] [--keys DIR]  ``dashboard``
beamrl eval RUN_DIR [--episodes N] [--render] [--seed S]        ``eval``

Each command module has ``add_parser(subparsers)``, which registers the command and
sets ``handler`` (``args -> exit code``). A new command is a new module listed in
``COMMANDS``.
"""

from __future__ import annotations

import argparse
import sys

from beamrl.cli import bench, dashboard, eval, keys, node, ps, shell, train
from beamrl.errors import BeamError

COMMANDS = (bench, keys, node, shell, ps, train, eval, dashboard)


def build_parser() -> argparse.ArgumentParser:
    """The full ``beamrl`` parser."""
    parser = argparse.ArgumentParser(prog="beamrl", description="Erlang/OTP's process model for reinforcement learning")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``beamrl`` console script."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except KeyboardInterrupt:
        return 130
    except (ValueError, OSError, BeamError) as exc:
        print(f"beamrl {args.command}: {exc}", file=sys.stderr)
        return 2
    return code
