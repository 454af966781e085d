"""``beamrl train a3c ENV_ID --nodes K [--attach ADDR ...] [--local-worker]``: the CLI half of ``beamrl.rl.a3c.run``.

``--nodes K`` is the number of worker nodes started on loopback (the learner node is this
process); with ``--attach`` alone, only the attached nodes work; ``--local-worker`` adds a
worker on the learner node.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from beamrl.cli.over_nodes import over_nodes
from beamrl.node import run
from beamrl.rl.a3c.run import parse_kill_at, train_a3c
from beamrl.rl.deep.config import parse_sets
from beamrl.rl.deep.files import print_result
from beamrl.rl.deep.metrics import Observer

__all__ = ["DEFAULT_STEPS", "cli_main"]

DEFAULT_STEPS = 300_000


def cli_main(args: argparse.Namespace, observers: Sequence[Observer] = ()) -> int:
    """Run it, print the summary's headline figures and where the files went (``observers``: ``--dashboard``)."""
    out, where = over_nodes(args)
    summary = run(
        train_a3c(
            args.env_id,
            args.steps or DEFAULT_STEPS,
            local_worker=args.local_worker,
            out=out,
            overrides=parse_sets(args.hyper),
            kill_at=parse_kill_at(args.kill_at),
            stop_at=args.stop_at_return,
            observers=observers,
            **where,
        )
    )
    shown = ("env_steps", "wall_seconds", "env_steps_per_s", "pushes_applied", "pushes_stale", "time_to_target")
    print_result(summary, out, (*shown, "eval_mean_return"))
    return 0
