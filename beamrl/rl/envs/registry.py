"""``make`` and ``make_vec``: build an environment from its id.

Native ids (pure Python + numpy, no gymnasium needed) are listed in ``NATIVE``; every
other id is built by gymnasium (``pip install beamrl[gym]``) and wrapped in ``GymEnv``.
As with ``gymnasium.make``, the time limit comes from the id and
``max_episode_steps=`` overrides it; ``render_mode`` may be None or ``"ansi"`` for native
envs (they always render text).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from beamrl.rl.env import Env
from beamrl.rl.envs.blackjack import Blackjack
from beamrl.rl.envs.cliff_walking import CliffWalking
from beamrl.rl.envs.frozen_lake import FrozenLake
from beamrl.rl.envs.gym_adapter import GymEnv
from beamrl.rl.envs.tabular import TabularEnv
from beamrl.rl.envs.taxi import Taxi
from beamrl.rl.envs.vector import LoopVectorEnv, TabularVectorEnv, VectorEnv
from beamrl.rl.errors import UnknownEnv
from beamrl.rl.spaces import GYM_HINT


@dataclass(frozen=True)
class Spec:
    """How ``make`` builds one native id."""

    cls: Callable[..., Env]  #: the env class
    kwargs: dict[str, Any] = field(default_factory=dict)  #: defaults, overridable by make
    max_episode_steps: int | None = None  #: the id's time limit (gymnasium's registration)


NATIVE: dict[str, Spec] = {
    "FrozenLake-v1": Spec(FrozenLake, {"map_name": "4x4"}, 100),
    "FrozenLake8x8-v1": Spec(FrozenLake, {"map_name": "8x8"}, 200),
    "Taxi-v4": Spec(Taxi, {}, 200),
    "CliffWalking-v1": Spec(CliffWalking, {}, None),
    "CliffWalkingSlippery-v1": Spec(CliffWalking, {"is_slippery": True}, None),
    "Blackjack-v1": Spec(Blackjack, {"sab": True, "natural": False}, None),
}
#: older version strings accepted for the current native env
ALIASES = {"Taxi-v3": "Taxi-v4", "CliffWalking-v0": "CliffWalking-v1"}

_UNSET: Any = object()


def _native_spec(env_id: str) -> tuple[str, Spec] | None:
    canonical = ALIASES.get(env_id, env_id)
    spec = NATIVE.get(canonical)
    return None if spec is None else (canonical, spec)


def make(env_id: str, max_episode_steps: int | None = _UNSET, **kwargs: Any) -> Env:
    """A local environment for ``env_id``: native when listed in ``NATIVE``, else gymnasium's."""
    found = _native_spec(env_id)
    if found is not None:
        canonical, spec = found
        render_mode = kwargs.pop("render_mode", None)
        if render_mode not in (None, "ansi"):
            raise ValueError(f"{env_id} renders text only: render_mode must be None or 'ansi'")
        limit = spec.max_episode_steps if max_episode_steps is _UNSET else max_episode_steps
        return spec.cls(**{**spec.kwargs, **kwargs}, max_episode_steps=limit, env_id=canonical)
    return _make_gym(env_id, max_episode_steps, kwargs)


def _make_gym(env_id: str, max_episode_steps: Any, kwargs: dict[str, Any]) -> Env:
    native = ", ".join(sorted([*NATIVE, *ALIASES]))
    try:
        import gymnasium
    except ImportError as e:
        raise ImportError(
            f"{env_id!r} is not a native env ({native}); other ids need gymnasium: {GYM_HINT.split(': ')[1]}"
        ) from e
    if max_episode_steps is not _UNSET:
        kwargs["max_episode_steps"] = max_episode_steps
    try:
        gym_env = gymnasium.make(env_id, **kwargs)
    except gymnasium.error.Error as e:
        raise UnknownEnv(f"unknown env id {env_id!r}: not native ({native}) and gymnasium says: {e}") from e
    return GymEnv(gym_env, env_id)


def make_vec(env_id: str, n: int, **kwargs: Any) -> VectorEnv:
    """``n`` copies of ``env_id`` stepped together (see ``beamrl.rl.envs.vector``).

    FrozenLake, CliffWalking and Taxi (without ``fickle_passenger``) are fully vectorised;
    any other id loops over ``n`` envs built by ``make``.
    """
    probe = make(env_id, **kwargs)
    if isinstance(probe, TabularEnv) and not getattr(probe, "fickle_passenger", False):
        first = [probe]

        def build() -> TabularEnv:
            env = first.pop() if first else make(env_id, **kwargs)
            assert isinstance(env, TabularEnv)
            return env

        return TabularVectorEnv(build, n)
    first_env = [probe]
    return LoopVectorEnv(lambda: first_env.pop() if first_env else make(env_id, **kwargs), n)
