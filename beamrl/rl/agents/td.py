"""Temporal-difference control: Q-learning, SARSA and Expected SARSA on a Q-table.

Each agent turns a transition into one ``(state, action, target)`` from its own table
and applies it with ``QTable.td_update`` semantics (``q += alpha * (target - q)``):

=============== ==================================================================
Q-learning      ``r + gamma * max_a' Q(s', a')``
SARSA           ``r + gamma * Q(s', a')`` with ``a'`` the ε-greedy action taken next
Expected SARSA  ``r + gamma * sum_a' pi(a'|s') Q(s', a')`` under the ε-greedy policy
=============== ==================================================================

(the bootstrap term is dropped when ``s'`` is terminal; a time-limit truncation still
bootstraps).

Distributed use (an actor with a local copy of a shared table)::

    agent = QLearning(n_states, n_actions, QLearningConfig(record_updates=True))
    ... run episodes ...
    batch = agent.take_updates()                     # [(s, a, target), ...] since the last take
    states, actions, targets = as_update_arrays(batch)  # beamrl.rl.qserver's helper
    cast(qserver, ["td_update", states, actions, targets, agent.alpha])  # QTable.td_update semantics
    agent.q.assign(await call(qserver, ["table"]))   # refresh the local copy now and then

(``beamrl.rl.training.worker`` does exactly this.)

or pass ``updates_sink=callable`` to get each batch pushed when ``flush_every`` updates
are pending and at every episode end. With ``apply_locally=False`` the local table only
changes through ``assign`` (pure actor: the shared table is the only learner).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from beamrl.rl.agents.base import Agent
from beamrl.rl.exp import Exp
from beamrl.rl.qtable import DictQTable, QTable, Update
from beamrl.rl.schedules import Exponential, Schedule

__all__ = [
    "ExpectedSarsa",
    "ExpectedSarsaConfig",
    "QLearning",
    "QLearningConfig",
    "Sarsa",
    "SarsaConfig",
    "TDAgent",
    "TDConfig",
]


def _default_epsilon() -> Schedule:
    return Exponential(start=1.0, end=0.01, decay=0.999)


def _default_alpha() -> Schedule:
    return Exponential(start=0.2, end=0.01, decay=0.9997)


@dataclass
class TDConfig:
    """Hyper-parameters shared by the TD agents (defaults learn FrozenLake 4x4 and Taxi)."""

    #: step size in (0, 1], or a schedule of it over ``schedule_unit`` counts
    alpha: float | Schedule = field(default_factory=_default_alpha)
    #: discount factor in [0, 1]
    gamma: float = 0.99
    #: exploration rate over ``schedule_unit`` counts (a float means constant)
    epsilon: float | Schedule = field(default_factory=_default_epsilon)
    #: what the schedules count: finished episodes or observed steps
    schedule_unit: Literal["episode", "step"] = "episode"
    #: seed of the exploration and tie-breaking rngs (None: from the OS)
    seed: int | None = 0
    #: initial value of every Q(s, a) (optimism > 0 drives exploration)
    init: float = 0.0
    #: keep every (s, a, target) for ``take_updates`` / ``updates_sink``
    record_updates: bool = False
    #: apply updates to the agent's own table (False: a pure actor, see module doc)
    apply_locally: bool = True
    #: with an ``updates_sink``, push once this many updates are pending
    flush_every: int = 64


@dataclass
class QLearningConfig(TDConfig):
    """Q-learning hyper-parameters (off-policy: learns the greedy policy's values)."""


@dataclass
class SarsaConfig(TDConfig):
    """SARSA hyper-parameters (on-policy: learns the ε-greedy policy's values)."""


@dataclass
class ExpectedSarsaConfig(TDConfig):
    """Expected SARSA hyper-parameters (SARSA with the expectation over a')."""


def _as_schedule(x: float | Schedule) -> Callable[[int], float]:
    if callable(x):
        return x
    v = float(x)
    return lambda t: v


class TDAgent(Agent):
    """Common machinery of the one-step TD agents; subclasses define ``_target``."""

    def __init__(
        self,
        n_states: int | None,
        n_actions: int,
        config: TDConfig | None = None,
        *,
        q: QTable | DictQTable | None = None,
        state_fn: Callable[[Any], Any] | None = None,
        updates_sink: Callable[[list[Update]], None] | None = None,
    ) -> None:
        cfg = config if config is not None else self._default_config()
        if not 0.0 <= cfg.gamma <= 1.0:
            raise ValueError(f"gamma must lie in [0, 1], got {cfg.gamma}")
        if cfg.schedule_unit not in ("episode", "step"):
            raise ValueError(f"schedule_unit must be 'episode' or 'step', got {cfg.schedule_unit!r}")
        self.config = cfg
        if q is None:
            q = (
                DictQTable(n_actions, init=cfg.init, seed=cfg.seed)
                if n_states is None
                else QTable(n_states, n_actions, init=cfg.init, seed=cfg.seed)
            )
        elif q.n_actions != n_actions:
            raise ValueError(f"q has {q.n_actions} actions, expected {n_actions}")
        #: the agent's (local) Q-table
        self.q = q
        self.n_actions = n_actions
        #: maps an observation to the table's state (e.g. ``state_index(space)``)
        self.state_fn = state_fn
        self.updates_sink = updates_sink
        self._record = cfg.record_updates or updates_sink is not None
        self._pending: list[Update] = []
        self._eps_sched = _as_schedule(cfg.epsilon)
        self._alpha_sched = _as_schedule(cfg.alpha)
        self._rng = random.Random(cfg.seed)
        self._gamma = float(cfg.gamma)
        self.episodes = 0
        self.steps = 0
        self._next: tuple[Any, int] | None = None  # SARSA's chosen next (state, action)
        self._refresh()

    @staticmethod
    def _default_config() -> TDConfig:
        return TDConfig()

    def _refresh(self) -> None:
        t = self.episodes if self.config.schedule_unit == "episode" else self.steps
        #: current exploration rate
        self.epsilon = float(self._eps_sched(t))
        #: current step size
        self.alpha = float(self._alpha_sched(t))

    # --------------------------------------------------------------- acting
    def _s(self, obs: Any) -> Any:
        return obs if self.state_fn is None else self.state_fn(obs)

    def _explore(self, s: Any) -> int:
        if self._rng.random() < self.epsilon:
            return self._rng.randrange(self.n_actions)
        return self._greedy(s)

    def _greedy(self, s: Any) -> int:
        q = self.q
        if isinstance(q, QTable):
            return q._greedy(s)
        return q.greedy_action(s)

    def act(self, state: Any, greedy: bool = False) -> int:
        """ε-greedy action in ``state`` (greedy when asked)."""
        s = self._s(state)
        if greedy:
            return self._greedy(s)
        nxt = self._next
        if nxt is not None:
            self._next = None
            if nxt[0] == s:
                return nxt[1]
        return self._explore(s)

    # -------------------------------------------------------------- learning
    def _row(self, s: Any) -> list[float]:
        q = self.q
        if isinstance(q, QTable):
            return q._q[s].tolist()
        return q.values(s).tolist()

    def _target(self, s2: Any, exp: Exp) -> float:
        raise NotImplementedError

    def observe(self, exp: Exp) -> None:
        """One TD update from ``exp`` (its ``state``/``action`` from this agent's ``act``)."""
        s = self._s(exp.state)
        a = int(exp.action)
        s2 = self._s(exp.next_state)
        target = float(exp.reward) + self._target(s2, exp)
        if self.config.apply_locally:
            self.q.td_update_one(s, a, target, self.alpha)
        if self._record:
            self._pending.append((s, a, target))
            if self.updates_sink is not None and len(self._pending) >= self.config.flush_every:
                self.updates_sink(self.take_updates())
        self.steps += 1
        if self.config.schedule_unit == "step":
            self._refresh()

    def end_episode(self) -> None:
        """Advance the episode count (and the schedules); flush to the sink if any."""
        self._next = None
        self.episodes += 1
        if self.updates_sink is not None and self._pending:
            self.updates_sink(self.take_updates())
        self._refresh()

    # ----------------------------------------------------------- whole episodes
    def play(self, env: Any, seed: int | None = None, max_steps: float = math.inf) -> tuple[float, int, Exp]:
        """Play and learn one episode on ``env``; returns (return, length, last transition).

        The same episode as ``act``/``observe`` per step then ``end_episode`` (the same
        numbers drawn in the same order, the same table), in one loop without their
        per-step calls when the table is a dense ``QTable`` and the schedules count
        episodes; otherwise through ``act``/``observe``. Training's hot loop.
        """
        cfg = self.config
        kind = _INLINED.get(type(self)._target)  # a subclass with a target of its own goes stepwise
        if kind is None or not isinstance(self.q, QTable) or cfg.schedule_unit != "episode" or self.updates_sink:
            return self._play_stepwise(env, seed, max_steps)
        table = self.q
        q = table._q
        pick, rand, randrange = table._pick, self._rng.random, self._rng.randrange
        n_actions, eps, alpha, gamma = self.n_actions, self.epsilon, self.alpha, self._gamma
        state_fn, step = self.state_fn, env.step
        learn = cfg.apply_locally
        record = self._pending.append if self._record else None
        rows: dict[Any, list[float]] = {}  # the rows this episode touches, as Python floats (the same doubles)

        def row_of(state: Any) -> list[float]:
            row = rows.get(state)
            if row is None:
                row = rows[state] = q[state].tolist()
            return row

        exp = env.reset(seed=seed)
        obs = exp.next_state
        s = obs if state_fn is None else state_fn(obs)
        planned = -1  # SARSA's next action, chosen while learning from the last step
        total, n = 0.0, 0
        try:
            while not (exp.terminated or exp.truncated) and n < max_steps:
                here = rows.get(s) or row_of(s)
                if planned >= 0:
                    a, planned = planned, -1
                elif rand() < eps:
                    a = randrange(n_actions)
                else:  # QTable._pick, its common case inlined
                    best = max(here)
                    a = here.index(best) if here.count(best) == 1 else pick(here)
                exp = step(a)
                obs = exp.next_state
                s2 = obs if state_fn is None else state_fn(obs)
                if exp.terminated:
                    boot = 0.0
                else:
                    there = rows.get(s2) or row_of(s2)
                    if kind == "max":  # Q-learning
                        boot = gamma * max(there)
                    elif kind == "next":  # SARSA: the ε-greedy action taken next
                        a2 = randrange(n_actions) if rand() < eps else pick(there)
                        if not exp.truncated:
                            planned = a2
                        boot = gamma * there[a2]
                    else:  # Expected SARSA
                        boot = gamma * ((1.0 - eps) * max(there) + eps * sum(there) / len(there))
                target = float(exp.reward) + boot
                if learn:
                    here[a] += alpha * (target - here[a])
                if record is not None:
                    record((s, a, target))
                total += exp.reward
                n += 1
                s = s2
        finally:
            if learn:
                for state, row in rows.items():
                    q[state] = row
        self.steps += n
        table.version += n if learn else 0
        self.end_episode()
        return float(total), n, exp

    def _play_stepwise(self, env: Any, seed: int | None, max_steps: float) -> tuple[float, int, Exp]:
        exp = env.reset(seed=seed)
        total, n = 0.0, 0
        while not (exp.terminated or exp.truncated) and n < max_steps:
            exp = env.step(self.act(exp.next_state))
            self.observe(exp)
            total += exp.reward
            n += 1
        self.end_episode()
        return float(total), n, exp

    def pending_updates(self) -> list[Update]:
        """The recorded ``(s, a, target)`` not yet taken (a copy)."""
        return list(self._pending)

    def take_updates(self) -> list[Update]:
        """Return and clear the recorded ``(s, a, target)`` updates, oldest first."""
        out, self._pending = self._pending, []
        return out

    def policy(self) -> np.ndarray:
        """Greedy action per state (dense tables; a ``DictQTable`` gives its written states)."""
        return self.q.greedy_actions()


class QLearning(TDAgent):
    """Off-policy TD control: bootstraps on ``max_a' Q(s', a')``."""

    config: QLearningConfig

    @staticmethod
    def _default_config() -> TDConfig:
        return QLearningConfig()

    def _target(self, s2: Any, exp: Exp) -> float:
        if exp.terminated:
            return 0.0
        return self._gamma * max(self._row(s2))


class Sarsa(TDAgent):
    """On-policy TD control on (s, a, r, s', a'); ``a'`` is chosen here and taken next."""

    config: SarsaConfig

    @staticmethod
    def _default_config() -> TDConfig:
        return SarsaConfig()

    def _target(self, s2: Any, exp: Exp) -> float:
        if exp.terminated:
            return 0.0
        a2 = self._explore(s2)
        if not exp.truncated:
            self._next = (s2, a2)
        return self._gamma * self._row(s2)[a2]


class ExpectedSarsa(TDAgent):
    """TD control on the expected value of ``Q(s', ·)`` under the ε-greedy policy."""

    config: ExpectedSarsaConfig

    @staticmethod
    def _default_config() -> TDConfig:
        return ExpectedSarsaConfig()

    def _target(self, s2: Any, exp: Exp) -> float:
        if exp.terminated:
            return 0.0
        row = self._row(s2)
        eps = self.epsilon
        # greedy actions share (1 - eps) and all share eps: ties at the max don't matter
        return self._gamma * ((1.0 - eps) * max(row) + eps * sum(row) / len(row))


#: the targets ``TDAgent.play`` inlines, by the ``_target`` that defines them
_INLINED: dict[Callable[..., float], str] = {
    QLearning._target: "max",
    Sarsa._target: "next",
    ExpectedSarsa._target: "expected",
}
