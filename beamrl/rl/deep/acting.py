"""The acting half of a deep agent, torch-free: environments, a numpy policy copy, replay or rollouts.

    acting = Acting("dqn", cfg, "CartPole-v1", seed=0, spec=spec, total_steps=50_000)
    acting.set_params(params)                 # the learner's latest policy parameters
    # envs=[ServedEnv, ...]: EnvServers instead of local envs (then act in a worker thread)
    while not acting.finished:
        for batch in acting.next_batches():   # acts one phase, then what to learn from
            stats = learner.learn(batch)
            acting.feedback(batch, stats)     # new priorities for a prioritized replay

Off-policy (dqn, ddpg, td3): each phase steps every env ``train_freq`` times with the
behaviour policy (ε-greedy on the Q-values; the actor's action plus Gaussian noise,
uniform random before ``learning_starts``), stores the transitions in a
``ReplayMemory`` (n-step windows, one stream per env) and then hands out
``gradient_steps`` sampled batches. On-policy (a2c, ppo): a phase is a rollout of
``n_steps`` per env; REINFORCE's is ``n_steps`` steps of one env rounded up to whole
episodes. Every batch carries ``progress`` (env steps done / budget) for the schedules.
A run never takes more env steps than its budget: the last rollout is cut short (its
last step bootstraps like a time limit) and the last off-policy phase stops early.

Environments reset in the same step that ends an episode, so every stored transition
is a real one and ``next_obs`` is the episode's last observation; a time limit
(``truncated``) is bootstrapped, termination is not.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from beamrl.rl.deep.config import DDPGConfig, DQNConfig, PGConfig
from beamrl.rl.deep.params import NumpyPolicy, Params
from beamrl.rl.envs import make
from beamrl.rl.exp import Exp
from beamrl.rl.replay import ReplayMemory
from beamrl.rl.spaces import Box

__all__ = ["FLUSH_EVERY", "Acting", "EnvBatch"]

FLUSH_EVERY = 16  #: an env's steps go to the replay in runs of this many (or at an episode's end)


class EnvBatch:
    """``n`` environments stepped together with same-step resets and episode bookkeeping."""

    def __init__(self, env_id: str, n: int, seed: int, envs: list[Any] | None = None) -> None:
        if envs is not None and len(envs) != n:
            raise ValueError(f"{env_id}: this agent steps {n} environments, it was given {len(envs)}")
        self.envs = list(envs) if envs is not None else [make(env_id) for _ in range(n)]
        self.n = n
        space = self.envs[0].action_space
        self.bounds = (
            (np.asarray(space.low, np.float32), np.asarray(space.high, np.float32)) if isinstance(space, Box) else None
        )
        self.obs = np.stack(
            [np.asarray(e.reset(seed=seed + i).next_state, np.float32) for i, e in enumerate(self.envs)]
        )
        self.ep_return = np.zeros(n)
        self.ep_length = np.zeros(n, dtype=np.int64)
        self.finished: list[tuple[float, int]] = []  #: (return, length) of episodes ended since drained

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Step every env; return (obs before, rewards, terminated, truncated, real next obs)."""
        before = self.obs.copy()
        nxt = np.empty_like(self.obs)
        rewards = np.zeros(self.n, np.float32)
        term = np.zeros(self.n, bool)
        trunc = np.zeros(self.n, bool)
        for i, env in enumerate(self.envs):
            a = actions[i]
            exp = env.step(int(a) if self.bounds is None else np.clip(a, *self.bounds).astype(np.float32))
            nxt[i] = exp.next_state
            rewards[i], term[i], trunc[i] = exp.reward, exp.terminated, exp.truncated
            self.ep_return[i] += exp.reward
            self.ep_length[i] += 1
            if exp.terminated or exp.truncated:
                self.finished.append((float(self.ep_return[i]), int(self.ep_length[i])))
                self.ep_return[i], self.ep_length[i] = 0.0, 0
                self.obs[i] = env.reset().next_state
            else:
                self.obs[i] = exp.next_state
        return before, rewards, term, trunc, nxt

    def drain(self) -> list[tuple[float, int]]:
        out, self.finished = self.finished, []
        return out

    # -- snapshots (exact resume for gymnasium's classic-control envs) --------------------
    def snapshot(self) -> dict[str, Any]:
        return {
            "obs": self.obs.tolist(),
            "ep_return": self.ep_return.tolist(),
            "ep_length": self.ep_length.tolist(),
            "envs": [_env_snapshot(e) for e in self.envs],
        }

    def restore(self, snap: dict[str, Any]) -> None:
        envs = snap["envs"]
        if len(envs) != self.n:
            raise ValueError(f"snapshot holds {len(envs)} envs, this actor has {self.n}")
        exact = all(_env_restore(e, s) for e, s in zip(self.envs, envs, strict=True))
        if exact:
            self.obs = np.asarray(snap["obs"], np.float32)
            self.ep_return = np.asarray(snap["ep_return"], np.float64)
            self.ep_length = np.asarray(snap["ep_length"], np.int64)
        # otherwise: the episodes in flight start over from the fresh resets done in __init__


def _wrappers(env: Any) -> list[Any]:
    chain, w = [], getattr(env, "gym_env", None)
    while w is not None:
        chain.append(w)
        w = getattr(w, "env", None)
    return chain


def _env_snapshot(env: Any) -> dict[str, Any] | None:
    chain = _wrappers(env)
    if not chain:
        return None
    u = chain[-1]
    snap: dict[str, Any] = {"np_random": u.np_random.bit_generator.state}
    for attr in ("state", "steps_beyond_terminated", "last_u"):
        if hasattr(u, attr):
            value = getattr(u, attr)
            snap[attr] = value.tolist() if isinstance(value, np.ndarray | np.generic) else value
    snap["elapsed"] = [getattr(w, "_elapsed_steps", None) for w in chain]
    return snap


def _env_restore(env: Any, snap: dict[str, Any] | None) -> bool:
    chain = _wrappers(env)
    if snap is None or not chain or len(snap["elapsed"]) != len(chain):
        return False
    u = chain[-1]
    u.np_random.bit_generator.state = snap["np_random"]
    for attr in ("state", "steps_beyond_terminated", "last_u"):
        if attr in snap:
            value = snap[attr]
            setattr(u, attr, np.asarray(value, np.float64) if isinstance(value, list) else value)
    for w, elapsed in zip(chain, snap["elapsed"], strict=True):
        if elapsed is not None:
            w._elapsed_steps = elapsed
    return True


class Acting:
    """See the module docstring."""

    def __init__(
        self,
        algo: str,
        cfg: Any,
        env_id: str,
        seed: int,
        spec: dict[str, Any],
        total_steps: int,
        envs: list[Any] | None = None,
    ) -> None:
        self.algo, self.cfg, self.total = algo, cfg, int(total_steps)
        self.envs = EnvBatch(env_id, self.env_count(algo, cfg), seed, envs)
        self.policy = NumpyPolicy(spec)
        self.rng = np.random.default_rng(seed + 1_000_003)
        self.steps = 0  #: env steps taken (all envs)
        self.replay: ReplayMemory | None = None
        if isinstance(cfg, DQNConfig | DDPGConfig):
            beta_steps = max(1, (self.total - cfg.learning_starts) // max(cfg.train_freq, 1) * cfg.gradient_steps)
            self.replay = ReplayMemory(
                cfg.buffer_size,
                prioritized=cfg.prioritized,
                alpha=getattr(cfg, "alpha", 0.6),
                beta=getattr(cfg, "beta", 0.4),
                beta_steps=beta_steps if cfg.prioritized else None,
                n_step=cfg.n_step,
                gamma=cfg.gamma,
                seed=seed,
            )
        # steps reach the replay in runs of up to FLUSH_EVERY per env (one add_batch, not one add per
        # step); checkpoints keep the steps not handed over yet and those the n-step windows still hold
        n_pending = max(getattr(cfg, "n_step", 1) - 1, 0)
        self._unstored: list[list[Exp]] = [[] for _ in range(self.envs.n)]
        self._pending: list[deque[Exp]] = [deque(maxlen=n_pending) for _ in range(self.envs.n)]

    @staticmethod
    def env_count(algo: str, cfg: Any) -> int:
        """How many environments the acting of ``algo`` steps (REINFORCE: one; the others: ``num_envs``)."""
        return 1 if algo == "reinforce" else int(cfg.num_envs)

    @property
    def finished(self) -> bool:
        """True once another step of every env would go past the budget (a run never exceeds it)."""
        return self.steps + self.envs.n > self.total

    @property
    def progress(self) -> float:
        return min(1.0, self.steps / max(self.total, 1))

    def set_params(self, params: Params) -> None:
        self.policy.load(params)

    def epsilon(self) -> float:
        cfg = self.cfg
        frac = min(1.0, self.steps / max(cfg.eps_steps, 1))
        return float(cfg.eps_start + frac * (cfg.eps_end - cfg.eps_start))

    # -- behaviour policies ---------------------------------------------------------------
    def behaviour(self, obs: np.ndarray) -> np.ndarray:
        """The exploring action of each env."""
        cfg, n = self.cfg, len(obs)
        if isinstance(cfg, DQNConfig):
            actions = self.policy.q_values(obs).argmax(axis=1)
            explore = self.rng.random(n) < self.epsilon()
            if explore.any():
                actions = np.where(explore, self.rng.integers(0, self._n_actions(), n), actions)
            return actions.astype(np.int64)
        if isinstance(cfg, DDPGConfig):
            low, high = self.envs.bounds  # type: ignore[misc]
            if self.steps < cfg.learning_starts:
                return self.rng.uniform(low, high, (n, len(low))).astype(np.float32)
            a = self.policy.greedy(obs) + self.rng.standard_normal((n, len(low))) * cfg.noise * (high - low) / 2
            return np.clip(a, low, high).astype(np.float32)
        return self.policy.sample(obs, self.rng)

    def _n_actions(self) -> int:
        return int(self.envs.envs[0].action_space.n)

    # -- phases ---------------------------------------------------------------------------
    def next_batches(self) -> list[dict[str, Any]]:
        """Act one phase; return the batches to learn from now (maybe none)."""
        if isinstance(self.cfg, PGConfig):
            return [self._rollout()]
        return self._off_policy_phase()

    def _off_policy_phase(self) -> list[dict[str, Any]]:
        cfg, replay = self.cfg, self.replay
        assert replay is not None
        for _ in range(cfg.train_freq):
            if self.finished:
                break
            actions = self.behaviour(self.envs.obs)
            obs, rewards, term, trunc, nxt = self.envs.step(actions)
            for i in range(self.envs.n):
                exp = Exp(obs[i], actions[i], float(rewards[i]), nxt[i], bool(term[i]), bool(trunc[i]))
                run = self._unstored[i]
                run.append(exp)
                if exp.done or len(run) >= FLUSH_EVERY:
                    replay.add_batch(run, stream=i)
                    if exp.done:
                        self._pending[i].clear()
                    elif self._pending[i].maxlen:
                        self._pending[i].extend(run)
                    self._unstored[i] = []
            self.steps += self.envs.n
        if self.steps < cfg.learning_starts or len(replay) < cfg.batch_size:
            return []
        batches = []
        for _ in range(cfg.gradient_steps):
            batch = replay.get_batch(cfg.batch_size)
            batch["progress"] = np.array(self.progress)
            batches.append(batch)
        return batches

    def feedback(self, batch: dict[str, Any], stats: dict[str, Any]) -> None:
        """Use a learner's answer to ``batch``: new priorities from ``td`` for a prioritized replay."""
        if self.replay is not None and self.replay.prioritized and "td" in stats:
            self.replay.update_priorities(batch["indices"], np.asarray(stats["td"]), stale="skip")

    def _rollout(self) -> dict[str, Any]:
        cols: dict[str, list[np.ndarray]] = {
            k: [] for k in ("obs", "actions", "rewards", "terminated", "dones", "next_obs")
        }
        t = 0
        while True:
            actions = self.policy.sample(self.envs.obs, self.rng)
            obs, rewards, term, trunc, nxt = self.envs.step(actions)
            for key, value in zip(cols, (obs, actions, rewards, term, term | trunc, nxt), strict=True):
                cols[key].append(value)
            self.steps += self.envs.n
            t += 1
            if self.finished:  # the budget ends here: the last step is cut like a time limit
                cols["dones"][-1] = np.ones_like(cols["dones"][-1])
                break
            if self.algo == "reinforce":
                if t >= self.cfg.n_steps and bool((term | trunc).all()):
                    break
            elif t >= self.cfg.n_steps:
                break
        batch: dict[str, Any] = {k: np.stack(v) for k, v in cols.items()}
        batch["terminated"] = batch["terminated"].astype(np.float32)
        batch["dones"] = batch["dones"].astype(np.float32)
        batch["progress"] = np.array(self.progress)
        return batch

    # -- state ----------------------------------------------------------------------------
    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray] | None]:
        """(JSON-able counters, RNG and env snapshots; the replay's arrays or None)."""
        meta = {"steps": self.steps, "rng": self.rng.bit_generator.state, "envs": self.envs.snapshot()}
        meta["pending"] = [[_exp_to_json(e) for e in q] for q in self._pending]
        meta["unstored"] = [[_exp_to_json(e) for e in run] for run in self._unstored]
        return meta, None if self.replay is None else self.replay.state_dict()

    def load_state(self, meta: dict[str, Any], replay: dict[str, np.ndarray] | None) -> None:
        self.steps = int(meta["steps"])
        self.rng.bit_generator.state = meta["rng"]
        self.envs.restore(meta["envs"])
        if self.replay is not None and replay is not None:
            self.replay = ReplayMemory.from_state_dict(replay)
            for i, steps in enumerate(meta.get("pending", [])):
                for item in steps:  # back into their n-step windows, as they were
                    exp = _exp_from_json(item)
                    self.replay.add(exp, stream=i)
                    self._pending[i].append(exp)
            self._unstored = [[_exp_from_json(item) for item in run] for run in meta.get("unstored", [])]


def _exp_to_json(exp: Exp) -> list[Any]:
    return [
        np.asarray(exp.state).tolist(),
        np.asarray(exp.action).tolist(),
        exp.reward,
        np.asarray(exp.next_state).tolist(),
    ]


def _exp_from_json(item: list[Any]) -> Exp:
    state, action, reward, next_state = item
    return Exp(
        np.asarray(state, np.float32),
        np.asarray(action),
        float(reward),
        np.asarray(next_state, np.float32),
        False,
        False,
    )
