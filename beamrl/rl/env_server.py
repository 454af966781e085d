"""``EnvServer``: any environment as a process.

    pid = await node.start(EnvServer, "FrozenLake-v1", is_slippery=True, name="env")
    env = node.proxy("env")
    exp = await env.reset(0)                  # Exp; exp.next_state is the first observation
    exp = await env.step(1)

Requests (what ``handle_call`` answers):

==============================  ==============================================================
``["reset"]``                   new episode, unseeded -> ``Exp``
``["reset", seed]``             new episode with ``seed`` -> ``Exp``
``["reset", {"seed": s, "options": o}]``  the keyword form a proxy sends for ``reset(seed=s)``
``["step", action]``            -> ``Exp``; an action outside the action space raises
                                ``InvalidAction`` (a ``Rejected``) and leaves the env as it was;
                                stepping a finished episode without ``reset`` is ``Rejected``
``["step_many", actions]``      vector env (``num_envs=N``): one action per copy ->
                                ``{"obs", "reward", "terminated", "truncated"}`` arrays;
                                before the first ``reset`` it is ``Rejected``
``["observe"]``                 the current observation (``None`` before the first reset)
``["render"]``                  text rendering
``["spaces"]``                  ``{"action_space": ..., "observation_space": ...}``
``["info"]``                    env id, episodes, steps, whether the episode is over, copies
                                (``num_envs``: None for one env)
==============================  ==============================================================
"""

from __future__ import annotations

from typing import Any

import numpy as np

from beamrl.errors import Rejected
from beamrl.gen_server import GenServer
from beamrl.reprs import short_repr
from beamrl.rl.envs.registry import make, make_vec
from beamrl.rl.errors import InvalidAction
from beamrl.rl.exp import Exp
from beamrl.rl.spaces import Dict, Discrete
from beamrl.trust import started_for_a_peer

MAX_ENVS = 65_536
"""The most copies one vector EnvServer hosts."""


class EnvServer(GenServer):
    """Hosts one environment (or, with ``num_envs=N``, a vector of N copies)."""

    async def init(self, env_id: str, num_envs: int | None = None, **kwargs: Any) -> None:
        if not isinstance(env_id, str) or not env_id:
            raise Rejected(f"EnvServer: env_id must be a non-empty string, got {_short(env_id)}")
        if ":" in env_id and started_for_a_peer():  # gymnasium imports the module of "module:Env-v0"
            self.node.allowed_modules.check(env_id)
        if num_envs is not None and (
            isinstance(num_envs, bool) or not isinstance(num_envs, int | np.integer) or not 1 <= num_envs <= MAX_ENVS
        ):
            raise Rejected(f"EnvServer: num_envs must be an integer in 1..{MAX_ENVS} or None, got {_short(num_envs)}")
        self.env_id = env_id
        self.vector = num_envs is not None
        if self.vector:
            self.env: Any = make_vec(env_id, int(num_envs), **kwargs)  # type: ignore[arg-type]
        else:
            self.env = make(env_id, **kwargs)
        self.episodes = 0
        self.steps = 0
        self.last: Exp | None = None
        self.vector_started = False  # a vector env steps only after its first reset

    async def terminate(self, reason: Any) -> None:
        self.env.close()

    async def handle_call(self, request: Any, from_: Any) -> Any:
        match request:
            case ["step", {"action": action, **rest}] if not rest and not isinstance(self._space("action"), Dict):
                return self._step(action)  # env.step(action=1) through a proxy
            case ["step", action]:
                return self._step(action)
            case ["reset"]:
                return self._reset(None, None)
            case ["reset", {**kw}]:
                return self._reset_kw(None, kw)
            case ["reset", seed, {**kw}]:
                return self._reset_kw(seed, kw)
            case ["reset", seed]:
                return self._reset(seed, None)
            case ["step_many", actions]:
                return self._step_many(actions)
            case ["observe"]:
                return None if self.last is None else self.last.next_state
            case ["render"]:
                return self.env.render()
            case ["spaces"]:
                return {"action_space": self._space("action"), "observation_space": self._space("observation")}
            case ["info"]:
                return {
                    "env_id": self.env_id,
                    "episodes": self.episodes,
                    "steps": self.steps,
                    "done": None if self.last is None else self.last.done,
                    "num_envs": self.env.num_envs if self.vector else None,
                }
        raise Rejected(
            f"EnvServer does not understand {_short(request)}: "
            "use reset, step, step_many, observe, render, spaces or info"
        )

    def _space(self, which: str) -> Any:
        return getattr(self.env, f"single_{which}_space" if self.vector else f"{which}_space")

    def _reset_kw(self, seed: Any, kw: dict[Any, Any]) -> Any:
        unknown = {str(key) for key in kw} - {"seed", "options"}
        if unknown:
            raise Rejected(f"reset takes seed and options, not {', '.join(sorted(unknown))}")
        return self._reset(kw.get("seed", seed), kw.get("options"))

    def _reset(self, seed: Any, options: Any) -> Any:
        if seed is not None and (
            isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= seed < 2**64
        ):
            raise Rejected(f"reset seed must be an integer or None, got {_short(seed)} (seeds lie in [0, 2**64))")
        if options is not None and not isinstance(options, dict):
            raise Rejected(f"reset options must be a dict or None, got {_short(options)}")
        if self.vector and options:
            raise Rejected("a vector env's reset takes no options")
        seed = None if seed is None else int(seed)
        if self.vector:
            obs, info = self.env.reset(seed=seed)
            self.episodes += 1
            self.vector_started = True
            return {"obs": obs, "info": info}
        try:
            self.last = self.env.reset(seed=seed, options=options)
        except (TypeError, ValueError, KeyError) as exc:  # options the environment refuses
            raise Rejected(f"{self.env_id}: reset refused options {_short(options)}: {exc}") from exc
        self.episodes += 1
        return self.last

    def _step(self, action: Any) -> Exp:
        if self.vector:
            raise Rejected("this EnvServer hosts a vector env: use step_many with one action per copy")
        if self.last is None:
            raise Rejected(f"{self.env_id}: reset the environment before the first step")
        if self.last.done:
            raise Rejected(f"{self.env_id}: the episode is over (terminated or truncated): reset before stepping")
        space = self.env.action_space
        if not space.contains(action):
            raise InvalidAction(f"action {_short(action)} is not in the action space {space!r} of {self.env_id}")
        self.last = self.env.step(action)
        self.steps += 1
        return self.last

    def _step_many(self, actions: Any) -> dict[str, Any]:
        if not self.vector:
            raise Rejected("step_many needs a vector env: start the EnvServer with num_envs=N")
        if not self.vector_started:
            raise Rejected(f"{self.env_id}: reset the vector env before the first step_many")
        try:
            actions = np.asarray(actions)
        except (TypeError, ValueError) as exc:  # ragged or mixed lists
            raise InvalidAction(f"step_many takes one action per copy, got {_short(actions)}") from exc
        space = self._space("action")
        n = self.env.num_envs
        if actions.shape[:1] != (n,) or not _all_in(space, actions):
            raise InvalidAction(f"step_many needs {n} actions, each in {space!r}; got {_short(actions)}")
        obs, reward, terminated, truncated, _info = self.env.step(actions)
        self.steps += n
        return {"obs": obs, "reward": reward, "terminated": terminated, "truncated": truncated}


def _short(value: Any, limit: int = 200) -> str:
    """A request or value in a message, cut to a few hundred characters."""
    return short_repr(value, limit)


def _all_in(space: Any, actions: np.ndarray) -> bool:
    """Every action in ``space``; one numpy test for the common Discrete case."""
    if isinstance(space, Discrete):
        if actions.ndim != 1 or actions.dtype.kind not in "iu":
            return False
        return bool(((actions >= space.start) & (actions < space.start + space.n)).all())
    return all(space.contains(a.item() if a.ndim == 0 else a) for a in actions)
