"""Vector envs: N copies of an env stepped in one call, observations and rewards as arrays.

    venv = make_vec("FrozenLake-v1", 1024)
    obs, info = venv.reset(seed=0)          # sub-env i is seeded with seed + i
    obs, rewards, terminated, truncated, info = venv.step(actions)

Autoreset follows gymnasium 1.x's default, ``"next-step"``: the step that ends an
episode returns its last observation with ``terminated``/``truncated`` set; on the
*next* ``step`` that sub-env ignores its action and resets, returning the first
observation of the new episode with reward 0 and both flags False.

``TabularVectorEnv`` (FrozenLake, CliffWalking, Taxi without a fickle passenger) is
fully vectorised: it advances N PCG64 generators at once with 128-bit arithmetic done
in uint64 halves, so sub-env i draws exactly the numbers a single env seeded alike
would draw, and N single envs stepped in lockstep give the same arrays.
``LoopVectorEnv`` loops over N envs for everything else.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from beamrl.rl.env import Env
from beamrl.rl.envs.tabular import TabularEnv
from beamrl.rl.errors import InvalidAction
from beamrl.rl.spaces import MultiDiscrete, np_random

_U64 = np.uint64
_MASK32 = _U64(0xFFFFFFFF)
_S32, _S11, _S58, _S64 = _U64(32), _U64(11), _U64(58), _U64(64)
_MUL = 0x2360ED051FC65DA44385DF649FCCF645  # PCG64's 128-bit multiplier
_MUL_HI, _MUL_LO = _U64(_MUL >> 64), _U64(_MUL & ((1 << 64) - 1))
_M0, _M1 = _U64(_MUL & 0xFFFFFFFF), _U64((_MUL >> 32) & 0xFFFFFFFF)
_TO_DOUBLE = 2.0**-53


class PCG64Batch:
    """N numpy ``PCG64`` generators advanced together; ``random()`` is ``[g.random() ...]``."""

    def __init__(self, generators: Sequence[np.random.Generator]) -> None:
        states = [g.bit_generator.state["state"] for g in generators]
        self.hi = np.array([s["state"] >> 64 for s in states], dtype=np.uint64)
        self.lo = np.array([s["state"] & ((1 << 64) - 1) for s in states], dtype=np.uint64)
        self.inc_hi = np.array([s["inc"] >> 64 for s in states], dtype=np.uint64)
        self.inc_lo = np.array([s["inc"] & ((1 << 64) - 1) for s in states], dtype=np.uint64)

    def random(self) -> np.ndarray:
        """One float64 in [0, 1) from each generator, as ``Generator.random()`` makes it."""
        hi, lo = self.hi, self.lo
        a0, a1 = lo & _MASK32, lo >> _S32
        p01, p10 = a0 * _M1, a1 * _M0
        mid = ((a0 * _M0) >> _S32) + (p01 & _MASK32) + (p10 & _MASK32)
        new_hi = a1 * _M1 + (p01 >> _S32) + (p10 >> _S32) + (mid >> _S32)
        new_hi += hi * _MUL_LO + lo * _MUL_HI + self.inc_hi
        new_lo = lo * _MUL_LO + self.inc_lo
        new_hi += new_lo < self.inc_lo  # carry out of the low half
        self.hi, self.lo = new_hi, new_lo
        x = new_hi ^ new_lo
        rot = new_hi >> _S58
        out = (x >> rot) | (x << ((_S64 - rot) & _U64(63)))
        return (out >> _S11) * _TO_DOUBLE

    def generator(self, i: int) -> np.random.Generator:
        """A ``Generator`` in generator ``i``'s current state (it continues the same stream)."""
        bit = np.random.PCG64()
        bit.state = {
            "bit_generator": "PCG64",
            "state": {
                "state": (int(self.hi[i]) << 64) | int(self.lo[i]),
                "inc": (int(self.inc_hi[i]) << 64) | int(self.inc_lo[i]),
            },
            "has_uint32": 0,
            "uinteger": 0,
        }
        return np.random.Generator(bit)


def _seeds(seed: int | Sequence[int | None] | None, n: int) -> list[int | None]:
    if seed is None:
        return [None] * n
    if isinstance(seed, bool):
        raise TypeError("seed must be an int, a list of ints or None, not a bool")
    if isinstance(seed, int | np.integer):
        return [int(seed) + i for i in range(n)]
    seeds = list(seed)
    if len(seeds) != n:
        raise ValueError(f"reset needs one seed per sub-env ({n}), got {len(seeds)}")
    return seeds


class VectorEnv:
    """What both vector envs provide; ``single_*_space`` describe one sub-env."""

    num_envs: int
    single_action_space: Any
    single_observation_space: Any
    action_space: Any

    def reset(self, seed: int | Sequence[int | None] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        raise NotImplementedError

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the sub-envs hold."""


class TabularVectorEnv(VectorEnv):
    """N copies of a ``TabularEnv`` stepped with array lookups (see the module docstring)."""

    def __init__(self, make_env: Callable[[], TabularEnv], n: int) -> None:
        if n <= 0:
            raise ValueError(f"a vector env needs n >= 1, got {n}")
        self.env = make_env()
        self.num_envs = n
        self.single_action_space = self.env.action_space
        self.single_observation_space = self.env.observation_space
        self.action_space = MultiDiscrete(np.full(n, self.env.action_space.n))
        self.max_episode_steps = self.env.max_episode_steps
        t = self.env.arrays()
        n_states, n_actions, k = t.cum.shape
        self._n_actions = n_actions
        self._cum = t.cum.reshape(n_states * n_actions, k)
        self._next = t.next_state.reshape(-1, k)
        self._reward = t.reward.reshape(-1, k)
        self._term = t.terminated.reshape(-1, k)
        self._prob = t.prob.reshape(-1, k)
        self._init_cum = t.init_cum
        self._rows = np.arange(n)
        self._rng: PCG64Batch | None = None
        self._s = np.zeros(n, dtype=np.int64)
        self._elapsed = np.zeros(n, dtype=np.int64)
        self._autoreset = np.zeros(n, dtype=bool)
        self._started = False

    def _initial(self, u: np.ndarray) -> np.ndarray:
        i = np.searchsorted(self._init_cum, u, side="right")
        i[i == len(self._init_cum)] = 0
        return i

    def reset(self, seed: int | Sequence[int | None] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        seeds = _seeds(seed, self.num_envs)
        if self._rng is None or any(s is not None for s in seeds):
            old = self._rng
            self._rng = PCG64Batch(
                [np_random(s) if s is not None or old is None else old.generator(i) for i, s in enumerate(seeds)]
            )
        self._s = self._initial(self._rng.random())
        self._elapsed[:] = 0
        self._autoreset[:] = False
        self._started = True
        return self._s.copy(), {}

    def _check(self, actions: Any) -> np.ndarray:
        a = np.asarray(actions)
        if (
            a.shape != (self.num_envs,)
            or a.dtype.kind not in "iu"
            or (a.size and (a.min() < 0 or a.max() >= self._n_actions))
        ):
            raise InvalidAction(
                f"actions {actions!r} are not in the action space {self.action_space!r} "
                f"(one int in [0, {self._n_actions}) per sub-env)"
            )
        return a

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        a = self._check(actions)
        if not self._started or self._rng is None:
            raise RuntimeError(f"{self.env.env_id}: call reset() before step()")
        u = self._rng.random()
        flat = self._s * self._n_actions + a
        pick = np.argmax(self._cum[flat] > u[:, None], axis=1)
        nxt = self._next[flat, pick]
        reward = self._reward[flat, pick]
        terminated = self._term[flat, pick]
        prob = self._prob[flat, pick]
        self._elapsed += 1
        auto = self._autoreset
        if auto.any():
            nxt[auto] = self._initial(u[auto])
            reward[auto] = 0.0
            terminated[auto] = False
            prob[auto] = 1.0
            self._elapsed[auto] = 0
        limit = self.max_episode_steps
        truncated = self._elapsed >= limit if limit is not None else np.zeros(self.num_envs, dtype=bool)
        self._s = nxt
        self._autoreset = terminated | truncated
        return nxt.copy(), reward, terminated, truncated, {"prob": prob}


class LoopVectorEnv(VectorEnv):
    """N envs stepped one after the other; same API and autoreset as ``TabularVectorEnv``."""

    def __init__(self, make_env: Callable[[], Env], n: int) -> None:
        if n <= 0:
            raise ValueError(f"a vector env needs n >= 1, got {n}")
        self.envs = [make_env() for _ in range(n)]
        self.num_envs = n
        self.single_action_space = self.envs[0].action_space
        self.single_observation_space = self.envs[0].observation_space
        self.action_space = [env.action_space for env in self.envs]
        self._autoreset = np.zeros(n, dtype=bool)
        self._obs: list[Any] = [None] * n

    def reset(self, seed: int | Sequence[int | None] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        for i, (env, s) in enumerate(zip(self.envs, _seeds(seed, self.num_envs), strict=True)):
            self._obs[i] = env.reset(seed=s).next_state
        self._autoreset[:] = False
        return np.array(self._obs), {}

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if len(actions) != self.num_envs:
            raise InvalidAction(f"step needs {self.num_envs} actions, got {len(actions)}")
        for env, action in zip(self.envs, actions, strict=True):
            if not env.action_space.contains(action):
                raise InvalidAction(f"action {action!r} is not in {env.action_space!r}")
        n = self.num_envs
        rewards = np.zeros(n)
        terminated = np.zeros(n, dtype=bool)
        truncated = np.zeros(n, dtype=bool)
        for i, (env, action) in enumerate(zip(self.envs, actions, strict=True)):
            if self._autoreset[i]:
                self._obs[i] = env.reset().next_state
                continue
            exp = env.step(action)
            self._obs[i] = exp.next_state
            rewards[i], terminated[i], truncated[i] = exp.reward, exp.terminated, exp.truncated
        self._autoreset = terminated | truncated
        return np.array(self._obs), rewards, terminated, truncated, {}

    def close(self) -> None:
        for env in self.envs:
            env.close()
