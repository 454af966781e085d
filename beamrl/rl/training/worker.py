"""``Worker``: plays episodes against its EnvServer, learns on a local copy of the table,
and ships its TD targets to the QServer after each episode.

Asynchronous one-step Q-learning (Mnih et al., 2016) for Q-learning, and the same
plumbing for SARSA, Expected SARSA and Monte Carlo. A restarted worker picks up where
the run is: the table from the QServer, its episode count (for its schedules) from the
recorder.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from beamrl.api import call, cast, send
from beamrl.errors import CallTimeout, NoProc, ProcessCrashed, Rejected
from beamrl.gen_server import GenServer
from beamrl.reprs import short_repr
from beamrl.rl.agents import MonteCarlo
from beamrl.rl.envs.registry import facts
from beamrl.rl.qserver import as_update_arrays
from beamrl.rl.training.agent_setup import make_agent, resume
from beamrl.rl.training.spec import RunSpec
from beamrl.rl.training.tabular import TableShape, table_shape

log = logging.getLogger("beamrl.rl")


class Worker(GenServer):
    """Plays episodes against its EnvServer and ships what it learns to the QServer.

    ``table`` is the run's ``TableShape`` as data; without it the worker asks its
    EnvServer for the spaces and works it out.
    """

    async def init(
        self, spec: dict[str, Any], index: int, env: Any, qserver: Any, recorder: Any, table: Any = None
    ) -> None:
        self.spec = RunSpec.from_data(spec)
        self.index = index
        self.env, self.qserver, self.recorder = env, qserver, recorder
        if table is not None:
            shape = TableShape.from_data(table)
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
        if not self.stopped:
            self.continue_with("episode")

    async def handle_continue(self, arg: Any) -> None:
        send(self.pid, "episode")

    async def handle_info(self, message: Any) -> None:
        if message != "episode" or self.stopped:
            return
        # no timeout: the recorder answers after any evaluation it is running (bounded work)
        # the table version it plays with goes along: the recorder reports each worker's lag [dashboard]
        if not await call(self.recorder, ["next", self.index, self.table_version], timeout=None):  # budget spent
            self.stopped = True
            return
        ret, length, success = await self._episode()
        cast(self.recorder, ["episode", self.index, ret, length, success, float(self.agent_epsilon())])
        if self.agent.episodes % self.spec.sync_every == 0:
            try:
                await self._refresh()
            except (NoProc, ProcessCrashed, CallTimeout) as exc:  # the QServer is restarting: keep the local copy
                log.info("worker %d: no table refresh this episode (%s)", self.index, exc)
        send(self.pid, "episode")  # through the mailbox: stop and calls get their turn

    async def _refresh(self) -> None:
        """Take a fresh copy of the shared table (and the version it is of)."""
        self.table_version, table = await call(self.qserver, ["versioned_table"])
        self.agent.q.assign(table)

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
        raise Rejected(f"Worker does not understand {short_repr(request)}")
