"""``Recorder``: counts episodes, evaluates the greedy policy, fires the chaos plan, ends the run."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Any

import numpy as np

from beamrl.api import call, cast, monitor
from beamrl.errors import CallTimeout, NoProc, ProcessCrashed, Rejected
from beamrl.gen_server import GenServer, NoReply
from beamrl.process import Down, format_reason
from beamrl.reprs import short_repr
from beamrl.rl.envs.registry import facts, make
from beamrl.rl.training.chaos import inject
from beamrl.rl.training.progress import Progress, say
from beamrl.rl.training.spec import RunSpec
from beamrl.rl.training.tabular import ExactEval, TableShape, greedy_eval, table_shape

log = logging.getLogger("beamrl.rl")

#: the columns of ``["metrics"]``, one row per reported episode
METRICS = ("episode", "worker", "return", "length", "success", "epsilon", "wall")


class Recorder(GenServer):
    """Counts episodes, evaluates the greedy policy, injects the demo's faults, ends the run.

    Requests: ``["hello", index, pid]`` (a worker starting), ``["next", index, table_version, want]``
    (how many episodes, up to ``want``, may it play now: exactly the budget is granted, and a grant
    ends at the next evaluation; without ``want``: may it play one, True or False), ``["wait"]`` (replies with
    the summary when the run is over), ``["summary"]``, ``["metrics"]`` (columns),
    ``["evals"]``, ``["final_table"]`` (the result: the table that met ``stop_at_success``, else the table
    once every granted episode had reported), ``["interrupt"]`` (Ctrl-C: end the run now, keep what
    was learnt, reply with the summary marked ``interrupted``), ``["metrics", cursor]`` (live metrics after
    ``cursor``, see ``metrics_since``).
    Casts: ``["episodes", index, [[ret, length, success, epsilon], ...]]`` (a worker's batch),
    ``["episode", index, ret, length, success, epsilon]`` (one), ``["event", text]`` (recorded
    in the summary's ``events``). A worker whose node is lost for good (its ``DOWN`` says
    ``noconnection``) is recorded as an event; the others finish the budget.

    ``eval_env`` (an env object, so only for a recorder started on its own node) and
    ``table`` (a ``TableShape`` as data) spare it building them again; without them it
    makes the env from the spec.
    """

    async def init(
        self,
        spec: dict[str, Any],
        n_workers: int,
        qserver: Any = "qserver",
        progress: bool = False,
        *,
        table: Any = None,
        eval_env: Any = None,
    ) -> None:
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
        self.parked: list[tuple[int, Any, int | None]] = []  # workers asking for episodes while the rest are out
        self.events: list[dict[str, Any]] = []
        #: faults due for a worker that had not said hello yet (a remote one still starting)
        self.pending_faults: list[tuple[int, dict[str, Any]]] = []
        self.granted = 0
        self.in_flight = [0] * n_workers  # granted episodes not reported yet, per worker
        self.final_table: Any = None
        self.t0 = time.monotonic()
        self.time_to_success: float | None = None
        self.episodes_to_success: int | None = None
        self.interrupted = False
        #: a greedy success rate that counts as solved: the run's stop target, else the env's
        self.success_target = self.spec.stop_at_success or facts(self.spec.env_id).success_target
        if eval_env is None:
            eval_env = make(self.spec.env_id, **self.spec.env_kwargs)
        self.eval_env = eval_env
        #: periodic evaluations computed from the env's model where it has one, else sampled
        self.exact = ExactEval.build(eval_env, self.spec.env_id, self.spec.max_steps)
        self.table = (
            TableShape.from_data(table)
            if table is not None
            else table_shape(eval_env.observation_space, eval_env.action_space)
        )
        self.progress = Progress(self.spec) if progress else None
        self.table_versions: dict[int, int] = {}  # worker -> version of its table copy

    async def terminate(self, reason: Any) -> None:
        if self.progress is not None:
            self.progress.close()

    async def handle_call(self, request: Any, from_: Any) -> Any:
        match request:
            case ["hello", index, pid]:
                if not 0 <= index < self.n_workers:
                    raise Rejected(f"worker index {index} outside 0..{self.n_workers - 1}")
                if index in self.workers:
                    self.restarts[index] += 1
                    self.events.append({"episode": len(self.rows), "event": f"worker {index} restarted"})
                    say(f"  worker {index} is back as {pid} on node {pid.node!r}: it resumes from the shared table")
                self.workers[index] = pid
                monitor(pid)
                for at, chaos in [f for f in self.pending_faults if int(f[1]["fault"]) == index]:
                    self.pending_faults.remove((at, chaos))
                    self.events += await inject(self.node, self.workers, at, chaos)
                return {"episodes": self.per_worker[index], "stop": self.finished}
            case ["next", index, *rest]:
                index, version, want = self._next_request(index, rest)
                if version is not None:  # the version of the table it plays with
                    self.table_versions[index] = version
                granted = self._grant(want or 1)
                if granted:
                    self.in_flight[index] += granted
                    return granted if want else True
                if not self.finished and any(self.in_flight):
                    # the budget is handed out, not played: a worker lost meanwhile gives its episodes
                    # back, and this one plays them; so the answer waits until that is decided
                    self.parked.append((index, from_, want))
                    return NoReply
                return 0 if want else False
            case ["wait"]:
                if self.finished:
                    return self.summary()
                self.waiting.append(from_)
                return NoReply
            case ["summary"]:
                return self.summary()
            case ["metrics"]:
                return self.metrics()
            case ["metrics", dict(cursor)]:  # live metrics
                return self.metrics_since(cursor, await self._table_version())
            case ["evals"]:
                return list(self.evals)
            case ["final_table"]:
                return self.final_table
            case ["interrupt"]:
                self.interrupted = not self.finished
                await self._finish()
                return self.summary()
        raise Rejected(f"Recorder does not understand {short_repr(request)}")

    async def handle_cast(self, request: Any) -> None:
        match request:
            case ["episode", index, ret, length, success, epsilon]:
                await self._episode(int(index), float(ret), int(length), bool(success), float(epsilon))
            case ["episodes", int(index), list(rows)] if 0 <= index < self.n_workers:
                try:
                    played = [(float(r), int(n), bool(s), float(e)) for r, n, s, e in rows]
                except (TypeError, ValueError) as exc:
                    log.warning("recorder: dropped a bad batch of episodes from worker %d: %.200s", index, exc)
                    return
                for ret, length, success, epsilon in played:
                    await self._episode(index, ret, length, success, epsilon)
            case ["event", str(text)]:  # something the run's driver saw (a node lost at start-up)
                self.events.append({"episode": len(self.rows), "event": text[:300]})

    async def handle_info(self, message: Any) -> None:
        if isinstance(message, Down):
            index = next((i for i, p in self.workers.items() if p == message.pid), None)
            if index is not None:  # its unfinished episode will never report: grant it again
                self.granted -= self.in_flight[index]
                self.in_flight[index] = 0
                self._answer_parked()
            if index is None or self.finished:
                return
            if message.reason == "noconnection":  # its node is gone, and its supervisor with it
                del self.workers[index]
                left = len(self.workers)
                self.events.append(
                    {"episode": len(self.rows), "event": f"worker {index} lost: node {message.pid.node!r} is gone"}
                )
                say(
                    f"! worker {index} is lost: its node {message.pid.node!r} is gone (with the supervisor that "
                    f"would restart it); the run goes on with {left} worker{'s' if left != 1 else ''}"
                )
            else:
                say(
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
        if self.progress is not None:
            self.progress.episode(n, ret, length, epsilon)
        spec = self.spec
        for chaos in spec.chaos:
            if chaos.get("at") == n:
                if "fault" in chaos and int(chaos["fault"]) not in self.workers:  # not up yet: when it is
                    self.pending_faults.append((n, chaos))
                else:
                    self.events += await inject(self.node, self.workers, n, chaos)
        if n % spec.eval_every == 0:
            await self._evaluate(n)
        done = (spec.episodes is not None and n >= spec.episodes) or (
            spec.steps is not None and self.steps >= spec.steps
        )
        if done:
            await self._finish()
        self._answer_parked()

    async def _evaluate(self, episode: int) -> None:
        table = await call(self.qserver, ["table"])
        spec = self.spec
        policy = np.argmax(table, axis=1)
        if self.exact is not None:  # from the env's model: under a millisecond, no thread
            result = self.exact.run(policy, spec.eval_episodes)
        else:
            result = await asyncio.to_thread(
                greedy_eval,
                policy,
                self.eval_env,
                self.table,
                spec.env_id,
                spec.eval_episodes,
                spec.seed + episode,
                spec.max_steps,
            )
        result.update(episode=float(episode), wall=time.monotonic() - self.t0)
        self.evals.append(result)
        passed = self.success_target is not None and result["success_rate"] >= self.success_target
        if passed and self.time_to_success is None:
            self.time_to_success, self.episodes_to_success = result["wall"], episode
        target = spec.stop_at_success
        if target is not None and result["success_rate"] >= target:
            self.final_table = table  # the run's result is the table that passed
            say(f"  episode {episode}: greedy success {result['success_rate']:.3f} >= {target}: stopping")
            await self._finish()

    def _next_request(self, index: Any, rest: list[Any]) -> tuple[int, int | None, int | None]:
        """``["next", index, version?, want?]`` checked: (index, version or None, want or None)."""
        if not _is_int(index) or not 0 <= index < self.n_workers:
            raise Rejected(f"next: worker index must be an integer in 0..{self.n_workers - 1}, got {short_repr(index)}")
        if len(rest) > 2 or not all(_is_int(x) for x in rest):
            raise Rejected(f"next takes [index, table_version, episodes_wanted], integers; got {short_repr(rest)}")
        index = int(index)
        version = int(rest[0]) if rest else None
        want = int(rest[1]) if len(rest) > 1 else None
        if want is not None and want < 1:
            raise Rejected(f"next: episodes wanted must be >= 1, got {want}")
        return index, version, want

    def _grant(self, want: int) -> int:
        """How many episodes (up to ``want``) a worker may play now. Exactly ``episodes`` are
        granted in all, and a grant ends at the next evaluation, so one worker's batch stops
        where the evaluation looks at the table."""
        spec = self.spec
        if self.finished:
            return 0
        if spec.steps is not None:
            if self.steps >= spec.steps:
                return 0
            if self.rows:  # the steps left, less what the episodes out will take, in episodes
                mean = self.steps / len(self.rows)
                left = spec.steps - self.steps - sum(self.in_flight) * mean
                if left <= 0 and any(self.in_flight):
                    return 0
                want = min(want, max(1, math.ceil(left / mean)))
        if spec.episodes is not None:
            want = min(want, spec.episodes - self.granted)
        granted = min(want, spec.eval_every - self.granted % spec.eval_every)
        if granted <= 0:
            return 0
        self.granted += granted
        return granted

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
        self._answer_parked()

    def _answer_parked(self) -> None:
        """Answer the workers waiting for an episode: granted while any is left, else no once none is out."""
        while self.parked:
            index, from_, want = self.parked[0]
            granted = self._grant(want or 1)
            if not granted:
                break
            self.parked.pop(0)
            self.in_flight[index] += granted
            self.node.reply(from_, granted if want else True)
        if self.parked and (self.finished or not any(self.in_flight)):
            for _index, from_, want in self.parked:
                self.node.reply(from_, 0 if want else False)
            self.parked.clear()

    def summary(self) -> dict[str, Any]:
        wall = time.monotonic() - self.t0
        return {
            "episodes": len(self.rows),
            "steps": self.steps,
            "wall_seconds": wall,
            "steps_per_second": self.steps / wall if wall > 0 else 0.0,
            "worker_restarts": list(self.restarts),
            "last_eval": self.evals[-1] if self.evals else None,
            "success_target": self.success_target,
            "time_to_success": self.time_to_success,
            "episodes_to_success": self.episodes_to_success,
            "events": list(self.events),
            "finished": self.finished,
            "interrupted": self.interrupted,
        }

    async def _table_version(self) -> int | None:
        """The shared table's version now, for distributed runs' parameter lag (None: not asked)."""
        if self.n_workers < 2 or not self.table_versions:
            return None
        try:
            version: int = await call(self.qserver, ["version"], timeout=1.0)
        except (NoProc, ProcessCrashed, CallTimeout):  # restarting: no lag this time
            return None
        return version

    def metrics_since(
        self, cursor: dict[str, Any], table_version: int | None = None, limit: int = 20_000
    ) -> dict[str, Any]:
        """Live metrics for dashboards: what was added after ``cursor``.

        ``cursor`` is ``{"rows": r, "evals": e, "events": v}`` (counts already read; ``{}``
        at first). The reply holds the next cursor, up to ``limit`` episode rows as
        columns, the new evaluations and events, the run's totals and ``scalars``: with
        ``table_version`` (the shared table's now), ``param_lag/worker-i`` is how many
        writes each worker's table copy is behind it.
        """
        r, e, v = (max(0, int(cursor.get(k, 0))) for k in ("rows", "evals", "events"))
        scalars: dict[str, list[list[float]]] = {}
        if table_version is not None:
            for index, copy in sorted(self.table_versions.items()):
                scalars[f"param_lag/worker-{index}"] = [[len(self.rows), max(0, table_version - copy)]]
        rows = self.rows[r : r + limit]
        cols: list[tuple[Any, ...]] = list(zip(*rows, strict=True)) if rows else [()] * len(METRICS)
        return {
            "cursor": {"rows": r + len(rows), "evals": len(self.evals), "events": len(self.events)},
            "rows": {name: list(col) for name, col in zip(METRICS, cols, strict=True)},
            "evals": self.evals[e:],
            "events": self.events[v:],
            "run": {"algo": self.spec.algo, "env_id": self.spec.env_id, "episodes": self.spec.episodes},
            "steps": self.steps,
            "wall": time.monotonic() - self.t0,
            "finished": self.finished,
            "scalars": scalars,
        }

    def metrics(self) -> dict[str, Any]:
        cols: list[tuple[Any, ...]] = list(zip(*self.rows, strict=True)) if self.rows else [()] * 7
        return {name: list(col) for name, col in zip(METRICS, cols, strict=True)}


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)
