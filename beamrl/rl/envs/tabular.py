"""``TabularEnv``: a finite MDP stepped from precomputed tables (FrozenLake, Taxi, CliffWalking).

Subclasses build ``P[s][a] -> [(prob, next_state, reward, terminated)]`` and the initial
state distribution; this class turns them into lookup tables once, so that ``step`` is a
table lookup plus one uniform draw. Draws follow gymnasium's ``categorical_sample``
(``argmax(cumsum(p) > u)`` with ``u = rng.random()``, one draw per step and per reset),
so a seeded native env replays a seeded gymnasium env exactly.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from typing import Any

import numpy as np

from beamrl.rl.env import Env
from beamrl.rl.errors import InvalidAction
from beamrl.rl.exp import Exp
from beamrl.rl.spaces import Discrete, np_random

Transitions = dict[int, dict[int, list[tuple[float, int, float, bool]]]]


@dataclass(frozen=True, slots=True)
class TabularArrays:
    """``P`` as dense arrays for vectorised stepping; ``K`` is the most outcomes of any (s, a)."""

    cum: np.ndarray  #: (S, A, K) float64 cumulative probabilities, padded with -inf
    next_state: np.ndarray  #: (S, A, K) int64
    reward: np.ndarray  #: (S, A, K) float64
    terminated: np.ndarray  #: (S, A, K) bool
    prob: np.ndarray  #: (S, A, K) float64
    init_cum: np.ndarray  #: (S,) float64 cumulative initial-state distribution


def first_above(cum: tuple[float, ...] | list[float], u: float) -> int:
    """``np.argmax(np.asarray(cum) > u)``: the first index with ``cum[i] > u``, else 0."""
    i = bisect_right(cum, u)
    return 0 if i == len(cum) else i


class TabularEnv(Env):
    """A discrete MDP given by ``P``: Discrete observations (Python ints), Discrete actions.

    ``reward`` in the returned ``Exp`` is a float (gymnasium returns the int in ``P``);
    ``info`` is ``{"prob": p}``, the probability of the transition taken.
    """

    P: Transitions

    def __init__(
        self,
        P: Transitions,
        initial: np.ndarray,
        *,
        max_episode_steps: int | None,
        env_id: str,
    ) -> None:
        self.P = P
        n_states, n_actions = len(P), len(P[0])
        self.observation_space = Discrete(n_states)
        self.action_space = Discrete(n_actions)
        self.max_episode_steps = max_episode_steps
        self.env_id = env_id
        self._table = [[self._compile(P[s][a]) for a in range(n_actions)] for s in range(n_states)]
        self._init_cum: list[float] = np.cumsum(initial).tolist()
        self._initial = np.asarray(initial, dtype=np.float64)
        self._rng: np.random.Generator | None = None
        self._s: int | None = None
        self._elapsed = 0
        self.lastaction: int | None = None

    @staticmethod
    def _compile(outcomes: list[tuple[float, int, float, bool]]) -> tuple[Any, ...]:
        cum = tuple(np.cumsum([o[0] for o in outcomes]).tolist())
        outs = tuple((float(p), int(ns), float(r), bool(t)) for p, ns, r, t in outcomes)
        return cum, outs

    # -- randomness ----------------------------------------------------------------------

    @property
    def np_random(self) -> np.random.Generator:
        """The env's generator; seeded by ``reset(seed=...)``, from fresh entropy otherwise."""
        if self._rng is None:
            self._rng = np_random(None)
        return self._rng

    @np_random.setter
    def np_random(self, rng: np.random.Generator) -> None:
        self._rng = rng

    # -- Env -----------------------------------------------------------------------------

    @property
    def s(self) -> int | None:
        """The current state (None before the first ``reset``)."""
        return self._s

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> Exp:
        if seed is not None:
            self._rng = np_random(seed)
        self._s = first_above(self._init_cum, self.np_random.random())
        self._elapsed = 0
        self.lastaction = None
        return Exp(next_state=self._s, info=self._reset_info())

    def _reset_info(self) -> dict[str, Any]:
        return {"prob": 1}

    def check_action(self, action: Any) -> int:
        """``action`` as an int, or ``InvalidAction`` naming it and the space."""
        n = self.action_space.n
        if isinstance(action, int | np.integer) and not isinstance(action, bool | np.bool_) and 0 <= action < n:
            return int(action)
        raise InvalidAction(f"action {action!r} is not in the action space {self.action_space!r}")

    def step(self, action: Any) -> Exp:
        if action.__class__ is not int or not 0 <= action < self.action_space.n:
            action = self.check_action(action)
        s = self._s
        if s is None:
            raise RuntimeError(f"{self.env_id}: call reset() before step()")
        cum, outs = self._table[s][action]
        i = bisect_right(cum, self.np_random.random())
        p, ns, r, t = outs[0 if i == len(cum) else i]
        self._s = ns
        self.lastaction = action
        self._elapsed += 1
        limit = self.max_episode_steps
        return Exp(s, action, r, ns, t, limit is not None and self._elapsed >= limit, {"prob": p})

    # -- vectorisation -------------------------------------------------------------------

    def arrays(self) -> TabularArrays:
        """``P`` as dense arrays (see ``TabularArrays``); used by the vector env."""
        n_states, n_actions = len(self._table), len(self._table[0])
        k = max(len(cum) for row in self._table for cum, _ in row)
        cum = np.full((n_states, n_actions, k), -np.inf)
        nxt = np.zeros((n_states, n_actions, k), dtype=np.int64)
        rew = np.zeros((n_states, n_actions, k))
        term = np.zeros((n_states, n_actions, k), dtype=bool)
        prob = np.zeros((n_states, n_actions, k))
        for s, row in enumerate(self._table):
            for a, (c, outs) in enumerate(row):
                m = len(c)
                cum[s, a, :m] = c
                nxt[s, a, :m] = [o[1] for o in outs]
                rew[s, a, :m] = [o[2] for o in outs]
                term[s, a, :m] = [o[3] for o in outs]
                prob[s, a, :m] = [o[0] for o in outs]
        return TabularArrays(cum, nxt, rew, term, prob, np.asarray(self._init_cum))
