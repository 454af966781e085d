"""``train``: build the training tree, spread its workers over nodes, judge and write the results.

    summary = beamrl.run(train(RunSpec("q-learning", "FrozenLake-v1", episodes=2000), "runs/fl", nodes=3))

The learner node runs::

    training (Supervisor, one_for_one)
      qserver   QServer        the shared Q-table (checkpointed)
      recorder  Recorder       counts episodes, evaluates the greedy policy, stops the run
      workers   DynamicSupervisor
        worker-i-sup (Supervisor)     one per worker, on its own node
          worker-i  Worker     its env and agent: plays batches of episodes, ships what each learnt

The env id goes through ``make`` once on the learner (its spaces give the ``TableShape``
every process shares, and it is the recorder's evaluation env); the final evaluation
plays on the judge (gymnasium's env when installed). Outputs: see ``outputs``.

``preflight`` refuses a run that cannot do what it says before anything starts. When the
run is cancelled (Ctrl-C), the recorder ends it at once; what was learnt so far is judged
and written, with ``"interrupted": true`` in ``summary.json``, and the cancellation goes on.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from beamrl.errors import BeamError, CallTimeout, NodeDown, NoProc, ProcessCrashed
from beamrl.node import Node
from beamrl.rl.agents import PolicyIteration, PolicyIterationConfig, ValueIteration, ValueIterationConfig
from beamrl.rl.envs.gym_adapter import GymEnv
from beamrl.rl.envs.registry import canonical_id, facts, make
from beamrl.rl.qserver import QServer
from beamrl.rl.training.actors import ActorNodes, wait_for_actor_trees, worker_spec
from beamrl.rl.training.outputs import write_outputs
from beamrl.rl.training.preflight import preflight
from beamrl.rl.training.progress import say
from beamrl.rl.training.recorder import Recorder
from beamrl.rl.training.spec import PLANNING_ALGOS, RunSpec
from beamrl.rl.training.tabular import TableShape, greedy_eval
from beamrl.supervisor import DynamicSupervisor, child

log = logging.getLogger("beamrl.rl")

#: Something that watches a run from its node (a dashboard, a TensorBoard writer): entered once the
#: learner's node is up (before the training tree starts), exited when the run is over.
Observer = Callable[[Node], AbstractAsyncContextManager[Any]]

#: the seed offset of the final evaluation (apart from the periodic ones)
FINAL_EVAL_SALT = 7919


class TrainingFailed(BeamError, RuntimeError):
    """A training run could not go on: its tree went down or no episode finished for too long."""


def judge_env(env_id: str, env_kwargs: dict[str, Any]) -> tuple[Any, str]:
    """gymnasium's own env when installed (the judge the targets name), else the native one."""
    try:
        import gymnasium  # deferred: an optional extra, only the judge needs it
    except ImportError:
        return make(env_id, **env_kwargs), "beamrl native (gymnasium not installed)"
    canonical = canonical_id(env_id)
    return GymEnv(gymnasium.make(canonical, **env_kwargs), canonical), f"gymnasium {gymnasium.__version__}"


async def train(
    spec: RunSpec,
    out: str | os.PathLike[str],
    *,
    nodes: int = 1,
    attach: list[str] | None = None,
    progress: bool = True,
    listen: str | None = None,
    keys: str | None = None,
    name: str = "learner",
    final_episodes: int | None = None,
    stall_seconds: float = 60.0,
    observers: Sequence[Observer] = (),
) -> dict[str, Any]:
    """Run training as a supervised tree and write metrics, plot, summary and table to ``out``.

    ``observers`` watch the run from the learner's node (``beamrl train --dashboard``);
    planners run no tree and ignore them.

    Raises ``ValueError`` (before anything starts) for a run that cannot work, and
    ``TrainingFailed`` when the tree goes down or no episode ends for ``stall_seconds``.
    """
    env, table = preflight(spec, nodes, attach or [])
    if table is None:
        raise ValueError(f"{spec.algo} is not a tabular algorithm: this trainer trains tabular ones")
    out_dir = Path(out)
    await asyncio.to_thread(_prepare, out_dir)
    started = time.monotonic()
    what_ran = {
        "algo": spec.algo,
        "env_id": spec.env_id,
        "env_kwargs": spec.env_kwargs,
        "seed": spec.seed,
        "nodes": max(nodes, 1) + len(attach or []),  # preflight refused what would not run on all of them
        "hyper_parameters": spec.hyper,
    }
    if spec.algo in PLANNING_ALGOS:
        outcome = await _plan(spec, env)
    else:
        try:
            outcome = await _learn(
                spec, env, table, out_dir, nodes, attach or [], progress, listen, keys, name, stall_seconds, observers
            )
        except Interrupted as stop:
            stop.outcome.summary.update(what_ran)
            await _judge_and_write(spec, out_dir, table, stop.outcome, final_episodes, started)
            raise asyncio.CancelledError from None  # the cancellation goes on, the partial outputs written
    outcome.summary.update(what_ran)
    await _judge_and_write(spec, out_dir, table, outcome, final_episodes, started)
    return outcome.summary


@dataclass
class Outcome:
    """What a run produced, before the judged evaluation."""

    summary: dict[str, Any]
    """The recorder's (or the planner's) summary; the judged results are added to it."""
    q: np.ndarray
    """The learnt Q-table."""
    rows: dict[str, list[Any]]
    """``metrics.csv``'s columns: per episode (``METRICS``) or, for a planner, per sweep."""
    evals: list[dict[str, float]] = field(default_factory=list)
    """The periodic greedy evaluations."""


class Interrupted(Exception):
    """The run was cancelled; ``outcome`` is what the recorder had by then."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__("interrupted")
        self.outcome = outcome


async def _judge_and_write(
    spec: RunSpec, out_dir: Path, table: TableShape, outcome: Outcome, final_episodes: int | None, started: float
) -> None:
    """Play the final evaluation on the judge, then write every output of the run."""
    judge, judge_name = judge_env(spec.env_id, spec.env_kwargs)
    env_facts = facts(spec.env_id)
    n_final = final_episodes or env_facts.eval_episodes
    result = await asyncio.to_thread(
        greedy_eval,
        np.argmax(outcome.q, axis=1),
        judge,
        table,
        spec.env_id,
        n_final,
        spec.seed + FINAL_EVAL_SALT,
        spec.max_steps,
    )
    outcome.summary.update(
        eval_mean_return=result["mean_return"],
        eval_success_rate=result["success_rate"] if env_facts.has_goal else None,
        eval_episodes=n_final,
        judge=judge_name,
        total_wall_seconds=time.monotonic() - started,
    )
    await asyncio.to_thread(write_outputs, out_dir, spec, outcome.summary, outcome.q, outcome.rows, outcome.evals)


def _prepare(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = out_dir / "qserver.npz"
    if checkpoint.exists():
        checkpoint.unlink()  # a new run starts from scratch; restarts within the run resume


async def _plan(spec: RunSpec, env: Any) -> Outcome:
    hyper = dict(spec.hyper)
    if spec.algo == "value-iteration":
        planner: Any = ValueIteration(ValueIterationConfig(**hyper))
    else:
        planner = PolicyIteration(PolicyIterationConfig(**hyper))
    t0 = time.monotonic()
    await asyncio.to_thread(planner.plan_env, env)
    wall = time.monotonic() - t0
    rows = {"iteration": list(range(1, len(planner.deltas) + 1)), "value_change": list(planner.deltas)}
    summary = {"episodes": 0, "steps": 0, "wall_seconds": wall, "iterations": planner.iterations}
    return Outcome(summary, planner.Q, rows)


async def _learn(
    spec: RunSpec,
    env: Any,
    table: TableShape,
    out_dir: Path,
    nodes: int,
    attach: list[str],
    progress: bool,
    listen: str | None,
    keys: str | None,
    name: str,
    stall_seconds: float = 60.0,
    observers: Sequence[Observer] = (),
) -> Outcome:
    distributed = nodes > 1 or bool(attach)
    if distributed and listen is None:
        listen = "tcp://127.0.0.1:0"
    n_workers = max(nodes, 1) + len(attach)
    spec = spec.replace(workers=n_workers)
    checkpoint = out_dir / "qserver.npz"
    async with Node(name, listen=listen, keys=keys) as node, AsyncExitStack() as watching:
        for observer in observers:  # up before the run's clock starts; closed before the node
            await watching.enter_async_context(observer(node))
        await node.start_supervisor(
            [
                child(
                    QServer,
                    table.n_states,
                    table.n_actions,
                    checkpoint=str(checkpoint),
                    checkpoint_every=spec.checkpoint_every,
                    name="qserver",
                ),
                child(
                    Recorder,
                    spec.to_data(),
                    n_workers,
                    progress=progress,
                    table=table.to_data(),
                    eval_env=env,
                    name="recorder",
                ),
                child(DynamicSupervisor, name="workers", max_restarts=50, max_seconds=10),
            ],
            name="training",
        )
        address = node.address or ""
        actors = ActorNodes(nodes - 1, address, name, out_dir) if nodes > 1 else None
        try:
            remote_names = list(actors.names) if actors is not None else []
            attached = {}  # name -> address of the nodes already running
            for peer_address in attach:
                try:
                    attached[await node.connect(peer_address)] = peer_address
                except NodeDown as exc:
                    raise TrainingFailed(f"cannot reach the actor node at {peer_address}: {exc}") from None
            remote_names += list(attached)
            try:
                await wait_for_actor_trees(node, remote_names, actors, attached=attached)
            except (RuntimeError, TimeoutError) as exc:  # an actor node died or hung while starting
                raise TrainingFailed(f"the actor nodes did not come up: {exc}") from None
            await node.start_child("workers", worker_spec(spec, 0, name, table))
            for i, remote in enumerate(remote_names, start=1):
                await _start_remote_worker(node, remote, worker_spec(spec, i, name, table), i)
            try:
                summary = await _wait_for_the_run(node, stall_seconds)
            except asyncio.CancelledError:
                summary = await node.call("recorder", ["interrupt"])  # quiet from here on: no false crashes
                raise Interrupted(await _outcome(node, summary)) from None
            outcome = await _outcome(node, summary)
            for i, remote in enumerate(remote_names, start=1):
                try:
                    await node.terminate_child(("workers", remote), f"worker-{i}-sup", timeout=10)
                except BeamError as exc:  # the node may be gone already; the run is over anyway
                    log.info("leaving worker %d on %r: %s", i, remote, exc)
        finally:
            if actors is not None:
                await asyncio.to_thread(actors.close)
    return outcome


async def _outcome(node: Node, summary: dict[str, Any]) -> Outcome:
    """The recorder's results: the final table, the metrics rows and the evaluations."""
    q = await node.call("recorder", ["final_table"])
    return Outcome(summary, q, await node.call("recorder", ["metrics"]), await node.call("recorder", ["evals"]))


async def _start_remote_worker(node: Node, remote: str, spec: dict[str, Any], index: int) -> None:
    """Start worker ``index`` on ``remote``; a node lost meanwhile leaves the run to the other workers."""
    try:
        await node.start_child(("workers", remote), spec)
    except (NodeDown, NoProc, CallTimeout) as exc:
        text = f"worker {index} lost: node {remote!r} went away while it started ({type(exc).__name__})"
        say(f"! {text}; the run goes on with the other workers")
        node.cast("recorder", ["event", text])


async def _wait_for_the_run(node: Node, stall_seconds: float) -> dict[str, Any]:
    """The recorder's summary once the run is over; an error if no episode ends for ``stall_seconds``."""
    last_progress, last_count = time.monotonic(), -1
    while True:
        try:
            try:
                summary: dict[str, Any] = await node.call("recorder", ["wait"], timeout=1.0)
                return summary
            except CallTimeout:
                count = (await node.call("recorder", ["summary"]))["episodes"]
        except (NoProc, ProcessCrashed) as exc:
            raise TrainingFailed(f"the training tree went down: {exc}") from exc
        if count != last_count:
            last_progress, last_count = time.monotonic(), count
        elif time.monotonic() - last_progress > stall_seconds:
            raise TrainingFailed(
                f"no episode finished in {stall_seconds:.0f} s (after {count}): the workers keep failing "
                "or their nodes are gone; the log above says why"
            )
