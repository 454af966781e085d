"""The ``Agent`` behaviour: what tabular (and later deep) agents provide.

Usage loop (``beamrl.rl.loops.run_episode`` is exactly this)::

    exp = env.reset(seed=0)
    while not exp.done:
        action = agent.act(exp.next_state)          # ε-greedy while learning
        exp = env.step(action)
        agent.observe(exp)                          # online learning from (s, a, r, s')
    agent.end_episode()                             # MC learns here; schedules advance

    agent.act(state, greedy=True)                   # exploit only
    agent.policy()                                  # greedy action per state (tabular)

``observe`` must be given the transitions produced by the agent's own ``act`` calls, in
order: SARSA picks its next action inside ``observe`` and returns it from the next ``act``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from beamrl.rl.exp import Exp


class Agent(ABC):
    """Chooses actions, learns from experience, and exposes its greedy policy."""

    #: episodes finished so far (``end_episode`` calls)
    episodes: int = 0
    #: transitions observed so far (``observe`` calls)
    steps: int = 0

    @abstractmethod
    def act(self, state: Any, greedy: bool = False) -> Any:
        """The action to take in ``state``; exploring unless ``greedy``."""

    def observe(self, exp: Exp) -> None:  # noqa: B027 - planners learn nothing online
        """Learn from one transition (``exp.state``, ``exp.action`` came from ``act``)."""

    def end_episode(self) -> None:
        """The current episode ended (after its last ``observe``)."""
        self.episodes += 1

    @abstractmethod
    def policy(self) -> np.ndarray:
        """Greedy action for every state, shape ``(n_states,)`` for tabular agents."""
