"""``beamrl train ALGO ENV_ID [...]``: train an agent as a supervised tree of processes.

Option defaults come from ``RunSpec`` (seed, evaluation cadence), from ``train`` (nodes)
and from the env registry (the episode budget when neither ``--episodes`` nor ``--steps``
is given, the final evaluation's episodes), so each is stated once.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import time
from pathlib import Path
from typing import Any

from beamrl.cli.dashboard import add_dashboard_args, observers
from beamrl.cli.options import HelpFormatter, address, positive_float, positive_int
from beamrl.cli.session_args import nothing_answered
from beamrl.errors import NodeDown
from beamrl.node import run
from beamrl.node_config import load_node_file
from beamrl.rl.deep import ALGOS as DEEP_ALGOS
from beamrl.rl.envs.registry import GYM_FACTS, NATIVE, facts
from beamrl.rl.training import ALGOS, PLANNING_ALGOS, RunSpec, TrainingFailed, train
from beamrl.rl.training.preflight import KILLABLE, hyper_keys
from beamrl.rl.training.spec import default


def _parse_value(text: str) -> Any:
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


def _chaos(args: argparse.Namespace) -> list[dict[str, Any]]:
    chaos: list[dict[str, Any]] = []
    if args.crash_worker is not None and args.crash_at is None:
        raise ValueError("--crash-worker picks the worker --crash-at crashes: give --crash-at EPISODE too")
    if args.crash_at is not None:
        chaos.append({"at": args.crash_at, "fault": args.crash_worker or 0})
    for item in args.kill_at or []:
        at, sep, name = item.partition(":")
        if not sep or not at.isdigit() or not name:
            raise ValueError(f"--kill-at expects EPISODE:NAME (e.g. 1000:qserver), got {item!r}")
        chaos.append({"at": int(at), "kill": name})
    return chaos


def spec_from_args(args: argparse.Namespace) -> RunSpec:
    """The run the options describe (the registry's episode budget when none is given)."""
    if args.algo not in ALGOS:
        raise ValueError(f"unknown algorithm {args.algo!r}: choose one of {', '.join(ALGOS)}")
    if getattr(args, "split", False):
        raise ValueError(f"--split is for deep algorithms ({', '.join(DEEP_ALGOS)}); {args.algo} is tabular")
    episodes, steps = args.episodes, args.steps
    if episodes is None and steps is None and args.algo not in PLANNING_ALGOS:
        episodes = facts(args.env_id).episodes
    return RunSpec(
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


#: options only tabular runs read: option -> (argparse dest, its default)
TABULAR_ONLY = {
    "--env": ("env_kwarg", None),
    "--eval-every": ("eval_every", default("eval_every")),
    "--eval-episodes": ("eval_episodes", default("eval_episodes")),
    "--final-eval-episodes": ("final_eval_episodes", None),
    "--stop-at-success": ("stop_at_success", None),
    "--crash-at": ("crash_at", None),
    "--crash-worker": ("crash_worker", None),
}


def _refuse_env_servers(args: argparse.Namespace) -> None:
    """``--env-server`` is for the one-node deep runs, whose acting process steps the servers."""
    if args.env_server is None:
        if args.env_server_wait is not None:
            raise ValueError("--env-server-wait is how long a run waits for its --env-server: give --env-server too")
        return
    if args.algo in ("apex-dqn", "a3c"):
        raise ValueError(
            f"--env-server is for the one-node deep algorithms ({', '.join(DEEP_ALGOS)}): {args.algo}'s actor nodes"
            " step envs of their own"
        )
    if args.algo not in DEEP_ALGOS:
        raise ValueError(
            f"--env-server is for the deep algorithms ({', '.join(DEEP_ALGOS)}); {args.algo} is tabular"
            " (its workers step envs of their own)"
        )


def _refuse_ignored(args: argparse.Namespace) -> None:
    """A deep, apex-dqn or a3c run refuses the options it would ignore (the tabular runs')."""
    if args.algo in ("apex-dqn", "a3c") and args.split:
        raise ValueError(
            f"--split is for one-node deep runs; {args.algo}'s learner and actors are separate processes anyway"
        )
    given = [opt for opt, (dest, unset) in TABULAR_ONLY.items() if getattr(args, dest, unset) != unset]
    if given:
        it = "it" if len(given) == 1 else "them"
        raise ValueError(f"{', '.join(given)}: for tabular runs only, {args.algo} would ignore {it}; drop {it}")


def train_command(args: argparse.Namespace) -> int:
    _refuse_env_servers(args)
    if args.algo in DEEP_ALGOS or args.algo in ("apex-dqn", "a3c"):
        _refuse_ignored(args)
    if args.attach_learner and args.algo != "apex-dqn":
        raise ValueError("--attach-learner is for apex-dqn runs with --set learners=G (data-parallel learner replicas)")
    if args.local_worker and args.algo != "a3c":
        raise ValueError("--local-worker is for a3c runs")
    if args.algo == "a3c":
        from beamrl.cli.train_a3c import cli_main as a3c_main  # deferred: the learner loads torch

        return a3c_main(args, observers=observers(args))  # checked before the run starts
    if args.algo == "apex-dqn":
        from beamrl.cli.train_apex import cli_main as apex_main  # deferred: the learner loads torch

        return apex_main(args, observers=observers(args))  # checked before the run starts
    if args.stop_at_return is not None:
        raise ValueError("--stop-at-return is for apex-dqn and a3c runs")
    if args.algo in DEEP_ALGOS:
        from beamrl.rl.deep.run import cli_main  # deferred: the deep run loads torch

        return cli_main(args, observers=observers(args))  # checked before the run starts
    spec = spec_from_args(args)
    listen, keys, name = None, args.keys, "learner"
    if args.node is not None:
        config = load_node_file(args.node)
        listen, keys, name = config.listen, keys or config.keys, config.name or name
    out = args.out or f"runs/{args.algo}-{args.env_id}-seed{args.seed}"
    watchers = observers(args)  # --dashboard, --tensorboard: checked before the run starts
    run_it = train(
        spec,
        out,
        nodes=args.nodes,
        attach=args.attach,
        progress=not args.quiet,
        listen=args.listen or listen,
        keys=keys,
        name=name,
        final_episodes=args.final_eval_episodes,
        observers=watchers,
    )
    started = time.time()
    try:
        summary = run(run_it)
    except KeyboardInterrupt:
        _say_what_was_kept(out, started)
        raise
    except (NodeDown, TrainingFailed) as exc:  # an --attach address where nothing answers: one sentence
        where = next((a for a in args.attach if a.partition("#")[0] in str(exc)), None)
        if where is None:
            raise
        raise type(exc)(nothing_answered(where, 5.0, str(exc))) from None
    shown = {k: summary[k] for k in ("episodes", "steps", "wall_seconds", "eval_mean_return", "eval_success_rate")}
    print(json.dumps(shown, indent=None, default=str))
    success = summary.get("eval_success_rate")
    verdict = f"greedy success {success:.3f}, " if success is not None else ""
    print(
        f"evaluated over {summary['eval_episodes']} episodes on {summary['judge']}: {verdict}"
        f"mean return {summary['eval_mean_return']:.3f}"
    )
    plot = f" and the plot {summary['curve']}" if summary.get("curve") else " (no plot: pip install matplotlib)"
    print(f"wrote {out}/metrics.csv, {out}/summary.json, {out}/qtable.npz{plot}")
    return 0


def _say_what_was_kept(out: str, started: float) -> None:
    """After Ctrl-C: where the partial results are, if this run got as far as writing them."""
    path = Path(out, "summary.json")
    try:
        if path.stat().st_mtime < started:
            return  # an earlier run's
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if summary.get("interrupted"):
        print(
            f"\ninterrupted after {summary['episodes']} episodes: wrote the partial results to {out}/"
            ' (summary.json says "interrupted": true)',
            file=sys.stderr,
        )


def _epilog() -> str:
    lines = ['--set KEY=VALUE keys, per algorithm (JSON values; schedules as {"kind": ...}):']
    lines += [f"  {algo:<17} {', '.join(hyper_keys(algo) or ['(see its config)'])}" for algo in ALGOS]
    lines.append("")
    lines.append("default episode budget, per env (when neither --episodes nor --steps is given):")
    lines += [f"  {env_id:<24} {facts(env_id).episodes:,}" for env_id in NATIVE]
    lines.append(f"  {'any other (gymnasium)':<24} {GYM_FACTS.episodes:,}")
    lines.append("planners (value-iteration, policy-iteration) need no budget: they solve the env's model")
    return "\n".join(lines)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train an agent as a supervised tree of processes",
        description="Train an agent as a supervised tree of processes; writes metrics.csv, curve.png,"
        " summary.json and qtable.npz into --out.",
        epilog=_epilog(),
        formatter_class=HelpFormatter,
    )
    p.add_argument("algo", metavar="ALGO", help=", ".join([*ALGOS, *DEEP_ALGOS, "apex-dqn", "a3c"]))
    p.add_argument("env_id", metavar="ENV_ID", help=f"an env id: {', '.join(NATIVE)}, or any gymnasium id")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument(
        "--episodes",
        metavar="N",
        type=positive_int,
        help="episode budget over all workers (default: the env's, listed below)",
    )
    budget.add_argument(
        "--steps", metavar="N", type=positive_int, help="env-step budget over all workers, instead of --episodes"
    )
    p.add_argument(
        "--seed", metavar="S", type=int, default=default("seed"), help="seeds the envs, agents and evaluations"
    )
    p.add_argument("--out", metavar="DIR", help="output directory (default runs/ALGO-ENV_ID-seedSEED)")
    nodes = inspect.signature(train).parameters["nodes"].default
    p.add_argument(
        "--nodes",
        metavar="K",
        type=positive_int,
        default=nodes,
        help="nodes to train on; K-1 start as local OS processes (apex-dqn, a3c: K actor nodes besides the learner's)",
    )
    p.add_argument(
        "--attach",
        metavar="ADDR",
        type=address,
        action="append",
        default=[],
        help="tcp://HOST:PORT[#NAME] of an actor node already running (repeatable)",
    )
    p.add_argument(
        "--attach-learner",
        metavar="ADDR",
        type=address,
        action="append",
        default=[],
        help="apex-dqn with --set learners=G: tcp://HOST:PORT[#NAME] of a learner-replica node already running"
        " (nodes/learner-replica.toml) to host one of the G-1 replicas besides the learner's (repeatable; the"
        " rest start on loopback)",
    )
    p.add_argument("--node", metavar="ROLE.toml", help="a node role file for the learner (name, listen, keys)")
    p.add_argument(
        "--listen", metavar="ADDR", type=address, help="learner listen address (default: loopback when distributed)"
    )
    p.add_argument("--keys", metavar="DIR", help="CURVE key directory for the learner")
    p.add_argument(
        "--env",
        metavar="KEY=VALUE",
        dest="env_kwarg",
        action="append",
        help="env keyword, e.g. --env is_slippery=false",
    )
    p.add_argument(
        "--set",
        metavar="KEY=VALUE",
        dest="hyper",
        action="append",
        help="hyper-parameter, e.g. --set gamma=0.95 (keys below)",
    )
    p.add_argument(
        "--eval-every",
        metavar="N",
        type=positive_int,
        default=default("eval_every"),
        help="episodes between evaluations",
    )
    p.add_argument(
        "--eval-episodes",
        metavar="N",
        type=positive_int,
        default=default("eval_episodes"),
        help="episodes per evaluation (sampled envs; a native env's evaluation is exact, from its model)",
    )
    p.add_argument(
        "--final-eval-episodes",
        metavar="N",
        type=positive_int,
        help="episodes of the final judged evaluation (default: the env's)",
    )
    p.add_argument(
        "--stop-at-success",
        metavar="RATE",
        type=float,
        help="stop once a periodic evaluation reaches this success rate",
    )
    p.add_argument(
        "--crash-at", metavar="EPISODE", type=positive_int, help="inject a fault into a worker at this episode (demo)"
    )
    p.add_argument("--crash-worker", metavar="I", type=int, help="which worker --crash-at crashes, 0..K-1 (default 0)")
    p.add_argument(
        "--kill-at",
        metavar="EPISODE:NAME",
        action="append",
        help=f"EPISODE:NAME kills a learner process ({', '.join(KILLABLE)}), e.g. 1000:qserver;"
        " deep runs: STEP:agent (with --split STEP:learner or STEP:actor); apex-dqn: STEP:actor-node[:I] (actor"
        " node I of --nodes, default 0), STEP:learner, STEP:replay (STEP:replay-K: shard K);"
        " a3c: STEP:actor-node[:I], STEP:learner",
    )
    p.add_argument(
        "--stop-at-return",
        metavar="R",
        type=float,
        help="apex-dqn, a3c: stop once a periodic greedy evaluation reaches this mean return (time-to-target)",
    )
    p.add_argument("--local-worker", action="store_true", help="a3c: one more worker, on the learner node")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a deep run from its checkpoints")
    p.add_argument(
        "--split",
        action="store_true",
        help="deep algorithms: a Learner and an Actor process instead of one agent process that acts and learns",
    )
    p.add_argument(
        "--env-server",
        metavar="TARGET",
        action="append",
        help="deep algorithms: step an EnvServer instead of an env of the agent's own, one per env (repeatable;"
        " their number sets num_envs): local (the run starts one in its tree) or NAME@tcp://HOST:PORT"
        " (the EnvServer registered as NAME on the node there, e.g. one started with `beamrl node start`)",
    )
    p.add_argument(
        "--env-server-wait",
        metavar="SECONDS",
        type=positive_float,
        help="how long a run waits for an --env-server that went away before it stops (default 30)",
    )
    add_dashboard_args(p, train=True)
    p.set_defaults(handler=train_command)
