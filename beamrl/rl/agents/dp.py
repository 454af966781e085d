"""Dynamic programming on a known model: value iteration and policy iteration.

The model is gymnasium's ``P[s][a] -> [(prob, next_state, reward, terminated), ...]``
(native tabular envs expose it as ``env.P``)::

    vi = ValueIteration(ValueIterationConfig(gamma=0.99)).plan(env.P, 16, 4)
    vi.policy()          # greedy action per state
    vi.V, vi.Q           # state and action values
    vi.act(state)        # the planned action

A transition flagged ``terminated`` contributes its reward and no bootstrap.
``finite_horizon_return`` evaluates a policy exactly under a time limit, which is how
FrozenLake's success rate (reward 1 at the goal) can be measured without episodes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from beamrl.rl.agents.base import Agent

__all__ = [
    "PolicyIteration",
    "PolicyIterationConfig",
    "ValueIteration",
    "ValueIterationConfig",
    "finite_horizon_return",
    "model_arrays",
    "policy_evaluation",
]

Model = Mapping[int, Mapping[int, Sequence[tuple[float, int, float, bool]]]] | Sequence[Any]


def model_arrays(P: Model, n_states: int, n_actions: int) -> tuple[np.ndarray, np.ndarray]:
    """``(T, R)``: ``T[s, a, s']`` = P(s' and not terminated), ``R[s, a]`` = expected reward."""
    T = np.zeros((n_states, n_actions, n_states))
    R = np.zeros((n_states, n_actions))
    for s in range(n_states):
        try:
            row = P[s]
        except (KeyError, IndexError):
            raise ValueError(f"the model P has no entry for state {s} of {n_states}") from None
        for a in range(n_actions):
            try:
                outcomes = row[a]
            except (KeyError, IndexError):
                raise ValueError(f"the model P has no entry for P[{s}][{a}]") from None
            total = 0.0
            for prob, s2, r, term in outcomes:
                s2 = int(s2)
                if not 0 <= s2 < n_states:
                    raise ValueError(f"P[{s}][{a}] leads to state {s2}, outside [0, {n_states})")
                total += prob
                R[s, a] += prob * r
                if not term:
                    T[s, a, s2] += prob
            if abs(total - 1.0) > 1e-6:
                raise ValueError(f"P[{s}][{a}]'s probabilities sum to {total}, not 1")
    return T, R


def _check(gamma: float, theta: float) -> None:
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must lie in [0, 1], got {gamma}")
    if theta <= 0.0:
        raise ValueError(f"theta must be > 0, got {theta}")


def policy_evaluation(
    T: np.ndarray,
    R: np.ndarray,
    policy: np.ndarray,
    gamma: float,
    theta: float = 1e-10,
    max_sweeps: int = 100_000,
    V: np.ndarray | None = None,
) -> np.ndarray:
    """``V_pi`` for a deterministic policy, iterated until the largest change is below theta."""
    idx = np.arange(T.shape[0])
    Tp = T[idx, policy]
    Rp = R[idx, policy]
    v = np.zeros(T.shape[0]) if V is None else V.copy()
    for _ in range(max_sweeps):
        new = Rp + gamma * Tp @ v
        delta = float(np.max(np.abs(new - v)))
        v = new
        if delta < theta:
            break
    return v


def finite_horizon_return(
    P: Model | tuple[np.ndarray, np.ndarray],
    policy: Any,
    horizon: int,
    start: int | np.ndarray = 0,
    gamma: float = 1.0,
) -> float:
    """Expected return of a deterministic ``policy`` over at most ``horizon`` steps.

    ``start`` is a state or an initial distribution. ``P`` may be the model or the
    ``(T, R)`` of ``model_arrays`` (pass those when evaluating often). With FrozenLake
    (reward 1 at the goal) this is the success rate under the time limit.
    """
    pol = np.asarray(policy, dtype=np.intp)
    if isinstance(P, tuple) and len(P) == 2 and isinstance(P[0], np.ndarray):
        T, R = P
    else:
        T, R = model_arrays(P, len(pol), int(np.max(pol)) + 1 if pol.size else 1)
    idx = np.arange(T.shape[0])
    Tp = T[idx, pol]
    Rp = R[idx, pol]
    v = np.zeros(T.shape[0])
    for _ in range(horizon):
        v = Rp + gamma * Tp @ v
    if np.ndim(start) == 0:
        return float(v[int(start)])
    return float(np.asarray(start) @ v)


@dataclass
class ValueIterationConfig:
    """Value iteration hyper-parameters."""

    #: discount factor in [0, 1] (1 only for models where every policy terminates)
    gamma: float = 0.99
    #: stop when a sweep changes no value by more than this
    theta: float = 1e-10
    #: safety cap on sweeps
    max_iterations: int = 100_000


@dataclass
class PolicyIterationConfig:
    """Policy iteration hyper-parameters."""

    #: discount factor in [0, 1] (1 only for models where every policy terminates)
    gamma: float = 0.99
    #: policy evaluation stops when a sweep changes no value by more than this
    theta: float = 1e-10
    #: safety cap on improvement rounds
    max_iterations: int = 1_000


class _Planner(Agent):
    """Shared parts: holds V, Q and the greedy policy after ``plan``."""

    def __init__(self) -> None:
        #: state values after ``plan``
        self.V = np.zeros(0)
        #: action values after ``plan``
        self.Q = np.zeros((0, 0))
        self._pi = np.zeros(0, dtype=np.int64)
        #: sweeps (VI) or improvement rounds (PI) the last ``plan`` took
        self.iterations = 0
        #: the largest change of a state value in each sweep (VI) or improvement round (PI)
        self.deltas: list[float] = []
        self.episodes = 0
        self.steps = 0

    def plan_env(self, env: Any) -> _Planner:
        """``plan`` from an env exposing ``P`` (or a gymnasium env whose ``unwrapped`` does)."""
        P = getattr(env, "P", None)
        if P is None:
            P = getattr(getattr(env, "unwrapped", None), "P", None)
        if P is None:
            raise ValueError(f"{env!r} exposes no model P; DP needs a tabular env with P[s][a]")
        return self.plan(P, int(env.observation_space.n), int(env.action_space.n))

    def plan(self, P: Model, n_states: int, n_actions: int) -> _Planner:
        """Solve the model; returns self."""
        raise NotImplementedError

    def act(self, state: Any, greedy: bool = False) -> int:
        """The planned action in ``state`` (``greedy`` makes no difference)."""
        if self._pi.size == 0:
            raise ValueError("call plan(P, n_states, n_actions) before act()")
        return int(self._pi[state])

    def policy(self) -> np.ndarray:
        """Greedy action per state."""
        return self._pi.copy()


def _greedy(Q: np.ndarray) -> np.ndarray:
    # deterministic: the lowest action among (numerically) tied maxima
    return np.argmax(Q.max(axis=1, keepdims=True) - 1e-12 <= Q, axis=1).astype(np.int64)


class ValueIteration(_Planner):
    """Bellman optimality sweeps until convergence, then the greedy policy."""

    def __init__(self, config: ValueIterationConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else ValueIterationConfig()
        _check(self.config.gamma, self.config.theta)

    def plan(self, P: Model, n_states: int, n_actions: int) -> ValueIteration:
        """Run value iteration on ``P``; returns self."""
        cfg = self.config
        T, R = model_arrays(P, n_states, n_actions)
        v = np.zeros(n_states)
        Q = R.copy()
        self.deltas = []
        for i in range(1, cfg.max_iterations + 1):
            Q = R + cfg.gamma * T @ v
            new = Q.max(axis=1)
            delta = float(np.max(np.abs(new - v)))
            v = new
            self.iterations = i
            self.deltas.append(delta)
            if delta < cfg.theta:
                break
        self.V, self.Q = v, R + cfg.gamma * T @ v
        self._pi = _greedy(self.Q)
        return self


class PolicyIteration(_Planner):
    """Alternate policy evaluation and greedy improvement until the policy is stable."""

    def __init__(self, config: PolicyIterationConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else PolicyIterationConfig()
        _check(self.config.gamma, self.config.theta)

    def plan(self, P: Model, n_states: int, n_actions: int) -> PolicyIteration:
        """Run policy iteration on ``P``; returns self."""
        cfg = self.config
        T, R = model_arrays(P, n_states, n_actions)
        pi = np.zeros(n_states, dtype=np.int64)
        v = np.zeros(n_states)
        self.deltas = []
        for i in range(1, cfg.max_iterations + 1):
            before = v
            v = policy_evaluation(T, R, pi, cfg.gamma, cfg.theta, V=v)
            self.deltas.append(float(np.max(np.abs(v - before))))
            Q = R + cfg.gamma * T @ v
            best = Q.max(axis=1)
            # keep the current action unless another is strictly better (avoids tie cycling)
            current = Q[np.arange(n_states), pi]
            new = np.where(current >= best - 1e-12, pi, _greedy(Q))
            self.iterations = i
            if np.array_equal(new, pi):
                break
            pi = new
        self.V = v
        self.Q = R + cfg.gamma * T @ v
        self._pi = pi
        return self
