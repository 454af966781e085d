"""``beamrl train a3c ENV_ID --nodes K [--attach ADDR ...] [--local-worker]``: the CLI half of ``beamrl.rl.a3c.run``.

``--nodes K`` is the number of worker nodes started on loopback (the learner node is this
process); with ``--attach`` alone, only the attached nodes work; ``--local-worker`` adds a
worker on the learner node.
"""

from __future__ import annotations

import argparse
import json

from beamrl.node import run
from beamrl.node_config import load_node_file
from beamrl.rl.a3c.run import parse_kill_at, train_a3c
from beamrl.rl.deep.config import parse_sets

__all__ = ["DEFAULT_STEPS", "cli_main"]

DEFAULT_STEPS = 300_000


def cli_main(args: argparse.Namespace) -> int:
    """Run it, print the summary's headline figures and where the files went."""
    if args.episodes is not None:
        raise ValueError("a3c counts its budget in env steps: use --steps N, not --episodes")
    if args.resume is not None:
        raise ValueError("a3c runs do not resume: start a new run with another --out")
    out = args.out or f"runs/a3c-{args.env_id}-seed{args.seed}"
    listen, keys, name = args.listen, args.keys, "learner"
    if args.node is not None:
        config = load_node_file(args.node)
        listen, keys, name = listen or config.listen, keys or config.keys, config.name or name
    nodes = 0 if args.attach and args.nodes == 1 else args.nodes  # --attach alone: only the attached nodes
    summary = run(
        train_a3c(
            args.env_id,
            args.steps or DEFAULT_STEPS,
            nodes=nodes,
            attach=args.attach,
            local_worker=args.local_worker,
            seed=args.seed,
            out=out,
            overrides=parse_sets(args.hyper),
            kill_at=parse_kill_at(args.kill_at),
            stop_at=args.stop_at_return,
            listen=listen,
            keys=keys,
            name=name,
        )
    )
    shown = ("env_steps", "wall_seconds", "env_steps_per_s", "pushes_applied", "pushes_stale", "time_to_target")
    print(json.dumps({k: summary[k] for k in shown} | {"eval_mean_return": summary["eval_mean_return"]}))
    mean = summary["eval_mean_return"]
    print(f"evaluated {summary['eval_episodes']} greedy episodes on {summary['judge']}: mean return {mean:.1f}")
    if summary["events"]:
        print(f"events: {json.dumps(summary['events'])}")
    print(f"wrote {out}/metrics.csv, {out}/summary.json, {out}/model.safetensors and the plot {summary.get('curve')}")
    return 0
