"""What a run over nodes (``beamrl train apex-dqn`` and ``a3c``) takes from the CLI's options (torch-free)."""

from __future__ import annotations

import argparse
from typing import Any

from beamrl.node_config import load_node_file

__all__ = ["over_nodes"]


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
