"""``beamrl train apex-dqn ENV_ID --nodes K [--attach ADDR ...]``: the CLI half of ``beamrl.rl.apex.run``.

``--nodes K`` is the number of actor nodes started on loopback (the learner node is this
process); with ``--attach`` alone, only the attached nodes act. ``--attach-learner ADDR``
(with ``--set learners=G``) hosts learner replicas on nodes started elsewhere.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from beamrl.cli.over_nodes import over_nodes
from beamrl.node import run
from beamrl.rl.apex.config import apex_config
from beamrl.rl.apex.run import parse_kill_at, train_apex
from beamrl.rl.deep.config import parse_sets
from beamrl.rl.deep.device import check_backend, resolve_device  # this node hosts the learner: torch is here
from beamrl.rl.deep.files import print_result
from beamrl.rl.deep.metrics import Observer

__all__ = ["DEFAULT_STEPS", "cli_main"]

DEFAULT_STEPS = 100_000


def cli_main(args: argparse.Namespace, observers: Sequence[Observer] = ()) -> int:
    """Run it, print the summary's headline figures and where the files went (``observers``: ``--dashboard``)."""
    out, where = over_nodes(args)
    overrides = parse_sets(args.hyper)
    cfg = apex_config(args.env_id, overrides)
    resolve_device(cfg.device)  # the learner's GPU (and nccl's) refused here, before any node starts
    if cfg.learners > 1:
        check_backend(cfg.learner_backend)
    summary = run(
        train_apex(
            args.env_id,
            args.steps or DEFAULT_STEPS,
            out=out,
            overrides=overrides,
            kill_at=parse_kill_at(args.kill_at),
            stop_at=args.stop_at_return,
            observers=observers,
            attach_learners=args.attach_learner,
            **where,
        )
    )
    shown = ("env_steps", "wall_seconds", "env_steps_per_s", "learner_updates", "time_to_target", "eval_mean_return")
    print_result(summary, out, shown)
    return 0
