"""``beamrl bench [SUITE] [--quick]``: measure beamrl against floors taken in the same run."""

from __future__ import annotations

import argparse

from beamrl.bench.report import format_rows
from beamrl.bench.suites import OPT_IN, SUITES


def run(args: argparse.Namespace) -> int:
    suites = list(SUITES) if args.suite == "all" else [args.suite]
    for suite in suites:
        print(f"== beamrl bench {suite}{' (quick)' if args.quick else ''}", flush=True)
        print(format_rows({**SUITES, **OPT_IN}[suite](args.quick)), flush=True)
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="measure beamrl against floors taken in the same run")
    p.add_argument("suite", nargs="?", default="all", choices=[*SUITES, *OPT_IN, "all"])
    p.add_argument("--quick", action="store_true", help="fewer iterations (a smoke run, noisier)")
    p.set_defaults(handler=run)
