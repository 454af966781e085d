"""Training as processes: workers play episodes, a QServer learns, a recorder keeps score.

One worker per environment, on any node::

    training (Supervisor, one_for_one)
      qserver   QServer        the shared Q-table (checkpointed)
      recorder  Recorder       counts episodes, evaluates the greedy policy, stops the run
      workers   DynamicSupervisor
        worker-i-sup (Supervisor, rest_for_one)     one per worker, on its own node
          env-i     EnvServer  the worker's environment
          worker-i  Worker     the agent: acts, learns, ships (s, a, target) batches

A worker keeps a local copy of the table (refreshed from the QServer every
``sync_every`` episodes), learns on it, and casts its TD targets to the QServer
after each episode: asynchronous one-step Q-learning (Mnih et al., 2016) for
Q-learning, and the same plumbing for SARSA, Expected SARSA and Monte Carlo.
A crashed worker is restarted by its supervisor and picks up where the run is:
the table from the QServer, its episode count (for its schedules) from the recorder.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from beamrl.api import call, cast, monitor, send
from beamrl.errors import CallTimeout, NoProc, ProcessCrashed, Rejected
from beamrl.gen_server import GenServer, NoReply
from beamrl.process import Down, format_reason
from beamrl.rl import schedules
from beamrl.rl.agents import (
    Agent,
    ExpectedSarsa,
    ExpectedSarsaConfig,
    MonteCarlo,
    MonteCarloConfig,
    QLearning,
    QLearningConfig,
    Sarsa,
    SarsaConfig,
)
from beamrl.rl.loops import evaluate, success_fn_for_id
from beamrl.rl.qserver import as_update_arrays
from beamrl.rl.qtable import state_index
from beamrl.rl.spaces import Discrete

log = logging.getLogger("beamrl.rl")

TD_ALGOS: dict[str, tuple[type[Any], type[Any]]] = {
    "q-learning": (QLearning, QLearningConfig),
    "sarsa": (Sarsa, SarsaConfig),
    "expected-sarsa": (ExpectedSarsa, ExpectedSarsaConfig),
}
EPISODIC_ALGOS = (*TD_ALGOS, "mc")
PLANNING_ALGOS = ("value-iteration", "policy-iteration")
ALGOS = (*EPISODIC_ALGOS, *PLANNING_ALGOS)


@dataclass
class RunSpec:
    """What a training run does; travels to every worker as a plain dict."""

    algo: str
    """One of ``ALGOS``."""
    env_id: str
    """The environment id (native or gymnasium)."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments for ``make``."""
    episodes: int | None = None
    """Episode budget over all workers (None: use ``steps``)."""
    steps: int | None = None
    """Environment-step budget over all workers (None: use ``episodes``)."""
    seed: int = 0
    """Seeds the envs, the agents and the evaluations."""
    eval_every: int = 100
    """Evaluate the greedy policy every this many episodes (over all workers)."""
    eval_episodes: int = 200
    """Episodes per periodic evaluation."""
    hyper: dict[str, Any] = field(default_factory=dict)
    """Agent hyper-parameters (see ``agent_config``); schedules as {"kind": ..., ...}."""
    sync_every: int = 1
    """Episodes between a worker's refreshes of its local table from the QServer."""
    stop_at_success: float | None = None
    """Stop once a periodic evaluation's success rate reaches this."""
    chaos: list[dict[str, Any]] = field(default_factory=list)
    """Faults to inject: ``{"at": episode, "fault": worker_index}`` makes that worker crash,
    ``{"at": episode, "kill": "qserver"}`` kills a learner-side process by name."""
    checkpoint_every: float = 1.0
    """Seconds between QServer checkpoints."""
    max_steps: int = 10_000
    """Cap on an episode's length for environments without a time limit."""
    workers: int = 1
    """How many workers share the table: each worker's schedules advance as if it had
    played ``workers`` times its own episodes, so ε and α follow the run's total."""

    def __post_init__(self) -> None:
        if self.algo not in ALGOS:
            raise ValueError(f"unknown algorithm {self.algo!r}: choose one of {', '.join(ALGOS)}")
        for name in ("episodes", "steps"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive integer or None, got {value!r}")
        if self.algo not in PLANNING_ALGOS and self.episodes is None and self.steps is None:
            raise ValueError(f"{self.algo} needs a budget: episodes=N or steps=N")
        for name in ("eval_every", "eval_episodes", "sync_every", "max_steps", "workers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.stop_at_success is not None and not 0.0 < self.stop_at_success <= 1.0:
            raise ValueError(f"stop_at_success must lie in (0, 1], got {self.stop_at_success!r}")
        if not self.checkpoint_every > 0:
            raise ValueError(f"checkpoint_every must be > 0 seconds, got {self.checkpoint_every!r}")

    def to_data(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> RunSpec:
        if not isinstance(data, dict):
            raise TypeError(f"a run spec is a dict, got {type(data).__name__}")
        return cls(**data)


def default_hyper(algo: str, env_id: str) -> dict[str, Any]:
    """Hyper-parameters that reach the published targets on the native tabular envs."""
    if algo == "mc":
        if env_id.startswith("FrozenLake"):
            return {"alpha": 0.02, "init": 1.0}
        return {}
    if env_id.startswith("CliffWalking"):
        return {
            "gamma": 1.0,
            "epsilon": 0.1,
            "alpha": {"kind": "exponential", "start": 0.5, "end": 0.01, "decay": 0.995},
        }
    return {}


def _schedule(value: Any) -> Any:
    if isinstance(value, dict):
        kinds = {
            "constant": schedules.Constant,
            "linear": schedules.Linear,
            "exponential": schedules.Exponential,
            "glie": schedules.GLIE,
        }
        kind = value.get("kind")
        if kind not in kinds:
            raise ValueError(f"schedule kind must be one of {', '.join(kinds)}, got {kind!r}")
        return kinds[kind](**{k: v for k, v in value.items() if k != "kind"})
    return value


def _scaled(schedule: Any, factor: int) -> Any:
    if factor == 1 or not callable(schedule):
        return schedule
    return lambda t: schedule(t * factor)


def agent_config(algo: str, hyper: dict[str, Any], seed: int, workers: int = 1) -> Any:
    """The agent's config dataclass from ``hyper`` (schedules given as dicts)."""
    values = {k: _schedule(v) for k, v in hyper.items()}
    if workers > 1:
        defaults = MonteCarloConfig() if algo == "mc" else TD_ALGOS[algo][1]()
        for name in ("alpha", "epsilon"):
            value = values.get(name, getattr(defaults, name, None))
            if callable(value):
                values[name] = _scaled(value, workers)
    values.setdefault("seed", seed)
    if algo == "mc":
        return MonteCarloConfig(record_updates=True, **values)
    if algo not in TD_ALGOS:
        raise ValueError(f"unknown algorithm {algo!r}: choose one of {', '.join(ALGOS)}")
    return TD_ALGOS[algo][1](record_updates=True, **values)


def table_shape(observation_space: Any, action_space: Any) -> tuple[int, int, Any]:
    """(n_states, n_actions, state_fn) of a tabular problem."""
    if not isinstance(action_space, Discrete):
        raise ValueError(f"tabular agents need a Discrete action space, got {action_space!r}")
    if isinstance(observation_space, Discrete):
        start = observation_space.start
        return observation_space.n, action_space.n, (None if start == 0 else (lambda s: s - start))
    index = state_index(observation_space)
    return index.n, action_space.n, index


def make_agent(spec: RunSpec, n_states: int, n_actions: int, state_fn: Any, worker: int) -> Any:
    """The agent a worker runs (seeded per worker, so workers explore differently)."""
    hyper = {**default_hyper(spec.algo, spec.env_id), **spec.hyper}
    config = agent_config(spec.algo, hyper, seed=spec.seed * 1000 + worker, workers=spec.workers)
    if spec.algo == "mc":
        return MonteCarlo(n_states, n_actions, config, state_fn=state_fn)
    return TD_ALGOS[spec.algo][0](n_states, n_actions, config, state_fn=state_fn)


def _resume(agent: Agent, episodes: int) -> None:
    """Move an agent's schedules to ``episodes`` finished episodes (a restarted worker)."""
    agent.episodes = episodes
    refresh = getattr(agent, "_refresh", None)
    if refresh is not None:
        refresh()
    elif isinstance(agent, MonteCarlo):
        agent.epsilon = float(agent._eps_sched(episodes))


class Worker(GenServer):
    """Plays episodes against its EnvServer and ships what it learns to the QServer."""

    async def init(self, spec: dict[str, Any], index: int, env: Any, qserver: Any, recorder: Any) -> None:
        self.spec = RunSpec.from_data(spec)
        self.index = index
        self.env, self.qserver, self.recorder = env, qserver, recorder
        spaces = await call(env, ["spaces"])
        n_states, n_actions, state_fn = table_shape(spaces["observation_space"], spaces["action_space"])
        self.agent: Any = make_agent(self.spec, n_states, n_actions, state_fn, index)
        self.success = success_fn_for_id(self.spec.env_id)
        hello = await call(recorder, ["hello", index, self.pid])
        _resume(self.agent, hello["episodes"])
        self.agent.q.assign(await call(qserver, ["table"]))
        self.stopped = bool(hello["stop"])
        self.fault = False
        self.episode_seed = self.spec.seed * 1_000_003 + index * 10_007 + hello["episodes"]
        if not self.stopped:
            self.continue_with("episode")

    async def handle_continue(self, arg: Any) -> None:
        send(self.pid, "episode")

    async def handle_info(self, message: Any) -> None:
        if message != "episode" or self.stopped:
            return
        # no timeout: the recorder answers after any evaluation it is running (bounded work)
        if not await call(self.recorder, ["next", self.index], timeout=None):  # the budget is spent
            self.stopped = True
            return
        ret, length, success = await self._episode()
        cast(self.recorder, ["episode", self.index, ret, length, success, float(self.agent_epsilon())])
        if self.agent.episodes % self.spec.sync_every == 0:
            try:
                self.agent.q.assign(await call(self.qserver, ["table"]))
            except (NoProc, ProcessCrashed, CallTimeout) as exc:  # the QServer is restarting: keep the local copy
                log.info("worker %d: no table refresh this episode (%s)", self.index, exc)
        send(self.pid, "episode")  # through the mailbox: stop and calls get their turn

    def agent_epsilon(self) -> float:
        return float(getattr(self.agent, "epsilon", 0.0))

    async def _episode(self) -> tuple[float, int, bool]:
        agent, env = self.agent, self.env
        self.episode_seed += 1
        exp = await call(env, ["reset", self.episode_seed])
        total, n = 0.0, 0
        while not exp.done and n < self.spec.max_steps:
            if self.fault:
                raise RuntimeError(f"injected fault in worker {self.index}: its sensor read garbage")
            exp = await call(env, ["step", agent.act(exp.next_state)])
            agent.observe(exp)
            total += exp.reward
            n += 1
        alpha = getattr(agent, "alpha", None)  # the step size this episode learned with
        agent.end_episode()
        self._ship(alpha)
        success = bool(n and self.success(exp))
        return total, n, success

    def _ship(self, episode_alpha: float | None) -> None:
        agent = self.agent
        updates = agent.take_updates()
        if not updates:
            return
        states, actions, targets = as_update_arrays(updates)
        if isinstance(agent, MonteCarlo):
            alpha: Any = agent.config.alpha
            if alpha is None:  # sample averages: the worker's own visit counts
                alpha = np.array([1.0 / agent._counts[(int(s), int(a))] for s, a in zip(states, actions, strict=True)])
        else:
            alpha = float(episode_alpha if episode_alpha is not None else agent.alpha)
        cast(self.qserver, ["td_update", states, actions, targets, alpha])

    async def handle_cast(self, request: Any) -> None:
        match request:
            case ["stop"]:
                self.stopped = True
            case ["inject_fault"]:
                self.fault = True

    async def handle_call(self, request: Any, from_: Any) -> Any:
        if request == ["stats"]:
            return {"index": self.index, "episodes": self.agent.episodes, "epsilon": self.agent_epsilon()}
        raise Rejected(f"Worker does not understand {request!r}")


def _say(text: str) -> None:
    from tqdm import tqdm

    tqdm.write(text)


class Recorder(GenServer):
    """Counts episodes, evaluates the greedy policy, injects the demo's fault, ends the run.

    Requests: ``["hello", index, pid]`` (a worker starting), ``["next", index]`` (may it
    play another episode: exactly the budget is granted), ``["wait"]`` (replies with
    the summary when the run is over), ``["summary"]``, ``["metrics"]`` (columns),
    ``["evals"]``, ``["final_table"]`` (the result: the table that met ``stop_at_success``, else the table
    once every granted episode had reported), ``["metrics", cursor]`` (live metrics after
    ``cursor``, see ``metrics_since``).
    Casts: ``["episode", index, ret, length, success, epsilon]``.
    """

    async def init(
        self, spec: dict[str, Any], n_workers: int, qserver: Any = "qserver", progress: bool = False
    ) -> None:
        from beamrl.rl.envs import make

        self.spec = RunSpec.from_data(spec)
        self.qserver = qserver
        self.n_workers = n_workers
        self.per_worker = [0] * n_workers
        self.workers: dict[int, Any] = {}
        self.restarts = [0] * n_workers
        self.rows: list[tuple[int, int, float, int, bool, float, float]] = []
        self.evals: list[dict[str, float]] = []
        self.steps = 0
        self.finished = False
        self.waiting: list[Any] = []
        self.events: list[dict[str, Any]] = []
        self.last_table: Any = None
        self.granted = 0
        self.in_flight = [0] * n_workers  # granted episodes not reported yet, per worker
        self.final_table: Any = None
        self.t0 = time.monotonic()
        self.time_to_success: float | None = None
        self.eval_env = make(self.spec.env_id, **self.spec.env_kwargs)
        obs_space, act_space = self.eval_env.observation_space, self.eval_env.action_space
        _, _, self.state_fn = table_shape(obs_space, act_space)
        self.bar: Any = None
        if progress:
            from tqdm import tqdm

            total = self.spec.episodes if self.spec.episodes is not None else self.spec.steps
            unit = "episode" if self.spec.episodes is not None else "step"
            self.bar = tqdm(total=total, unit=unit, desc=f"{self.spec.algo} {self.spec.env_id}", smoothing=0.05)
        self._recent: list[float] = []

    async def terminate(self, reason: Any) -> None:
        if self.bar is not None:
            self.bar.close()

    async def handle_call(self, request: Any, from_: Any) -> Any:
        match request:
            case ["hello", index, pid]:
                if not 0 <= index < self.n_workers:
                    raise Rejected(f"worker index {index} outside 0..{self.n_workers - 1}")
                if index in self.workers:
                    self.restarts[index] += 1
                    self.events.append({"episode": len(self.rows), "event": f"worker {index} restarted"})
                    _say(f"  worker {index} is back as {pid} on node {pid.node!r}: it resumes from the shared table")
                self.workers[index] = pid
                monitor(pid)
                return {"episodes": self.per_worker[index], "stop": self.finished}
            case ["next", index]:
                granted = self._grant()
                if granted:
                    self.in_flight[index] += 1
                return granted
            case ["wait"]:
                if self.finished:
                    return self.summary()
                self.waiting.append(from_)
                return NoReply
            case ["summary"]:
                return self.summary()
            case ["metrics"]:
                return self.metrics()
            case ["metrics", dict(cursor)]:  # [dashboard] live metrics
                return self.metrics_since(cursor)
            case ["evals"]:
                return list(self.evals)
            case ["final_table"]:
                return self.final_table
        raise Rejected(f"Recorder does not understand {request!r}")

    async def handle_cast(self, request: Any) -> None:
        match request:
            case ["episode", index, ret, length, success, epsilon]:
                await self._episode(int(index), float(ret), int(length), bool(success), float(epsilon))

    async def handle_info(self, message: Any) -> None:
        if isinstance(message, Down):
            index = next((i for i, p in self.workers.items() if p == message.pid), None)
            if index is not None:  # its unfinished episode will never report: grant it again
                self.granted -= self.in_flight[index]
                self.in_flight[index] = 0
            if index is not None and not self.finished:
                _say(
                    f"! worker {index} ({message.pid} on node {message.pid.node!r}) crashed: "
                    f"{format_reason(message.reason)}; its supervisor restarts it"
                )

    async def _episode(self, index: int, ret: float, length: int, success: bool, epsilon: float) -> None:
        if self.finished:
            return
        self.per_worker[index] += 1
        self.in_flight[index] = max(0, self.in_flight[index] - 1)
        self.steps += length
        n = len(self.rows) + 1
        self.rows.append((n, index, ret, length, success, epsilon, time.monotonic() - self.t0))
        self._recent.append(ret)
        if self.bar is not None:
            self.bar.update(1 if self.spec.episodes is not None else length)
            if n % 50 == 0:
                recent = self._recent[-100:]
                self.bar.set_postfix(ret=f"{sum(recent) / len(recent):.3f}", eps=f"{epsilon:.3f}")
        spec = self.spec
        for chaos in spec.chaos:
            if chaos.get("at") == n:
                await self._inject(n, chaos)
        if n % spec.eval_every == 0:
            await self._evaluate(n)
        done = (spec.episodes is not None and n >= spec.episodes) or (
            spec.steps is not None and self.steps >= spec.steps
        )
        if done:
            await self._finish()

    async def _inject(self, episode: int, chaos: dict[str, Any]) -> None:
        """Chaos for demos and tests: crash a worker, or kill a learner process and watch it resume."""
        if "fault" in chaos:
            index = int(chaos["fault"])
            target = self.workers.get(index)
            if target is None:
                return
            _say(f"* episode {episode}: injecting a fault into worker {index} ({target} on node {target.node!r})")
            self.events.append({"episode": episode, "event": f"fault injected into worker {index}"})
            self.node.events.record("fault", f"fault injected into worker {index}", pid=target, episode=episode)
            cast(target, ["inject_fault"])
        if "kill" in chaos:
            name = str(chaos["kill"])
            old = self.node.whereis(name)
            if old is None:
                return
            _say(f"* episode {episode}: killing {name} ({old}); its supervisor restarts it from its checkpoint")
            self.node.events.record("fault", f"{name} killed by the run's chaos", pid=old, name=name, episode=episode)
            self.node.kill(old)
            for _ in range(1000):  # the supervisor restarts it within a millisecond or so
                new = self.node.whereis(name)
                if new is not None and new != old:
                    break
                await asyncio.sleep(0.001)
            info = await call(name, ["info"])
            _say(f"  {name} is back as {self.node.whereis(name)}: {info}")
            self.events.append({"episode": episode, "event": f"{name} killed", "after_restart": info})

    async def _evaluate(self, episode: int) -> None:
        table = await call(self.qserver, ["table"])
        policy = np.argmax(table, axis=1)
        self.last_table = table
        result = await asyncio.to_thread(greedy_eval, policy, self.eval_env, self.state_fn, self.spec, episode)
        result.update(episode=float(episode), wall=time.monotonic() - self.t0)
        self.evals.append(result)
        target = self.spec.stop_at_success
        if target is not None and result["success_rate"] >= target:
            if self.time_to_success is None:
                self.time_to_success = result["wall"]
                self.final_table = self.last_table  # the run's result is the table that passed
            _say(f"  episode {episode}: greedy success {result['success_rate']:.3f} >= {target}: stopping")
            await self._finish()

    def _grant(self) -> bool:
        """May a worker start another episode? Exactly ``episodes`` are granted in all."""
        spec = self.spec
        if self.finished or (spec.episodes is not None and self.granted >= spec.episodes):
            return False
        if spec.steps is not None and self.steps >= spec.steps:
            return False
        self.granted += 1
        return True

    async def _finish(self) -> None:
        if self.finished:
            return
        self.finished = True
        if self.final_table is None:
            # every granted episode has reported, and each worker cast its updates before
            # its report: the table now holds exactly the run's episodes
            self.final_table = await call(self.qserver, ["table"])
        for pid in self.workers.values():
            cast(pid, ["stop"])
        summary = self.summary()
        for waiting in self.waiting:
            self.node.reply(waiting, summary)
        self.waiting.clear()

    def summary(self) -> dict[str, Any]:
        wall = time.monotonic() - self.t0
        return {
            "episodes": len(self.rows),
            "steps": self.steps,
            "wall_seconds": wall,
            "steps_per_second": self.steps / wall if wall > 0 else 0.0,
            "worker_restarts": list(self.restarts),
            "last_eval": self.evals[-1] if self.evals else None,
            "time_to_success": self.time_to_success,
            "events": list(self.events),
            "finished": self.finished,
        }

    def metrics_since(self, cursor: dict[str, Any], limit: int = 20_000) -> dict[str, Any]:
        """Live metrics for dashboards: what was added after ``cursor``.

        ``cursor`` is ``{"rows": r, "evals": e, "events": v}`` (counts already read; ``{}``
        at first). The reply holds the next cursor, up to ``limit`` episode rows as
        columns, the new evaluations and events, and the run's totals.
        """
        r, e, v = (max(0, int(cursor.get(k, 0))) for k in ("rows", "evals", "events"))
        rows = self.rows[r : r + limit]
        cols: list[tuple[Any, ...]] = list(zip(*rows, strict=True)) if rows else [()] * 7
        names = ("episode", "worker", "return", "length", "success", "epsilon", "wall")
        return {
            "cursor": {"rows": r + len(rows), "evals": len(self.evals), "events": len(self.events)},
            "rows": {name: list(col) for name, col in zip(names, cols, strict=True)},
            "evals": self.evals[e:],
            "events": self.events[v:],
            "run": {"algo": self.spec.algo, "env_id": self.spec.env_id, "episodes": self.spec.episodes},
            "steps": self.steps,
            "wall": time.monotonic() - self.t0,
            "finished": self.finished,
            "scalars": {},
        }

    def metrics(self) -> dict[str, Any]:
        cols: list[tuple[Any, ...]] = list(zip(*self.rows, strict=True)) if self.rows else [()] * 7
        names = ("episode", "worker", "return", "length", "success", "epsilon", "wall")
        return {name: list(col) for name, col in zip(names, cols, strict=True)}


def greedy_eval(policy: np.ndarray, env: Any, state_fn: Any, spec: RunSpec, salt: int) -> dict[str, float]:
    """Success rate and mean return of a greedy policy array (runs in a thread)."""
    table = policy.tolist()
    fn = (lambda s: table[s]) if state_fn is None else (lambda s: table[state_fn(s)])
    success = success_fn_for_id(spec.env_id)
    cap = getattr(env, "max_episode_steps", None) or min(spec.max_steps, 1_000)
    return evaluate(fn, env, spec.eval_episodes, seed=spec.seed + salt, max_steps=cap, success_fn=success)


def finite(x: float | None) -> float | None:
    """``x`` unless it is None or not finite (for JSON)."""
    return None if x is None or not math.isfinite(x) else x
