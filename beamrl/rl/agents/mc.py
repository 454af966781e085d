"""First-visit Monte Carlo control with ε-soft policies (Sutton & Barto §5.4).

The agent stores the episode's ``(s, a, r)`` in ``observe`` and learns in
``end_episode``: for the first visit of each ``(s, a)`` the return ``G`` that followed
becomes a target, applied through ``QTable.td_update`` with step ``1/N(s, a)`` (the
sample average) or a constant ``alpha``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from beamrl.rl.agents.base import Agent
from beamrl.rl.agents.td import _as_schedule
from beamrl.rl.exp import Exp
from beamrl.rl.qtable import DictQTable, QTable, Update
from beamrl.rl.schedules import Exponential, Schedule

__all__ = ["MonteCarlo", "MonteCarloConfig"]


def _default_epsilon() -> Schedule:
    return Exponential(start=1.0, end=0.05, decay=0.9995)


@dataclass
class MonteCarloConfig:
    """First-visit MC control hyper-parameters (defaults learn Blackjack).

    On FrozenLake use ``alpha=0.02, init=1.0``: sample averages keep early, pessimistic
    returns forever and can lock in a poor action.
    """

    #: discount factor in [0, 1]
    gamma: float = 0.99
    #: exploration rate per finished episode (a float means constant)
    epsilon: float | Schedule = field(default_factory=_default_epsilon)
    #: constant step size in (0, 1]; None averages the returns (step 1/N(s, a))
    alpha: float | None = None
    #: seed of the exploration and tie-breaking rngs (None: from the OS)
    seed: int | None = 0
    #: initial value of every Q(s, a)
    init: float = 0.0
    #: keep every (s, a, G) target for ``take_updates`` (ship with a constant alpha)
    record_updates: bool = False


class MonteCarlo(Agent):
    """On-policy first-visit MC control; learns only at episode ends."""

    def __init__(
        self,
        n_states: int | None,
        n_actions: int,
        config: MonteCarloConfig | None = None,
        *,
        q: QTable | DictQTable | None = None,
        state_fn: Callable[[Any], Any] | None = None,
    ) -> None:
        cfg = config if config is not None else MonteCarloConfig()
        if not 0.0 <= cfg.gamma <= 1.0:
            raise ValueError(f"gamma must lie in [0, 1], got {cfg.gamma}")
        if cfg.alpha is not None and not 0.0 < cfg.alpha <= 1.0:
            raise ValueError(f"alpha must lie in (0, 1] or be None, got {cfg.alpha}")
        self.config = cfg
        if q is None:
            q = (
                DictQTable(n_actions, init=cfg.init, seed=cfg.seed)
                if n_states is None
                else QTable(n_states, n_actions, init=cfg.init, seed=cfg.seed)
            )
        #: the agent's Q-table
        self.q = q
        self.n_actions = n_actions
        #: maps an observation to the table's state (e.g. ``state_index(space)``)
        self.state_fn = state_fn
        self._counts: dict[tuple[Any, int], int] = {}
        self._episode: list[tuple[Any, int, float]] = []
        self._pending: list[Update] = []
        self._eps_sched = _as_schedule(cfg.epsilon)
        self._rng = random.Random(cfg.seed)
        self.episodes = 0
        self.steps = 0
        #: current exploration rate
        self.epsilon = float(self._eps_sched(0))

    def _s(self, obs: Any) -> Any:
        return obs if self.state_fn is None else self.state_fn(obs)

    def _greedy(self, s: Any) -> int:
        q = self.q
        return q._greedy(s) if isinstance(q, QTable) else q.greedy_action(s)

    def act(self, state: Any, greedy: bool = False) -> int:
        """ε-greedy action in ``state`` (greedy when asked)."""
        s = self._s(state)
        if not greedy and self._rng.random() < self.epsilon:
            return self._rng.randrange(self.n_actions)
        return self._greedy(s)

    def observe(self, exp: Exp) -> None:
        """Remember ``(s, a, r)``; learning waits for ``end_episode``."""
        self._episode.append((self._s(exp.state), int(exp.action), float(exp.reward)))
        self.steps += 1

    def end_episode(self) -> None:
        """First-visit returns of the finished episode become targets; ε advances."""
        ep = self._episode
        self._episode = []
        if ep:
            gamma = self.config.gamma
            g = 0.0
            returns = [0.0] * len(ep)
            for i in range(len(ep) - 1, -1, -1):
                g = ep[i][2] + gamma * g
                returns[i] = g
            seen: set[tuple[Any, int]] = set()
            states, actions, targets, alphas = [], [], [], []
            for (s, a, _), g_i in zip(ep, returns, strict=True):
                key = (s, a)
                if key in seen:
                    continue
                seen.add(key)
                n = self._counts.get(key, 0) + 1
                self._counts[key] = n
                states.append(s)
                actions.append(a)
                targets.append(g_i)
                alphas.append(1.0 / n if self.config.alpha is None else self.config.alpha)
            self.q.td_update(states, actions, targets, np.array(alphas))
            if self.config.record_updates:
                self._pending.extend(zip(states, actions, targets, strict=True))
        self.episodes += 1
        self.epsilon = float(self._eps_sched(self.episodes))

    def take_updates(self) -> list[Update]:
        """Return and clear the recorded ``(s, a, G)`` targets, oldest first."""
        out, self._pending = self._pending, []
        return out

    def policy(self) -> np.ndarray:
        """Greedy action per state."""
        return self.q.greedy_actions()
