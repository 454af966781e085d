"""``beamrl train <deep algo> ENV_ID``: a supervised agent process (or a Learner and an Actor), and the run's files.

    summary = beamrl.node.run(train_deep("dqn", "CartPole-v1", 50_000, seed=0, out="runs/dqn"))

The tree (one node, ``one_for_one``), by default two processes: ``recorder`` (a
``RunMetrics``: the run's live metrics for dashboards, see ``beamrl.rl.deep.metrics``) and ``agent`` (an
``AgentServer``: acting and learning interleaved in one process, the torch update
called directly, checkpoints in ``OUT/agent``). With ``split=True`` (``--split``), besides the recorder:
``learner`` (torch: networks, optimizer, checkpoints in ``OUT/learner``) and ``actor``
(numpy: envs, replay or rollouts, checkpoints in ``OUT/actor``); the actor sends
batches, the learner answers with new versions: the boundary the distributed agents
build on. ``kill_at=[(step, name)]`` kills a process of the tree (``agent``, or
``learner``/``actor``) once that many env steps were taken: its supervisor restarts it
from its checkpoint and the run goes on. ``resume=True`` continues the run in ``out``
(with the tree it was started with; every process restores its checkpoint) up to
``steps``. ``observers`` watch the run from its node (``beamrl train --dashboard``,
``--tensorboard``: see ``beamrl.dashboard.run``); they read the recorder's
``["metrics", cursor]`` and close after its last rows, before the tree stops.

Writes into ``out``: ``metrics.csv`` (one row per episode: step, return, length, loss,
ε, steps/s, parameter version; evaluation rows carry ``eval_mean_return``),
``curve.png`` (when matplotlib is installed), ``summary.json`` (the exact
hyper-parameters, the final evaluation: ``eval_mean_return`` over 20 greedy episodes
on the judge env, the events) and ``model.safetensors`` (policy parameters; metadata:
spec, algo, env) with ``model.json`` (the same metadata, readable).
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import json
import os
import re
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import numpy as np

from beamrl.errors import BeamError, CallTimeout, NoProc, ProcessCrashed
from beamrl.node import Node, run
from beamrl.rl.deep.config import DQNConfig, config_for, parse_sets
from beamrl.rl.deep.device import resolve_device
from beamrl.rl.deep.env_servers import DEFAULT_WAIT, EnvServers, parse_env_servers
from beamrl.rl.deep.evaluate import evaluate
from beamrl.rl.deep.files import print_result, write_json
from beamrl.rl.deep.metrics import Observer, record
from beamrl.rl.deep.params import NumpyPolicy, save_params
from beamrl.rl.training import judge_env
from beamrl.supervisor import child

__all__ = ["FINAL_EVAL_EPISODES", "train_deep"]

FINAL_EVAL_EPISODES = 20
CSV_COLUMNS = [
    "step",
    "episode_return",
    "episode_length",
    "eval_mean_return",
    "loss",
    "epsilon",
    "steps_per_s",
    "version",
]
RUN_FILE = "run.json"
_LOCAL_ENV = re.compile(r"^env\d+$")  #: the EnvServers a run with --env-server local starts


def _prepare(
    algo: str,
    env_id: str,
    steps: int | None,
    seed: int,
    out_dir: Path,
    overrides: dict[str, Any] | None,
    resume: bool,
    split: bool,
    n_served: int = 0,
) -> tuple[str, str, int, Any, int, bool, dict[str, Any]]:
    """Check the run directory, settle the config and the tree (a resumed run keeps its own); return ``run.json``.

    ``n_served`` EnvServers (``--env-server``) set ``num_envs`` (an explicit, different one is refused).
    """
    if resume:
        run = _load_run(out_dir)
        algo, env_id, seed = run["algo"], run["env_id"], int(run["seed"])
        values = {**run["hyper"], **(overrides or {})}
        steps = steps or int(run["steps"])
        split = bool(run.get("split", (out_dir / "learner").exists()))
    else:
        if any((out_dir / name).exists() for name in ("agent", "learner", "actor")):
            raise ValueError(
                f"{out_dir} holds a deep run already: continue it with --resume {out_dir} or use another --out"
            )
        values = dict(overrides or {})
    if n_served:
        _served_envs(algo, values, n_served, resume)
    cfg = config_for(algo, env_id, values)
    resolve_device(cfg.device)  # a GPU this machine does not have is refused before anything starts
    budget = int(steps or 100_000)
    run_info = {"algo": algo, "env_id": env_id, "seed": seed, "steps": budget, "split": split}
    return algo, env_id, seed, cfg, budget, split, run_info | {"hyper": dataclasses.asdict(cfg)}


def _served_envs(algo: str, values: dict[str, Any], n: int, resume: bool) -> None:
    """One EnvServer per env: ``n`` of them make ``num_envs`` (REINFORCE steps exactly one env)."""
    given = "--env-server" if n == 1 else f"{n} --env-server options"
    if algo == "reinforce":
        if n != 1:
            raise ValueError(f"reinforce steps one environment: give one --env-server, not {n}")
        return
    if "num_envs" in values and int(values["num_envs"]) != n:
        where = "this run was started with" if resume else "--set gives"
        raise ValueError(
            f"{where} num_envs={values['num_envs']}, but {given} make {n} envs: give one --env-server per env"
            + ("" if resume else " (or leave out --set num_envs: the --env-server options set it)")
        )
    values["num_envs"] = n


def _write_run(out_dir: Path, run_info: dict[str, Any]) -> None:
    """The run directory and its ``run.json``, once every check passed (a refused run writes nothing)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / RUN_FILE, run_info)


def _load_run(out: Path) -> dict[str, Any]:
    path = out / RUN_FILE
    if not path.is_file():
        raise ValueError(f"--resume {out}: no {RUN_FILE} there (not a deep run directory)")
    run: dict[str, Any] = json.loads(path.read_text())
    return run


async def train_deep(
    algo: str,
    env_id: str,
    steps: int | None,
    seed: int = 0,
    out: str | os.PathLike[str] = "runs/deep",
    overrides: dict[str, Any] | None = None,
    kill_at: list[tuple[int, str]] | None = None,
    resume: bool = False,
    progress: bool = True,
    listen: str | None = None,
    keys: str | None = None,
    split: bool = False,
    observers: Sequence[Observer] = (),
    env_servers: list[str] | None = None,
    env_wait: float = DEFAULT_WAIT,
) -> dict[str, Any]:
    """Train, evaluate and write the run's files; return the summary (see the module docstring).

    ``env_servers`` (``--env-server``): the acting process steps these EnvServers, one
    per env, instead of envs of its own: ``local`` ones start in the run's tree,
    ``NAME@ADDR`` ones run on another node (see ``beamrl.rl.deep.env_servers``, also for
    what happens when one goes away; ``env_wait`` is how long the run waits for it).

    ``listen`` (e.g. ``tcp://127.0.0.1:7001``) opens the node so that ``beamrl shell ADDR``
    reaches the processes by name: ``agent`` (``agent.stats()``, ``agent.act(obs)``), or
    with ``split`` ``learner`` and ``actor`` (``learner.stats()``, ``actor.act(obs)``).
    """
    out_dir = Path(out)
    if resume and env_servers is None:  # a resumed run steps the servers it was started with
        env_servers = _load_run(out_dir).get("env_servers")
    targets = parse_env_servers(env_servers or [])
    algo, env_id, seed, cfg, budget, split, run_info = _prepare(
        algo, env_id, steps, seed, out_dir, overrides, resume, split, len(targets)
    )
    servers = EnvServers(env_id, targets, env_wait, str(out_dir)) if targets else None
    hyper = dataclasses.asdict(cfg)
    names = ("learner", "actor") if split else ("agent",)
    killable = [*names, *(t.name for t in targets if t.address is None)]  # and the run's own env servers
    kills = sorted(kill_at or [])
    for _, name in kills:
        if name not in killable:
            hint = "" if split else " (the learner and the actor are processes of a run with --split)"
            raise ValueError(f"--kill-at: this run has no process {name!r}, only {', '.join(killable)}{hint}")
    events: list[dict[str, Any]] = []
    started, cpu_started = time.monotonic(), time.process_time()
    async with Node("deep", listen=listen, keys=keys) as node, AsyncExitStack() as watching:
        if servers is not None:  # a remote server that is not there, or hosts another env: refused, nothing written
            await servers.connect(node)
            run_info["env_servers"] = [t.text for t in targets]
        _write_run(out_dir, run_info)
        for observer in observers:  # up before the tree starts
            await watching.enter_async_context(observer(node))
        # curves a deep run never draws: no success rate; no epsilon but DQN's
        absent = ["eval_success"] + ([] if isinstance(cfg, DQNConfig) else ["epsilon"])
        recorder = child(
            "beamrl.rl.deep.metrics:RunMetrics",
            {"algo": algo, "env_id": env_id, "steps": budget, "processes": list(names), "absent": absent},
            name="recorder",
        )
        served: dict[str, Any] = {} if servers is None else {"envs": servers.envs, "env_wait": env_wait}
        if split:
            children = [
                recorder,
                *([] if servers is None else servers.children()),
                child(
                    "beamrl.rl.deep.learner:Learner",
                    algo,
                    env_id,
                    hyper,
                    seed,
                    str(out_dir / "learner"),
                    name="learner",
                ),
                child(
                    "beamrl.rl.deep.actor:Actor",
                    algo,
                    env_id,
                    hyper,
                    seed,
                    budget,
                    str(out_dir / "actor"),
                    name="actor",
                    **served,
                ),
            ]
        else:
            children = [
                recorder,
                *([] if servers is None else servers.children()),
                child(
                    "beamrl.rl.deep.agent_server:AgentServer",
                    algo,
                    env_id,
                    hyper,
                    seed,
                    budget,
                    str(out_dir / "agent"),
                    name="agent",
                    **served,
                ),
            ]
        await node.start_supervisor(children, strategy="one_for_one", max_restarts=10, max_seconds=60.0, name="deep")
        if node.address is not None:  # once the processes are up (torch imported): the shell finds them
            print(f"training node listening on {node.address}: beamrl shell {node.address}", flush=True)
        final = await _drive(node, names[-1], out_dir, budget, kills, events, progress, resume, algo, env_id, servers)
        watched = [*names, *(t.name for t in targets if t.address is None)]
        restarts = {c.name: c.restarts for c in await node.which_children("deep") if c.name in watched}
        used = None if servers is None else await servers.report(node)
        await watching.aclose()  # the pages and event files get the last rows while the recorder is up
        await node.stop("deep", timeout=30.0)
    wall, cpu = time.monotonic() - started, time.process_time() - cpu_started
    meta = {
        "spec": final["spec"],
        "algo": algo,
        "env_id": env_id,
        "version": final["version"],
        "selected": final["selected"],
    }
    save_params(out_dir / "model.safetensors", final["params"], meta)
    write_json(out_dir / "model.json", meta)
    policy = NumpyPolicy(final["spec"], final["params"])
    returns = evaluate(policy, env_id, FINAL_EVAL_EPISODES)
    summary = {
        "algo": algo,
        "env_id": env_id,
        "seed": seed,
        "steps": budget,
        "env_steps": final["env_steps"],
        "hyper": hyper,
        "eval_mean_return": float(np.mean(returns)),
        "eval_returns": returns,
        "eval_episodes": FINAL_EVAL_EPISODES,
        "judge": judge_env(env_id, {})[1],
        "model_selected": final["selected"],
        "model_version": final["version"],
        "best_periodic_eval": final["best_return"] if np.isfinite(final["best_return"]) else None,
        "wall_seconds": wall,
        "cpu_seconds": cpu,
        "steps_per_s": budget / wall if wall > 0 else None,
        "events": events,
        "restarts": restarts,
        "resumed": resume,
        "processes": list(names),
        "env_servers": used,
        "curve": _plot(out_dir),
    }
    write_json(out_dir / "summary.json", summary)
    return summary


async def _drive(
    node: Node,
    actor: str,
    out_dir: Path,
    budget: int,
    kills: list[tuple[int, str]],
    events: list[dict[str, Any]],
    progress: bool,
    resume: bool,
    algo: str,
    env_id: str,
    servers: EnvServers | None = None,
) -> dict[str, Any]:
    """Poll ``actor`` (the process that acts): write metrics rows, show progress, inject kills; return its final.

    While it does not answer, ``servers`` are probed: one gone for good ends the run (``EnvServerLost``).
    """
    bar = _bar(budget, f"{algo} {env_id}") if progress else None
    csv_path = out_dir / "metrics.csv"
    append = resume and csv_path.is_file()
    last_ok = time.monotonic()
    recent: list[float] = []
    with csv_path.open("a" if append else "w", newline="") as f:
        writer = csv.DictWriter(f, CSV_COLUMNS, extrasaction="ignore")
        if not append:
            writer.writeheader()
        while True:
            try:
                p = await node.call(actor, ["progress"], timeout=30.0)
            except (NoProc, CallTimeout, ProcessCrashed) as e:  # the actor is restarting
                if servers is not None:
                    await servers.watch(node)
                if time.monotonic() - last_ok > 120:
                    raise TrainingStalled(f"the {actor} has not answered for 120 s: {e}") from e
                await asyncio.sleep(0.1)
                continue
            last_ok = time.monotonic()
            await record(node, ["record", p | {"gauges": _gauges(p)}])
            for row in p["rows"]:
                writer.writerow(row)
                if "episode_return" in row:
                    recent = [*recent[-19:], row["episode_return"]]
            if p["rows"]:
                f.flush()  # metrics.csv can be watched while the run goes on
            events.extend(p["events"])
            while kills and p["steps"] >= kills[0][0]:
                at, name = kills.pop(0)
                node.kill(name)
                events.append({"event": "killed", "name": name, "at_step": at, "step": p["steps"]})
                await record(node, ["record_event", events[-1]])
            if bar is not None:
                bar.n = p["steps"]
                ret = f"{np.mean(recent):.1f}" if recent else "-"
                bar.set_postfix_str(f"return {ret} loss {p['loss']:.3g} steps/s {p['steps_per_s']:.0f}", refresh=False)
                bar.refresh()
            if p["done"]:
                f.flush()
                break
            await asyncio.sleep(0.1)
    if bar is not None:
        bar.close()
    final: dict[str, Any] = await node.call(actor, ["final"], timeout=30.0)
    return final


def _gauges(p: dict[str, Any]) -> dict[str, Any]:
    """The readings of a progress reply the dashboard draws: replay size, and an actor's parameter lag."""
    gauges = {"replay_size": p.get("replay_size")}
    if p.get("learner_version") is not None:  # --split: learner updates the actor's policy copy is behind
        gauges["param_lag/actor"] = max(0, int(p["learner_version"]) - int(p["version"]))
    return gauges


class TrainingStalled(BeamError, RuntimeError):
    """The deep run's actor stopped answering."""


def _bar(total: int, desc: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="step", dynamic_ncols=True)


def _plot(out_dir: Path) -> str | None:
    """``curve.png``: episode returns and evaluations over env steps (None without matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    steps, rets, esteps, evals = [], [], [], []
    with (out_dir / "metrics.csv").open() as f:
        for row in csv.DictReader(f):
            if row["episode_return"]:
                steps.append(int(row["step"]))
                rets.append(float(row["episode_return"]))
            if row["eval_mean_return"]:
                esteps.append(int(row["step"]))
                evals.append(float(row["eval_mean_return"]))
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, rets, lw=0.6, alpha=0.6, label="episode return")
    ax.plot(esteps, evals, "o-", label="greedy evaluation")
    ax.set_xlabel("env steps")
    ax.set_ylabel("return")
    ax.legend()
    fig.tight_layout()
    path = out_dir / "curve.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return str(path)


def parse_kill_at(items: list[str] | None) -> list[tuple[int, str]]:
    """``["20000:agent"]`` -> ``[(20000, "agent")]``."""
    kills = []
    for item in items or []:
        at, sep, name = item.partition(":")
        if not sep or not at.isdigit() or not (name in ("agent", "learner", "actor") or _LOCAL_ENV.match(name)):
            raise ValueError(
                "--kill-at expects STEP:agent (or with --split STEP:learner, STEP:actor; with --env-server local"
                f" STEP:env0...) for deep runs, got {item!r}"
            )
        kills.append((int(at), name))
    return kills


def cli_main(args: Any, observers: Sequence[Observer] = ()) -> int:
    """``beamrl train`` for a deep algorithm (``args``: the CLI's train parser; ``observers``: see ``train_deep``)."""
    if args.nodes != 1 or args.attach:
        raise ValueError(f"{args.algo} trains on one node for now (--nodes 1); Ape-X across nodes is issue 13")
    if args.episodes is not None:
        raise ValueError(f"{args.algo} counts its budget in env steps: use --steps N, not --episodes")
    resume = args.resume is not None
    out = args.resume or args.out or f"runs/{args.algo}-{args.env_id}-seed{args.seed}"
    summary = run(
        train_deep(
            args.algo,
            args.env_id,
            args.steps,
            seed=args.seed,
            out=out,
            overrides=parse_sets(args.hyper),
            kill_at=parse_kill_at(args.kill_at),
            resume=resume,
            progress=not args.quiet,
            listen=args.listen,
            keys=args.keys,
            split=args.split,
            observers=observers,
            env_servers=args.env_server,
            env_wait=DEFAULT_WAIT if args.env_server_wait is None else args.env_server_wait,
        )
    )
    print_result(summary, out, ("algo", "env_id", "steps", "wall_seconds", "steps_per_s", "eval_mean_return"))
    for used in summary["env_servers"] or []:
        print(f"env server {used['target']}: {used['name']!r} on node {used['node']!r} counts {used['steps']} steps")
    return 0
