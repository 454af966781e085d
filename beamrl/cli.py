"""The ``beamrl`` command line.

beamrl bench [local|remote|env|replay|all] [--quick]
beamrl keys generate DIR --name NODE
beamrl node start [NODE.toml] [--name N --listen ADDR --join ADDR --tree TREE.toml --keys DIR --insecure]
beamrl shell ADDR [--keys DIR]
beamrl ps ADDR [--keys DIR]
beamrl train ALGO ENV_ID [--episodes N | --steps N] [--seed S] [--out DIR] [--nodes K]
"""

from __future__ import annotations

import argparse
import code
import sys
from collections.abc import Callable
from typing import Any

from beamrl.errors import BeamError

_COMMANDS: dict[str, Callable[[argparse._SubParsersAction], None]] = {}


def command(name: str) -> Callable[[Callable[[argparse._SubParsersAction], None]], Any]:
    """Register a function that adds sub-command ``name`` to the parser."""

    def register(fn: Callable[[argparse._SubParsersAction], None]) -> Any:
        _COMMANDS[name] = fn
        return fn

    return register


def format_rows(rows: list[dict[str, Any]]) -> str:
    """A benchmark table: name, value, unit, target, note."""
    lines = []
    for row in rows:
        value = row["value"]
        text = f"{value:,.0f}" if isinstance(value, float) and value >= 100 else f"{value:,.3g}"
        target = f"  target {row['target']}" if row.get("target") else ""
        note = f"  ({row['note']})" if row.get("note") else ""
        ratio = row.get("ratio_vs_floor")
        ratio_text = f"  {ratio:.2f}x floor" if isinstance(ratio, float) else ""
        lines.append(f"  {row['name']:<52} {text:>14} {row['unit']:<16}{ratio_text}{target}{note}")
    return "\n".join(lines)


def _bench(args: argparse.Namespace) -> int:
    suites = ["local", "remote", "env", "replay", "train"] if args.suite == "all" else [args.suite]
    for suite in suites:
        print(f"== beamrl bench {suite}{' (quick)' if args.quick else ''}", flush=True)
        rows = _BENCHES[suite](args.quick)
        print(format_rows(rows), flush=True)
    return 0


def _bench_local(quick: bool) -> list[dict[str, Any]]:
    from beamrl.bench import local

    return local.run(quick=quick)


def _bench_env(quick: bool) -> list[dict[str, Any]]:
    from beamrl.bench import env_bench, env_server_bench

    rows: list[dict[str, Any]] = env_bench.run()
    return rows + env_server_bench.run(quick=quick)


def _bench_replay(quick: bool) -> list[dict[str, Any]]:
    from beamrl.bench import replay_bench, replay_server_bench

    rows: list[dict[str, Any]] = replay_bench.run(capacity=100_000 if quick else 1_000_000)
    return rows + replay_server_bench.run(quick=quick)


def _bench_remote(quick: bool) -> list[dict[str, Any]]:
    from beamrl.bench import remote

    return remote.run(quick=quick)


def _bench_learn(quick: bool) -> list[dict[str, Any]]:
    from beamrl.bench import learn_bench

    return learn_bench.run(quick=quick)


def _bench_train(quick: bool) -> list[dict[str, Any]]:
    from beamrl.bench import train_bench

    return train_bench.run(quick=quick)


_BENCHES: dict[str, Callable[[bool], list[dict[str, Any]]]] = {
    "train": _bench_train,
    "learn": _bench_learn,
    "local": _bench_local,
    "remote": _bench_remote,
    "env": _bench_env,
    "replay": _bench_replay,
}


@command("bench")
def _add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="measure beamrl against floors taken in the same run")
    p.add_argument(
        "suite", nargs="?", default="all", choices=["local", "remote", "env", "replay", "train", "learn", "all"]
    )
    p.add_argument("--quick", action="store_true", help="fewer iterations (a smoke run, noisier)")
    p.set_defaults(handler=_bench)


def _keys_generate(args: argparse.Namespace) -> int:
    from beamrl.transport.keys import generate_keys

    public, secret = generate_keys(args.dir, args.name, overwrite=args.force)
    print(f"wrote {public} (public: copy it to every node that should trust {args.name!r})")
    print(f"wrote {secret} (secret: keep it on this machine only)")
    return 0


@command("keys")
def _add_keys(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("keys", help="CURVE key pairs for secure nodes")
    ksub = p.add_subparsers(dest="keys_command", required=True)
    g = ksub.add_parser("generate", help="create DIR/NODE.key (public) and DIR/NODE.key_secret")
    g.add_argument("dir")
    g.add_argument("--name", required=True, help="the node name the keys belong to")
    g.add_argument("--force", action="store_true", help="overwrite an existing key pair")
    g.set_defaults(handler=_keys_generate)


def _node_start(args: argparse.Namespace) -> int:
    import os

    from beamrl.node_config import NodeConfig, load_node_file

    config = load_node_file(args.config) if args.config else NodeConfig()
    for key in ("name", "listen", "keys", "tree"):
        value = getattr(args, key)
        if value is not None:
            setattr(config, key, value)
    if args.join:
        config.join = list(args.join)
    if args.insecure:
        config.insecure = True
    if args.heartbeat_timeout is not None:
        config.heartbeat_timeout = args.heartbeat_timeout
    sys.path.insert(0, os.getcwd())  # trees name classes of the project they run in
    if config.tree is not None:
        from beamrl.tree import load_tree

        load_tree(config.tree)  # refuse a bad tree before anything starts
    from beamrl.node import run
    from beamrl.node_runner import serve

    return int(run(serve(config)))


@command("node")
def _add_node(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("node", help="run a node")
    nsub = p.add_subparsers(dest="node_command", required=True)
    s = nsub.add_parser("start", help="start a node (and its tree); Ctrl-C or SIGTERM stops it cleanly")
    s.add_argument("config", nargs="?", help="a node role file (nodes/*.toml)")
    s.add_argument("--name")
    s.add_argument("--listen", help="tcp://HOST:PORT (default tcp://127.0.0.1:0: a free loopback port)")
    s.add_argument("--join", action="append", help="address of a node to connect to (repeatable)")
    s.add_argument("--tree", help="supervision tree file to start (supervisors/*.toml)")
    s.add_argument("--keys", help="CURVE key directory")
    s.add_argument("--insecure", action="store_true", help="allow a non-loopback listen without keys")
    s.add_argument("--heartbeat-timeout", type=float, dest="heartbeat_timeout")
    s.set_defaults(handler=_node_start)


def _connect(args: argparse.Namespace) -> Any:
    from beamrl.session import connect

    return connect(args.address, keys=args.keys, name=args.name, timeout=args.timeout)


def _shell(args: argparse.Namespace) -> int:
    import beamrl

    session = _connect(args)
    namespace: dict[str, Any] = {"s": session, "session": session, "beamrl": beamrl}
    names = session.registered()
    bound = []
    for name in names:
        if name.isidentifier() and name not in namespace:
            namespace[name] = session.proxy(name)
            bound.append(name)
    try:
        import numpy

        namespace["np"] = numpy
    except ImportError:  # numpy is a dependency; kept optional for a bare REPL
        pass
    banner = (
        f"beamrl shell connected to node {session.peer!r} at {args.address}\n"
        f"  s          the session: s.call(name, request), s.proxy(name), s.registered(), s.tree()\n"
        f"  proxies    {', '.join(bound) if bound else '(no registered processes)'}"
        f"  — e.g. {bound[0] + '.' if bound else 's.proxy(name).'}method(args)\n"
    )
    try:
        _Console(namespace).interact(banner=banner, exitmsg="")
    finally:
        session.close()
    return 0


class _Console(code.InteractiveConsole):
    """The shell's console: beamrl errors print as one line, not as the session's internals."""

    def showtraceback(self) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, BeamError):
            self.write(f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}\n")
        else:
            super().showtraceback()


def _ps(args: argparse.Namespace) -> int:
    from beamrl.node_server import format_tree

    session = _connect(args)
    try:
        print(f"node {session.peer!r} at {args.address}")
        print(format_tree(session.tree()))
    finally:
        session.close()
    return 0


def _add_session_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("address", help="tcp://HOST:PORT of the node")
    p.add_argument("--keys", help="CURVE key directory (holding this client's key pair)")
    p.add_argument("--name", help="this client's node name (picks its key pair in --keys)")
    p.add_argument("--timeout", type=float, default=5.0)


@command("shell")
def _add_shell(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("shell", help="a Python REPL with a session on a live node")
    _add_session_args(p)
    p.set_defaults(handler=_shell)


@command("ps")
def _add_ps(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ps", help="the live supervision tree of a node")
    _add_session_args(p)
    p.set_defaults(handler=_ps)


DEFAULT_EPISODES = {
    "FrozenLake8x8": 20_000,
    "FrozenLake": 5_000,
    "Taxi": 20_000,
    "CliffWalking": 1_000,
    "Blackjack": 300_000,
}


def _parse_value(text: str) -> Any:
    import json

    try:
        return json.loads(text)
    except ValueError:
        return text


def _pairs(items: list[str] | None, what: str) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f'{what} expects KEY=VALUE (JSON values: 0.1, true, "8x8", {{...}}), got {item!r}')
        result[key] = _parse_value(value)
    return result


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def _chaos(args: argparse.Namespace) -> list[dict[str, Any]]:
    chaos: list[dict[str, Any]] = []
    if args.crash_at is not None:
        chaos.append({"at": args.crash_at, "fault": args.crash_worker})
    for item in args.kill_at or []:
        at, sep, name = item.partition(":")
        if not sep or not at.isdigit() or not name:
            raise ValueError(f"--kill-at expects EPISODE:NAME (e.g. 1000:qserver), got {item!r}")
        chaos.append({"at": int(at), "kill": name})
    return chaos


def _train(args: argparse.Namespace) -> int:
    import json

    from beamrl.rl.deep import ALGOS as DEEP_ALGOS

    if args.algo in DEEP_ALGOS:
        from beamrl.rl.deep.run import cli_main

        return cli_main(args)
    from beamrl.node import run
    from beamrl.rl.train import train
    from beamrl.rl.trainer import ALGOS, PLANNING_ALGOS, RunSpec

    if args.algo not in ALGOS:
        raise ValueError(f"unknown algorithm {args.algo!r}: choose one of {', '.join(ALGOS)}")
    episodes, steps = args.episodes, args.steps
    if episodes is None and steps is None and args.algo not in PLANNING_ALGOS:
        episodes = next((n for prefix, n in DEFAULT_EPISODES.items() if args.env_id.startswith(prefix)), 2_000)
    listen, keys, name = None, args.keys, "learner"
    if args.node is not None:
        from beamrl.node_config import load_node_file

        config = load_node_file(args.node)
        listen, keys, name = config.listen, keys or config.keys, config.name or name
    spec = RunSpec(
        algo=args.algo,
        env_id=args.env_id,
        env_kwargs=_pairs(args.env_kwarg, "--env"),
        episodes=episodes,
        steps=steps,
        seed=args.seed,
        eval_every=args.eval_every,
        eval_episodes=args.eval_episodes,
        hyper=_pairs(args.hyper, "--set"),
        stop_at_success=args.stop_at_success,
        chaos=_chaos(args),
    )
    out = args.out or f"runs/{args.algo}-{args.env_id}-seed{args.seed}"
    summary = run(
        train(
            spec,
            out,
            nodes=args.nodes,
            attach=args.attach,
            progress=not args.quiet,
            listen=args.listen or listen,
            keys=keys,
            name=name,
            final_episodes=args.final_eval_episodes,
        )
    )
    shown = {k: summary[k] for k in ("episodes", "steps", "wall_seconds", "eval_mean_return", "eval_success_rate")}
    print(json.dumps(shown, indent=None, default=str))
    success = summary.get("eval_success_rate")
    verdict = f"greedy success {success:.3f}, " if success is not None else ""
    print(
        f"evaluated over {summary['eval_episodes']} episodes on {summary['judge']}: {verdict}"
        f"mean return {summary['eval_mean_return']:.3f}"
    )
    print(f"wrote {out}/metrics.csv, {out}/summary.json, {out}/qtable.npz and the plot {summary.get('curve')}")
    return 0


@command("train")
def _add_train(sub: argparse._SubParsersAction) -> None:
    from beamrl.rl.trainer import ALGOS

    p = sub.add_parser("train", help="train an agent as a supervised tree of processes")
    p.add_argument("algo", help=", ".join([*ALGOS, "dqn", "reinforce", "a2c", "ppo", "ddpg", "td3"]))
    p.add_argument("env_id")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--episodes", type=_positive)
    budget.add_argument("--steps", type=_positive)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="output directory (default runs/ALGO-ENV-seedS)")
    p.add_argument("--nodes", type=_positive, default=1, help="nodes to train on; K-1 start as local OS processes")
    p.add_argument("--attach", action="append", default=[], help="address of an already running actor node")
    p.add_argument("--node", help="a node role file for the learner (name, listen, keys)")
    p.add_argument("--listen", help="learner listen address (default: loopback when distributed)")
    p.add_argument("--keys", help="CURVE key directory for the learner")
    p.add_argument("--env", dest="env_kwarg", action="append", help="env keyword, e.g. --env is_slippery=false")
    p.add_argument("--set", dest="hyper", action="append", help="hyper-parameter, e.g. --set gamma=0.95")
    p.add_argument("--eval-every", type=_positive, default=100)
    p.add_argument("--eval-episodes", type=_positive, default=200)
    p.add_argument("--final-eval-episodes", type=_positive, help="episodes of the final judged evaluation")
    p.add_argument("--stop-at-success", type=float, help="stop once a periodic evaluation reaches this success rate")
    p.add_argument("--crash-at", type=_positive, help="inject a fault into a worker at this episode (demo)")
    p.add_argument("--crash-worker", type=int, default=0)
    p.add_argument("--kill-at", action="append", help="EPISODE:NAME kills a learner process (e.g. 1000:qserver)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a deep run from its checkpoints")
    p.set_defaults(handler=_train)


@command("eval")
def _add_eval(sub: argparse._SubParsersAction) -> None:
    from beamrl.rl.deep.evaluate import add_parser

    add_parser(sub)


def build_parser() -> argparse.ArgumentParser:
    """The full ``beamrl`` parser."""
    parser = argparse.ArgumentParser(prog="beamrl", description="Erlang/OTP's process model for reinforcement learning")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in _COMMANDS.values():
        add(sub)
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


if __name__ == "__main__":
    sys.exit(main())
