"""``beamrl train apex-dqn ENV_ID --nodes K [--attach ADDR ...]``: the CLI half of ``beamrl.rl.apex.run``.

``--nodes K`` is the number of actor nodes started on loopback (the learner node is this
process); with ``--attach`` alone, only the attached nodes act. ``--attach-learner ADDR``
(with ``--set learners=G``) hosts learner replicas on nodes started elsewhere.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from beamrl.node import run
from beamrl.node_config import load_node_file
from beamrl.rl.apex.run import parse_kill_at, train_apex
from beamrl.rl.deep.config import parse_sets
from beamrl.rl.deep.files import print_result
from beamrl.rl.deep.metrics import Observer

__all__ = ["DEFAULT_STEPS", "cli_main"]

DEFAULT_STEPS = 100_000


def over_nodes(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """What a run over actor nodes (apex-dqn, a3c) takes from the options: its out directory, and
    the keywords ``nodes``, ``attach``, ``seed``, ``listen``, ``keys``, ``name``; refuses what it can't do."""
    if args.episodes is not None:
        raise ValueError(f"{args.algo} counts its budget in env steps: use --steps N, not --episodes")
    if args.resume is not None:
        raise ValueError(f"{args.algo} runs do not resume: start a new run with another --out")
    out = args.out or f"runs/{args.algo}-{args.env_id}-seed{args.seed}"
    listen, keys, name = args.listen, args.keys, "learner"
    if args.node is not None:
        config = load_node_file(args.node)
        listen, keys, name = listen or config.listen, keys or config.keys, config.name or name
    nodes = 0 if args.attach and args.nodes == 1 else args.nodes  # --attach alone: only the attached nodes
    return out, {"nodes": nodes, "attach": args.attach, "seed": args.seed, "listen": listen, "keys": keys, "name": name}


def cli_main(args: argparse.Namespace, observers: Sequence[Observer] = ()) -> int:
    """Run it, print the summary's headline figures and where the files went (``observers``: ``--dashboard``)."""
    out, where = over_nodes(args)
    summary = run(
        train_apex(
            args.env_id,
            args.steps or DEFAULT_STEPS,
            out=out,
            overrides=parse_sets(args.hyper),
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
