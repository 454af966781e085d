"""``make`` and ``make_vec``: build an environment from its id.

Native ids (pure Python + numpy, no gymnasium needed) are listed in ``NATIVE``; every
other id is built by gymnasium (``pip install beamrl[gym]``) and wrapped in ``GymEnv``.
As with ``gymnasium.make``, the time limit comes from the id and
``max_episode_steps=`` overrides it; ``render_mode`` may be None or ``"ansi"`` for native
envs (they always render text).

Facts about an environment live here and nowhere else: ``facts(env_id)`` gives an
``EnvFacts`` (its success rule, the episode budget ``beamrl train`` uses by default, how
many episodes the final evaluation plays, whether it is tabular and has a goal, and tuned
agent hyper-parameters). Ids that are not native get ``GYM_FACTS``.

=================  ===================================================  ========  ======
id                 success (decided on an episode's last transition)    episodes  judged
=================  ===================================================  ========  ======
FrozenLake(8x8)    terminated with a positive reward (the goal)         5k (20k)  2,000
Taxi               terminated with a positive reward (a delivery, +20)  20k       1,000
CliffWalking       terminated (only the goal terminates)                1k        10
Blackjack          terminated with a positive reward (a win; no goal)   300k      100k
anything else      terminated with a positive reward                    2k        100
=================  ===================================================  ========  ======

A time-limit truncation is never a success.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
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
from beamrl.rl.exp import Exp
from beamrl.rl.spaces import GYM_HINT

SuccessFn = Callable[[Exp], bool]


def positive_terminal(exp: Exp) -> bool:
    """Success = the episode terminated on a positive reward (FrozenLake, Taxi, Blackjack)."""
    return bool(exp.terminated and exp.reward > 0)


def goal_reached(exp: Exp) -> bool:
    """Success = the episode terminated at all (CliffWalking: only the goal terminates)."""
    return bool(exp.terminated)


@dataclass(frozen=True)
class EnvFacts:
    """What training and evaluation need to know about an environment id."""

    success: SuccessFn = positive_terminal
    """Whether an episode succeeded, decided on its last transition."""
    episodes: int = 2_000
    """The episode budget ``beamrl train`` uses when given neither ``--episodes`` nor ``--steps``."""
    eval_episodes: int = 100
    """Episodes of the final (judged) evaluation of a trained policy."""
    tabular: bool = False
    """Discrete observations and actions: tabular agents apply."""
    has_goal: bool = True
    """Success means reaching a goal, so a success rate is worth reporting."""
    hyper: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Tuned hyper-parameters by agent family (``"td"``, ``"mc"``) that reach the published targets."""
    success_target: float | None = None
    """A greedy success rate that counts as solved (a run's ``time_to_success``); None: no target."""


#: every id ``make`` hands to gymnasium
GYM_FACTS = EnvFacts()

_FROZEN_HYPER = {"mc": {"alpha": 0.02, "init": 1.0}}
_CLIFF_HYPER = {
    "td": {"gamma": 1.0, "epsilon": 0.1, "alpha": {"kind": "exponential", "start": 0.5, "end": 0.01, "decay": 0.995}}
}
_FROZEN = EnvFacts(positive_terminal, 5_000, 2_000, tabular=True, hyper=_FROZEN_HYPER, success_target=0.7)
_CLIFF = EnvFacts(goal_reached, 1_000, 10, tabular=True, hyper=_CLIFF_HYPER, success_target=1.0)


@dataclass(frozen=True)
class Spec:
    """How ``make`` builds one native id, and the facts about it."""

    cls: Callable[..., Env]  #: the env class
    kwargs: dict[str, Any] = field(default_factory=dict)  #: defaults, overridable by make
    max_episode_steps: int | None = None  #: the id's time limit (gymnasium's registration)
    facts: EnvFacts = GYM_FACTS  #: success rule, budgets, tabular or not


NATIVE: dict[str, Spec] = {
    "FrozenLake-v1": Spec(FrozenLake, {"map_name": "4x4"}, 100, _FROZEN),
    "FrozenLake8x8-v1": Spec(
        FrozenLake, {"map_name": "8x8"}, 200, EnvFacts(**{**vars(_FROZEN), "episodes": 20_000, "success_target": 0.85})
    ),
    "Taxi-v4": Spec(Taxi, {}, 200, EnvFacts(positive_terminal, 20_000, 1_000, tabular=True, success_target=0.95)),
    "CliffWalking-v1": Spec(CliffWalking, {}, None, _CLIFF),
    "CliffWalkingSlippery-v1": Spec(CliffWalking, {"is_slippery": True}, None, _CLIFF),
    "Blackjack-v1": Spec(
        Blackjack, {"sab": True, "natural": False}, None, EnvFacts(positive_terminal, 300_000, 100_000, True, False)
    ),
}
#: older version strings accepted for the current native env
ALIASES = {"Taxi-v3": "Taxi-v4", "CliffWalking-v0": "CliffWalking-v1"}

_UNSET: Any = object()


def _native_spec(env_id: str) -> tuple[str, Spec] | None:
    canonical = ALIASES.get(env_id, env_id)
    spec = NATIVE.get(canonical)
    return None if spec is None else (canonical, spec)


def canonical_id(env_id: str) -> str:
    """The id ``make`` builds for ``env_id`` (older native versions map to the current one)."""
    return ALIASES.get(env_id, env_id)


def facts(env_id: str) -> EnvFacts:
    """The facts about ``env_id``: its native entry's, else ``GYM_FACTS``."""
    found = _native_spec(env_id)
    return GYM_FACTS if found is None else found[1].facts


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
