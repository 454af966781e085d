"""``beamrl serve RUN_DIR [--listen ADDR] [--name NAME] [--keys DIR] [--cookie-file F]``: a trained
policy as a process on a node, until Ctrl-C or SIGTERM.

The node hosts a ``PolicyServer`` (``beamrl.rl.serving``) registered as NAME (``policy``)
under a supervisor (``serve``); a controller asks it ``["act", obs]`` from any node, a
``beamrl shell`` or ``beamrl.connect``. Numpy only: torch is never imported, so this runs
on a Raspberry Pi. The run directory is read before the node starts: a missing or broken
file is one line naming it, exit code 2. Safe defaults as ``beamrl node start``: loopback
with the cookie unless told otherwise, CURVE with ``--keys``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from beamrl import Down, Pid, child, monitor, receive
from beamrl.cli.options import HelpFormatter, address
from beamrl.node import Node, run
from beamrl.node_runner import until_signalled
from beamrl.rl.serving import PolicyServer, load_run

DESCRIPTION = """\
Serve the greedy policy of a beamrl train run (a deep run's model.safetensors or a tabular
run's qtable.npz) as a process named NAME on a node, until Ctrl-C or SIGTERM. Controllers
call it from any node, beamrl shell (policy.act(obs)) or beamrl.connect. Requests: act,
act_batch, output, output_batch, info, reload. Numpy only: torch is never imported.
A bad observation is refused with a message and the server keeps serving."""


def serve_command(args: argparse.Namespace) -> int:
    if args.watch is not None and not args.watch > 0:
        raise ValueError(f"--watch: expected seconds > 0, got {args.watch}")
    policy = load_run(args.run_dir)  # refuse a missing or broken run before a node starts
    what = f"{policy.algo or policy.family} {policy.env_id} from {policy.file}"
    return int(run(_serve(args, what)))


async def _serve(args: argparse.Namespace, what: str) -> int:
    stop = until_signalled()
    node = Node(
        args.node_name,
        listen=args.listen,
        keys=args.keys,
        insecure=args.insecure,
        cookie_file=args.cookie_file,
    )
    gave_up: list[Any] = []
    async with node:
        spec = child(PolicyServer, args.run_dir, name=args.name, watch=args.watch)
        sup = await node.start_supervisor(
            [spec], strategy="one_for_one", max_restarts=5, max_seconds=10.0, name="serve"
        )
        await node.spawn(_stop_when_down, sup, stop, gave_up)
        print(f"node {node.name!r} listening on {node.address}", flush=True)
        print(f"serving {what} as {args.name!r}: beamrl shell {node.address}, then {args.name}.act(obs)", flush=True)
        await stop.wait()
        print(f"node {node.name!r} stopping", flush=True)
    if gave_up:  # a node without its policy must not look alive to a service manager
        print(f"beamrl serve: the policy server kept crashing, its supervisor gave up: {gave_up[0]}", file=sys.stderr)
        return 1
    print("stopped", flush=True)
    return 0


async def _stop_when_down(sup: Pid, stop: asyncio.Event, gave_up: list[Any]) -> None:
    """Stop the node, noting why, once the supervisor is gone (more crashes than it tolerates)."""
    monitor(sup)
    while True:
        message = await receive()
        if isinstance(message, Down):
            if not stop.is_set():  # not the node's own shutdown after Ctrl-C or SIGTERM
                gave_up.append(message.reason)
                stop.set()
            return


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="serve a trained run's greedy policy as a process (['act', obs] -> action), numpy only",
        formatter_class=HelpFormatter,
        description=DESCRIPTION,
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="the --out directory of a beamrl train run (deep or tabular)")
    p.add_argument(
        "--listen", metavar="ADDR", type=address, default="tcp://127.0.0.1:0", help="where controllers reach the node"
    )
    p.add_argument("--name", default="policy", help="the name the policy server is registered under")
    p.add_argument(
        "--node-name",
        dest="node_name",
        metavar="N",
        help="node name; with --keys, the name of this node's key pair in DIR (default: a unique one)",
    )
    p.add_argument(
        "--keys", metavar="DIR", help="CURVE key directory (this node's key pair and the public keys it trusts)"
    )
    p.add_argument("--insecure", action="store_true", help="allow a non-loopback listen without keys")
    p.add_argument(
        "--cookie-file",
        dest="cookie_file",
        metavar="FILE",
        help="shared secret of plaintext nodes (default: $XDG_CONFIG_HOME/beamrl/cookie, created on first use)",
    )
    p.add_argument(
        "--watch",
        metavar="SECONDS",
        type=float,
        help="look at the policy file this often and serve a newer one when it changes (default: only ['reload'])",
    )
    p.set_defaults(handler=serve_command)
