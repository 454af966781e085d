"""``beamrl bench [SUITE] [--quick]``: measure beamrl against floors taken in the same run."""

from __future__ import annotations

import argparse
import sys

from beamrl.bench.report import format_rows
from beamrl.bench.suites import OPT_IN, SUITES, learn_suite
from beamrl.cli.options import HelpFormatter
from beamrl.rl.deep.config import TABLE, Target


def seed_list(text: str) -> list[int]:
    """``0,1,2``: distinct non-negative integers."""
    try:
        seeds = [int(s) for s in text.split(",")]
    except ValueError:
        seeds = []
    if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"expected distinct non-negative integers like 0,1,2, got {text!r}")
    return seeds


def table_row(text: str) -> Target:
    """``ALGO:ENV_ID``, a row of the learning table."""
    algo, _, env_id = text.partition(":")
    for row in TABLE:
        if (row.algo, row.env_id) == (algo, env_id):
            return row
    known = ", ".join(f"{r.algo}:{r.env_id}" for r in TABLE)
    raise argparse.ArgumentTypeError(f"no learning-table row {text!r}; the rows are {known}")


def run(args: argparse.Namespace) -> int:
    if args.suite != "learn" and (args.seeds or args.row):
        print("beamrl bench: error: --seeds and --row are options of the learn suite", file=sys.stderr)
        return 2
    suites = list(SUITES) if args.suite == "all" else [args.suite]
    for suite in suites:
        print(f"== beamrl bench {suite}{' (quick)' if args.quick else ''}", flush=True)
        if suite == "learn":
            rows = learn_suite(args.quick, args.seeds, args.row)
        else:
            rows = {**SUITES, **OPT_IN}[suite](args.quick)
        print(format_rows(rows), flush=True)
    return 0


#: what each suite measures, for ``beamrl bench --help``
MEASURES = {
    "local": "call round trips, casts and supervisor restarts in one process, against an asyncio"
    " Queue+Future echo (the floor) and pykka's ask (a peer)",
    "remote": "remote call and cast between two OS processes over ZeroMQ, against raw pyzmq"
    " ROUTER/DEALER and PUSH/PULL (the floors), a 4 MB array through a call, and the CPU one cast costs",
    "env": "native env steps against gymnasium's, the vector env, and EnvServer steps through local and remote calls",
    "replay": "ReplayMemory add and (prioritized) sample against a numpy gather floor, and ReplayServer"
    " samples over a remote call",
    "train": "Q-learning on FrozenLake-v1 to 0.70 greedy success on 1 and 3 nodes, and training env steps/s",
    "codec": "decode speed of typical messages, and what one hostile message can cost: memory per body byte"
    " and the longest event-loop stall",
    "dashboard": "a training run's env steps/s with a dashboard page open against none, and how fast a crash"
    " reaches the page (needs the dashboard extra)",
    "learn": "deep agents against reference implementations on their envs (takes minutes)",
    "apex": "Ape-X DQN: env steps/s with 1 and 2 actor nodes, learner batches/s, replay inserts/s and"
    " samples/s, and an actor against its loop without messaging (needs torch; a minute or two)",
}


def add_parser(sub: argparse._SubParsersAction) -> None:
    epilog = "suites:\n" + "\n".join(f"  {name:<9} {MEASURES[name]}" for name in SUITES)
    epilog += "\n  all       every suite above, in this order"
    epilog += "".join(f"\n  {name:<9} {MEASURES[name]} (only when named)" for name in OPT_IN)
    p = sub.add_parser(
        "bench",
        help="measure beamrl against floors taken in the same run",
        description="Measure beamrl; each figure is printed beside a floor measured in the same run.",
        epilog=epilog,
        formatter_class=HelpFormatter,
    )
    p.add_argument("suite", nargs="?", default="all", choices=[*SUITES, *OPT_IN, "all"], help="which suite to run")
    p.add_argument("--quick", action="store_true", help="fewer iterations (a smoke run, noisier)")
    p.add_argument(
        "--seeds",
        metavar="S,S,...",
        type=seed_list,
        help="learn: run every row on each seed and compare median returns (default: seed 0)",
    )
    p.add_argument(
        "--row",
        metavar="ALGO:ENV_ID",
        type=table_row,
        action="append",
        help="learn: only this learning-table row (repeatable), e.g. ppo:CartPole-v1",
    )
    p.set_defaults(handler=run)
