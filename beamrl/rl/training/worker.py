"""``Worker``: plays episodes on its own environment, learns on a local copy of the table,
and talks to the other processes once per batch of episodes, never per step.

Asynchronous one-step Q-learning (Mnih et al., 2016) for Q-learning, and the same
plumbing for SARSA, Expected SARSA and Monte Carlo. The hot loop::

    k = await call(recorder, ["next", index, table_version, want])   # a grant of k episodes (0: done)
    for each of the k episodes: play it on the local env, learning on the local table
    cast(qserver, ["td_fold", states, actions, scale, shift])        # the batch's TD updates, composed per
                                                                      #   cell (one worker: ["merge", ...])
    cast(recorder, ["episodes", index, rows])                         # the batch's episode rows
    at the same time: the next grant, and (every sync_every episodes) a fresh table
        table_version, table = await call(qserver, ["versioned_table"])

``want`` is how many episodes make about ``RunSpec.batch_steps`` env steps at the worker's
mean episode length so far. A restarted worker picks up where the run is: the table from
the QServer, its episode count (for its schedules) from the recorder.

The environment lives in the worker's own process (made from the run's spec), so a step
is a method call. Given ``env`` (the address of an ``EnvServer``, e.g. a sensor on another
board), the worker steps that instead, one call per step. A dashboard watches a worker as
it watches an ``EnvServer``: ``["info"]``, ``["render"]`` and ``["observe"]`` answer about
its environment as the last batch left it.
"""

from __future__ import annotations

import asyncio
import logging
import math
from functools import partial
from typing import Any

import numpy as np

from beamrl.api import call, cast, send
from beamrl.errors import CallTimeout, NoProc, ProcessCrashed, Rejected
from beamrl.gen_server import GenServer
from beamrl.reprs import short_repr
from beamrl.rl.agents import MonteCarlo
from beamrl.rl.agents.td import TDAgent
from beamrl.rl.envs.registry import facts, make
from beamrl.rl.exp import Exp
from beamrl.rl.training.agent_setup import make_agent, resume
from beamrl.rl.training.spec import RunSpec
from beamrl.rl.training.tabular import TableShape, table_shape

log = logging.getLogger("beamrl.rl")

YIELD_STEPS = 256
"""Env steps after which a batch lets the event loop run its other processes for a moment
(on the learner's node: the QServer and recorder answering the other workers)."""


class Worker(GenServer):
    """Plays batches of episodes on its environment and ships what it learns per batch.

    ``env`` is None for an environment of its own (made from the spec), or the address
    of an ``EnvServer`` to step through calls. ``table`` is the run's ``TableShape`` as
    data; without it the worker works it out from the environment's spaces.
    """

    async def init(
        self, spec: dict[str, Any], index: int, env: Any, qserver: Any, recorder: Any, table: Any = None
    ) -> None:
        self.spec = RunSpec.from_data(spec)
        self.index = index
        self.qserver, self.recorder = qserver, recorder
        self.remote_env = env
        self.env: Any = make(self.spec.env_id, **self.spec.env_kwargs) if env is None else None
        if table is not None:
            shape = TableShape.from_data(table)
        elif self.env is not None:
            shape = table_shape(self.env.observation_space, self.env.action_space)
        else:
            spaces = await call(env, ["spaces"])
            shape = table_shape(spaces["observation_space"], spaces["action_space"])
        self.agent: Any = make_agent(self.spec, shape, index)
        self.success = facts(self.spec.env_id).success
        hello = await call(recorder, ["hello", index, self.pid])
        resume(self.agent, hello["episodes"])
        await self._refresh()
        self.stopped = bool(hello["stop"])
        self.fault = False
        self.episode_seed = self.spec.seed * 1_000_003 + index * 10_007 + hello["episodes"]
        self.played_steps = 0  # env steps this worker played (its mean episode length sizes a batch)
        self.played_episodes = 0
        self.since_refresh = 0
        self.last: Exp | None = None
        self.granted: int | None = None  # episodes granted for the next batch, asked for with the last one
        self.sole = self.spec.workers == 1  # the table's only writer (see _ship)
        # one batch's shipment: its episodes for the recorder; with several workers, its folded TD updates
        self.rows: list[list[Any]] = []
        self.folded: dict[int, list[float]] = {}  # cell -> [scale, shift] (see _fold)
        self.width = shape.n_actions
        if not self.stopped:
            self.continue_with("batch")

    async def handle_continue(self, arg: Any) -> None:
        send(self.pid, "batch")

    async def handle_info(self, message: Any) -> None:
        if message != "batch" or self.stopped:
            return
        if self.fault:
            raise RuntimeError(f"injected fault in worker {self.index}: its sensor read garbage")
        granted = self.granted if self.granted is not None else await self._ask()
        if not granted:  # the budget is spent
            self.stopped = True
            return
        since_yield = 0
        for _ in range(int(granted)):
            ret, length, success = await self._episode()
            self.rows.append([ret, length, success, self._epsilon_played])
            self.played_steps += length
            self.played_episodes += 1
            since_yield += length
            if since_yield >= YIELD_STEPS:  # let the node's other processes answer (remote workers' calls)
                since_yield = 0
                await asyncio.sleep(0)
        self._ship()
        self.since_refresh += int(granted)
        refresh = self.since_refresh >= self.spec.sync_every
        if refresh:
            self.since_refresh = 0
        # the next grant and the table refresh in one round trip's time (a remote worker waits once)
        self.granted, _ = await asyncio.gather(self._ask(), self._refresh_if(refresh))
        send(self.pid, "batch")  # through the mailbox: stop, calls and casts get their turn

    async def _ask(self) -> int:
        """The recorder's grant: how many episodes to play next (0: the budget is spent).

        No timeout: the recorder answers after any evaluation it is running (bounded work).
        The version of the table copy goes along: the recorder reports each worker's lag.
        """
        granted: int = await call(self.recorder, ["next", self.index, self.table_version, self._want()], timeout=None)
        return granted

    async def _refresh_if(self, due: bool) -> None:
        if not due:
            return
        try:
            await self._refresh()
        except (NoProc, ProcessCrashed, CallTimeout) as exc:  # the QServer is restarting: keep the local copy
            log.info("worker %d: no table refresh after this batch (%s)", self.index, exc)

    def _want(self) -> int:
        """Episodes that make about ``batch_steps`` env steps at this worker's mean episode length."""
        if not self.played_episodes:
            return 1  # nothing known yet: one episode measures the length
        mean = max(1.0, self.played_steps / self.played_episodes)
        return max(1, math.ceil(self.spec.batch_steps / mean))

    async def _refresh(self) -> None:
        """Take a fresh copy of the shared table (and the version it is of)."""
        self.table_version, table = await call(self.qserver, ["versioned_table"])
        self.agent.q.assign(table)
        self.known_version, self.shipped = self.table_version, np.array(table, dtype=np.float64)

    def agent_epsilon(self) -> float:
        return float(getattr(self.agent, "epsilon", 0.0))

    async def _episode(self) -> tuple[float, int, bool]:
        """Play one episode, learning on the local table."""
        agent = self.agent
        self.episode_seed += 1
        self._epsilon_played = self.agent_epsilon()
        alpha = getattr(agent, "alpha", None)  # the step size this episode learns with
        if self.env is None:
            ret, length, success = await self._episode_through_calls()
        else:
            play = agent.play if isinstance(agent, TDAgent) else partial(_play_stepwise, agent)
            ret, length, self.last = play(self.env, self.episode_seed, self.spec.max_steps)
            success = bool(length and self.success(self.last))
        if not self.sole:  # several writers: fold the TD updates, cell by cell, for the QServer
            updates = agent.take_updates()
            if updates:
                self._fold(updates, self._alpha_of(updates, alpha))
        return ret, length, success

    def _fold(self, updates: list[tuple[Any, int, float]], alphas: list[float]) -> None:
        """Compose each cell's updates ``q <- (1 - alpha) q + alpha target``, in order, into one
        ``q <- scale q + shift``: applied to the shared value, it is the updates replayed there."""
        folded, width = self.folded, self.width
        for (s, a, target), alpha in zip(updates, alphas, strict=True):
            cell = int(s) * width + int(a)
            keep = 1.0 - alpha
            f = folded.get(cell)
            if f is None:
                folded[cell] = [keep, alpha * target]
            else:
                f[0] *= keep
                f[1] = f[1] * keep + alpha * target

    async def _episode_through_calls(self) -> tuple[float, int, bool]:
        """One episode on the ``EnvServer`` at ``remote_env``: a call per step."""
        agent, env = self.agent, self.remote_env
        exp = await call(env, ["reset", self.episode_seed])
        total, n = 0.0, 0
        while not exp.done and n < self.spec.max_steps:
            exp = await call(env, ["step", agent.act(exp.next_state)])
            agent.observe(exp)
            total += exp.reward
            n += 1
        agent.end_episode()
        self.last = exp
        return total, n, bool(n and self.success(exp))

    def _alpha_of(self, updates: list[tuple[Any, int, float]], episode_alpha: float | None) -> list[float]:
        """The step size of each of an episode's updates."""
        agent = self.agent
        if isinstance(agent, MonteCarlo):
            alpha: Any = agent.config.alpha
            if alpha is None:  # sample averages: the worker's own visit counts
                return [1.0 / agent._counts[(int(s), int(a))] for s, a, _ in updates]
        else:
            alpha = episode_alpha if episode_alpha is not None else agent.alpha
        return [float(alpha)] * len(updates)

    def _ship(self) -> None:
        """One cast of what the batch learnt to the QServer, one of its rows to the recorder.

        The table's only worker sends the cells its batch changed (``["merge", ...]``: taken as
        they are, so one node learns exactly what one agent would). Several workers send their
        TD updates folded per cell (``["td_fold", ...]``), which the QServer applies to its own
        values: asynchronous one-step Q-learning, the batch's updates applied in order against
        the shared table, not its copy (summing the changes that several copies made from the
        same values would move a shared cell several steps at once).
        """
        if self.sole:
            table = self.agent.q.to_array()
            change = table - self.shipped
            cells = np.flatnonzero(change)
            if cells.size:
                states, actions = np.divmod(cells, table.shape[1])
                values, deltas = table.reshape(-1)[cells], change.reshape(-1)[cells]
                cast(self.qserver, ["merge", states, actions, values, deltas, self.known_version])
                self.known_version += 1  # the version the QServer reaches if nothing else wrote meanwhile
            self.shipped = table
        elif self.folded:
            cells = np.fromiter(self.folded, dtype=np.int64, count=len(self.folded))
            scale, shift = np.array(list(self.folded.values())).T
            states, actions = np.divmod(cells, self.width)
            cast(self.qserver, ["td_fold", states, actions, scale, shift])
            self.folded = {}
        cast(self.recorder, ["episodes", self.index, self.rows])
        self.rows = []

    async def handle_cast(self, request: Any) -> None:
        match request:
            case ["stop"]:
                self.stopped = True
            case ["inject_fault"]:
                self.fault = True

    async def handle_call(self, request: Any, from_: Any) -> Any:
        match request:
            case ["stats"]:
                return {"index": self.index, "episodes": self.agent.episodes, "epsilon": self.agent_epsilon()}
            # watched like an EnvServer: its environment as the last batch left it
            case ["info"]:
                return {
                    "env_id": self.spec.env_id,
                    "episodes": self.played_episodes,
                    "steps": self.played_steps,
                    "done": True,
                }
            case ["render"]:
                return self.env.render() if self.env is not None else await call(self.remote_env, ["render"])
            case ["observe"]:
                return None if self.last is None else self.last.next_state
        raise Rejected(f"Worker does not understand {short_repr(request)}: use stats, info, render or observe")


def _play_stepwise(agent: Any, env: Any, seed: int, max_steps: int) -> tuple[float, int, Exp]:
    """One learning episode through ``act``/``observe`` (agents without a ``play`` of their own)."""
    exp = env.reset(seed=seed)
    total, n = 0.0, 0
    while not exp.done and n < max_steps:
        exp = env.step(agent.act(exp.next_state))
        agent.observe(exp)
        total += exp.reward
        n += 1
    agent.end_episode()
    return float(total), n, exp
