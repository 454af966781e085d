"""The shape of a tabular problem, computed once per run, and the greedy evaluation of a table.

``greedy_eval`` plays the evaluation episodes one after the other (any env, in a thread);
``ExactEval`` computes what they estimate from a native env's model, exactly and in well
under a millisecond: the periodic evaluations of a run on FrozenLake, CliffWalking or
Taxi, which then cost the workers next to nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from beamrl.rl.envs.registry import facts
from beamrl.rl.envs.tabular import TabularEnv
from beamrl.rl.exp import Exp
from beamrl.rl.loops import evaluate
from beamrl.rl.spaces import Discrete, StateIndex, state_index


@dataclass(frozen=True)
class TableShape:
    """Rows and columns of a Q-table for an environment, and how an observation finds its row.

    Plain data (``to_data``/``from_data``), so the learner computes it once and every
    worker, on any node, gets it with its start arguments.
    """

    n_states: int
    n_actions: int
    dims: tuple[int, ...] | None = None
    """Sizes of a Tuple observation's parts (flattened by a ``StateIndex``), else None."""
    starts: tuple[int, ...] = (0,)
    """The smallest value of each part (a Discrete's ``start``)."""

    def state_fn(self) -> Callable[[Any], int] | None:
        """Observation -> row index; None when the observation is the row already."""
        if self.dims is not None:
            return StateIndex(self.dims, self.starts)
        start = self.starts[0]
        return None if start == 0 else (lambda s: s - start)

    def to_data(self) -> list[Any]:
        return [self.n_states, self.n_actions, None if self.dims is None else list(self.dims), list(self.starts)]

    @classmethod
    def from_data(cls, data: Any) -> TableShape:
        if not isinstance(data, list | tuple) or len(data) != 4:
            raise TypeError(f"a table shape is [n_states, n_actions, dims, starts], got {data!r}")
        n_states, n_actions, dims, starts = data
        return cls(int(n_states), int(n_actions), None if dims is None else tuple(dims), tuple(starts))


def table_shape(observation_space: Any, action_space: Any) -> TableShape:
    """The ``TableShape`` of a problem with these spaces; ValueError if it is not tabular."""
    if not isinstance(action_space, Discrete):
        raise ValueError(f"tabular agents need a Discrete action space, got {action_space!r}")
    if isinstance(observation_space, Discrete):
        return TableShape(observation_space.n, action_space.n, None, (observation_space.start,))
    index = state_index(observation_space)
    return TableShape(index.n, action_space.n, index.dims, index.starts)


def greedy_eval(
    policy: np.ndarray,
    env: Any,
    table: TableShape,
    env_id: str,
    episodes: int,
    seed: int,
    max_steps: int,
) -> dict[str, float]:
    """Success rate and mean return of a greedy policy array (runs in a thread)."""
    actions = policy.tolist()
    state_fn = table.state_fn()
    fn = (lambda s: actions[s]) if state_fn is None else (lambda s: actions[state_fn(s)])
    cap = getattr(env, "max_episode_steps", None) or min(max_steps, 1_000)
    return evaluate(fn, env, episodes, seed=seed, max_steps=cap, success_fn=facts(env_id).success)


class ExactEval:
    """The greedy policy's success rate and return computed from a native env's model, not sampled.

    For a policy ``pi`` (an action per state), dynamic programming over the env's
    transition arrays gives, for each start state, the probability of an episode ending
    in success within the time limit, its expected return, the square of it (for the
    spread) and its expected length; weighting by the initial-state distribution gives
    what ``greedy_eval`` estimates from sampled episodes, without the sampling noise, in
    well under a millisecond for FrozenLake: periodic
    evaluations cost the workers next to nothing. ``ExactEval.build`` gives None where
    the env has no model (gymnasium's envs, Blackjack, Taxi's fickle passenger).
    """

    dense_below = 32
    """Up to this many states the horizon is covered by doubling dense matrices (a few dozen
    small products); above, one gather per step of it."""

    def __init__(self, env: TabularEnv, env_id: str, max_steps: int) -> None:
        arrays = env.arrays()
        self.prob, self.next, self.reward = arrays.prob, arrays.next_state, arrays.reward
        self.cont = self.prob * ~arrays.terminated  # probability mass that goes on from each outcome
        success = facts(env_id).success
        won = np.zeros(self.prob.shape)
        for index in np.ndindex(*self.prob.shape):  # the env's own success rule on every outcome
            reward, after, ends = float(self.reward[index]), int(self.next[index]), bool(arrays.terminated[index])
            won[index] = float(success(Exp(None, index[1], reward, after, ends, False, {})))
        self.won = won
        self.initial = np.diff(arrays.init_cum, prepend=0.0)
        self.horizon = env.max_episode_steps or min(max_steps, 1_000)

    def _by_doubling(
        self, rows: np.ndarray, base: np.ndarray, k: int, nxt: np.ndarray, cont: np.ndarray, rew: np.ndarray
    ) -> np.ndarray:
        """``sum_{t < horizon} A^t b`` for the step matrix ``A`` by binary powers of it.

        Over ``[value; square]`` (2n rows) the step is ``[[go, 0], [cross, go]]``: ``go`` carries
        each value to the next state, ``cross`` adds the ``2 r G(s')`` term of the squared return.
        """
        n = len(rows)
        step = np.zeros((2 * n, 2 * n))
        np.add.at(step, (rows[:, None], nxt), cont)
        np.add.at(step, (n + rows[:, None], n + nxt), cont)
        np.add.at(step, (n + rows[:, None], nxt), 2.0 * cont * rew)
        b = np.zeros((2 * n, 3))  # columns: success, length, return (its square below it)
        b[:n, 0], b[:n, 1], b[:n, 2], b[n:, 2] = base[:, 0], base[:, 2], base[:, 1], base[:, 3]
        total = np.zeros_like(b)
        reach = np.eye(2 * n)  # the step matrix to the power already summed
        power, block = step, b  # step^(2^j) and the sum of its first 2^j powers times b
        horizon = self.horizon
        while horizon:
            if horizon & 1:
                total += reach @ block
                reach = reach @ power
            horizon >>= 1
            if horizon:
                block = block + power @ block
                power = power @ power
        return np.stack([total[:n, 0], total[:n, 2], total[:n, 1], total[n:, 2]], axis=1)

    @classmethod
    def build(cls, env: Any, env_id: str, max_steps: int) -> ExactEval | None:
        if not isinstance(env, TabularEnv) or getattr(env, "fickle_passenger", False):
            return None
        return cls(env, env_id, max_steps)

    def run(self, policy: np.ndarray, episodes: int) -> dict[str, float]:
        """What ``episodes`` greedy episodes give on average: ``greedy_eval``'s keys, exact."""
        rows = np.arange(len(policy))
        pick = (rows, np.asarray(policy, dtype=np.intp))
        prob, cont, nxt, rew = self.prob[pick], self.cont[pick], self.next[pick], self.reward[pick]
        n = len(policy)
        # per state: [success, return, length, return squared] of the remaining episode
        base = np.stack(
            [(prob * self.won[pick]).sum(1), (prob * rew).sum(1), prob.sum(1), (prob * rew * rew).sum(1)], axis=1
        )
        if n <= self.dense_below:
            value = self._by_doubling(rows, base, prob.shape[1], nxt, cont, rew)
        else:
            value = np.zeros((n, 4))
            for _ in range(self.horizon):
                after = value[nxt]  # (n, outcomes, 4)
                new = base + np.einsum("sk,skj->sj", cont, after)
                new[:, 3] += np.einsum("sk,sk->s", 2.0 * cont * rew, after[:, :, 1])
                if np.array_equal(new, value):  # every episode has ended: nothing more changes
                    break
                value = new
        success, mean, length, square = self.initial @ value
        return {
            "mean_return": float(mean),
            "std_return": float(np.sqrt(max(0.0, square - mean * mean))),
            "success_rate": float(success),
            "mean_length": float(length),
            "episodes": float(episodes),
        }
