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
import sys
from collections.abc import Callable
from typing import Any

Handler = Callable[[argparse.Namespace], int]
_COMMANDS: dict[str, Callable[[argparse._SubParsersAction], None]] = {}  # type: ignore[type-arg]


def command(name: str) -> Callable[[Callable[[argparse._SubParsersAction], None]], Any]:  # type: ignore[type-arg]
    """Register a function that adds sub-command ``name`` to the parser."""

    def register(fn: Callable[[argparse._SubParsersAction], None]) -> Any:  # type: ignore[type-arg]
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
    suites = ["local", "remote", "env", "replay"] if args.suite == "all" else [args.suite]
    for suite in suites:
        print(f"== beamrl bench {suite}{' (quick)' if args.quick else ''}", flush=True)
        rows = _BENCHES[suite](args.quick)
        print(format_rows(rows), flush=True)
    return 0


def _bench_local(quick: bool) -> list[dict[str, Any]]:
    from beamrl.bench import local

    return local.run(quick=quick)


def _bench_env(quick: bool) -> list[dict[str, Any]]:
    from beamrl.bench import env_bench

    rows: list[dict[str, Any]] = env_bench.run()
    try:
        from beamrl.bench import env_server_bench
    except ImportError:
        return rows
    return rows + env_server_bench.run(quick=quick)


def _bench_replay(quick: bool) -> list[dict[str, Any]]:
    from beamrl.bench import replay_bench

    rows: list[dict[str, Any]] = replay_bench.run(capacity=100_000 if quick else 1_000_000)
    try:
        from beamrl.bench import replay_server_bench
    except ImportError:
        return rows
    return rows + replay_server_bench.run(quick=quick)


def _bench_remote(quick: bool) -> list[dict[str, Any]]:
    from beamrl.bench import remote

    return remote.run(quick=quick)


_BENCHES: dict[str, Callable[[bool], list[dict[str, Any]]]] = {
    "local": _bench_local,
    "remote": _bench_remote,
    "env": _bench_env,
    "replay": _bench_replay,
}


@command("bench")
def _add_bench(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("bench", help="measure beamrl against floors taken in the same run")
    p.add_argument("suite", nargs="?", default="all", choices=["local", "remote", "env", "replay", "all"])
    p.add_argument("--quick", action="store_true", help="fewer iterations (a smoke run, noisier)")
    p.set_defaults(handler=_bench)


def _keys_generate(args: argparse.Namespace) -> int:
    from beamrl.transport.keys import generate_keys

    public, secret = generate_keys(args.dir, args.name, overwrite=args.force)
    print(f"wrote {public} (public: copy it to every node that should trust {args.name!r})")
    print(f"wrote {secret} (secret: keep it on this machine only)")
    return 0


@command("keys")
def _add_keys(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("keys", help="CURVE key pairs for secure nodes")
    ksub = p.add_subparsers(dest="keys_command", required=True)
    g = ksub.add_parser("generate", help="create DIR/NODE.key (public) and DIR/NODE.key_secret")
    g.add_argument("dir")
    g.add_argument("--name", required=True, help="the node name the keys belong to")
    g.add_argument("--force", action="store_true", help="overwrite an existing key pair")
    g.set_defaults(handler=_keys_generate)


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
    except (ValueError, OSError) as exc:
        print(f"beamrl {args.command}: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
