"""The shape of a tabular problem, computed once per run, and the greedy evaluation of a table."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from beamrl.rl.envs.registry import facts
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
