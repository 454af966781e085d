"""``ApexActing``: an Ape-X actor's loop without messages (numpy only).

    acting = ApexActing("CartPole-v1", cfg, spec, seed=0, epsilon=0.4)   # or one ε per env
    acting.set_params(params)
    while True:
        acting.step()                        # every env once, ε-greedy on the numpy Q-values
        if acting.ready():
            batch, priorities = acting.take()   # n-step transitions + |TD error| priorities

Each step computes the Q-values of the next observations once: they choose the next
actions *and* bootstrap the n-step transitions that close now, so the initial
priority of a transition costs no extra forward pass (only a truncated episode's last
observation, which the next step does not see, gets its own)::

    R_t      = r_t + γ r_{t+1} + ... + γ^{k-1} r_{t+k-1}       (k = n, or fewer at an episode's end)
    discount = 0 if the episode terminated within those k steps, else γ^k
    priority = | R_t + discount · max_a Q(s_{t+k}, a) − Q(s_t, a_t) |

The transitions go out as the columns of a ``ReplayMemory.add_batch`` with a
``discount`` column (the replay stores them as given, ``n_step=1``). ``run_plain``
steps the same loop for a number of steps: the "no messaging" floor of
``beamrl bench apex``.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from beamrl.rl.apex.config import ApexConfig
from beamrl.rl.deep.acting import EnvBatch
from beamrl.rl.deep.params import NumpyPolicy, Params

__all__ = ["ApexActing"]

_Pending = tuple[np.ndarray, int, float, float]  # state, action, reward, Q(state, action)


class ApexActing:
    """See the module docstring."""

    def __init__(
        self, env_id: str, cfg: ApexConfig, spec: dict[str, Any], seed: int, epsilon: float | list[float]
    ) -> None:
        self.cfg = cfg
        self.envs = EnvBatch(env_id, cfg.num_envs, seed)
        self.epsilon = np.broadcast_to(np.asarray(epsilon, np.float64), (self.envs.n,)).copy()
        self.n_actions = int(self.envs.envs[0].action_space.n)
        self.policy = NumpyPolicy(spec)
        self.rng = np.random.default_rng(seed + 1_000_003)
        self.steps = 0  #: env steps taken (all envs)
        self.sent = 0  #: transitions handed out by ``take``
        self._q: np.ndarray | None = None  # Q-values of self.envs.obs, computed by the last step
        self._windows: list[deque[_Pending]] = [deque() for _ in range(self.envs.n)]
        self._out: list[tuple[np.ndarray, int, float, np.ndarray, bool, bool, float, float]] = []
        self._discounts = cfg.gamma ** np.arange(cfg.n_step + 1)

    def set_params(self, params: Params) -> None:
        self.policy.load(params)
        self._q = None  # the next step recomputes the Q-values with the new parameters

    # -- the loop -------------------------------------------------------------------------
    def step(self) -> None:
        """Step every env once (ε-greedy) and close the n-step transitions that are due."""
        policy, envs = self.policy, self.envs
        q = self._q if self._q is not None else policy.q_values(envs.obs)
        n = envs.n
        actions = q.argmax(axis=1)
        explore = self.rng.random(n) < self.epsilon
        if explore.any():
            actions = np.where(explore, self.rng.integers(0, self.n_actions, n), actions)
        q_taken = q[np.arange(n), actions]
        obs, rewards, term, trunc, nxt = envs.step(actions)
        q_next = policy.q_values(envs.obs)  # the next actions' Q-values, and the bootstraps of most rows
        self._q = q_next
        boot = q_next.max(axis=1)
        cut = trunc & ~term
        if cut.any():  # a time limit: bootstrap from the episode's last observation, not the reset one
            boot[cut] = policy.q_values(nxt[cut]).max(axis=1)
        for i in range(n):
            window = self._windows[i]
            window.append((obs[i], int(actions[i]), float(rewards[i]), float(q_taken[i])))
            if term[i] or trunc[i]:
                self._close(window, nxt[i], bool(term[i]), bool(trunc[i]), float(boot[i]))
            elif len(window) == self.cfg.n_step:
                self._emit_first(window, nxt[i], float(boot[i]))
        self.steps += n

    def _emit_first(self, window: deque[_Pending], next_state: np.ndarray, boot: float) -> None:
        k = len(window)
        ret = 0.0
        for _, _, r, _ in reversed(window):
            ret = r + self.cfg.gamma * ret
        state, action, _, q_sa = window.popleft()
        discount = float(self._discounts[k])
        prio = abs(ret + discount * boot - q_sa)
        self._out.append((state, action, ret, next_state, False, False, discount, prio))

    def _close(self, window: deque[_Pending], next_state: np.ndarray, term: bool, trunc: bool, boot: float) -> None:
        """The episode ended: every pending step closes, with shorter returns."""
        rewards = [r for _, _, r, _ in window]
        m = len(window)
        ret = 0.0
        returns = [0.0] * m
        for j in range(m - 1, -1, -1):
            ret = rewards[j] + self.cfg.gamma * ret
            returns[j] = ret
        for j, (state, action, _, q_sa) in enumerate(window):
            discount = 0.0 if term else float(self._discounts[m - j])
            prio = abs(returns[j] + discount * boot - q_sa)
            self._out.append((state, action, returns[j], next_state, term, trunc, discount, prio))
        window.clear()

    # -- output ---------------------------------------------------------------------------
    def ready(self) -> bool:
        """True once ``send_every`` transitions are waiting."""
        return len(self._out) >= self.cfg.send_every

    def take(self) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The waiting transitions as replay columns (with ``discount``) and their priorities."""
        out, self._out = self._out, []
        self.sent += len(out)
        batch: dict[str, np.ndarray] = {
            "state": np.stack([o[0] for o in out]).astype(np.float32, copy=False),
            "action": np.array([o[1] for o in out], dtype=np.int64),
            "reward": np.array([o[2] for o in out], dtype=np.float32),
            "next_state": np.stack([o[3] for o in out]).astype(np.float32, copy=False),
            "terminated": np.array([o[4] for o in out], dtype=bool),
            "truncated": np.array([o[5] for o in out], dtype=bool),
            "discount": np.array([o[6] for o in out], dtype=np.float32),
        }
        return batch, np.array([o[7] for o in out], dtype=np.float64)

    def run_plain(self, steps: int) -> int:
        """Act for ``steps`` env steps, dropping the batches (the bench's no-messaging floor)."""
        start = self.steps
        while self.steps - start < steps:
            self.step()
            if self.ready():
                self.take()
        return self.steps - start
