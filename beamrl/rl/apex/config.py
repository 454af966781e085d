"""Ape-X DQN's hyper-parameters: the learner's DQN fields plus the distributed ones.

    cfg = apex_config("CartPole-v1", {"batch_size": 256})
    cfg.learner_overrides()      # the DQNConfig fields the Learner is started with
    actor_epsilon(i, n)          # ε of actor i of n: 0.4 ** (1 + 7 i / (n - 1))

Defaults follow the Ape-X paper (Horgan et al. 2018: batch 512, prioritized replay with
α = 0.6 and β = 0.4, 3-step returns, actors sending 50 transitions at a time and pulling
parameters every 400 steps, ε_i = 0.4^(1 + 7 i/(N−1))), scaled to CartPole on a small
machine (network, replay capacity, target period, samples per insert).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ApexConfig", "actor_epsilon", "apex_config"]

#: the DQNConfig fields an ApexConfig hands to the Learner
_LEARNER_FIELDS = (
    "hidden",
    "activation",
    "gamma",
    "lr",
    "batch_size",
    "target_update",
    "double",
    "dueling",
    "huber",
    "max_grad_norm",
    "checkpoint_every",
    "n_step",
    "prioritized",
)


@dataclass
class ApexConfig:
    """Ape-X DQN: one learner and prioritized replay, many torch-free actors."""

    hidden: list[int] = field(default_factory=lambda: [128, 128])  #: hidden layer sizes of the Q-network
    activation: str = "relu"  #: "relu" or "tanh" between hidden layers
    gamma: float = 0.99  #: discount factor
    lr: float = 5e-4  #: the learner's Adam learning rate
    batch_size: int = 512  #: transitions per learner update (sampled from the replay)
    target_update: int = 250  #: learner updates between target-network copies
    double: bool = True  #: Double DQN targets
    dueling: bool = False  #: dueling head
    huber: bool = True  #: Huber loss
    max_grad_norm: float = 10.0  #: gradient clipping (global norm)
    checkpoint_every: int = 1_000  #: learner updates between learner checkpoints
    n_step: int = 3  #: n-step returns, computed by the actors
    prioritized: bool = True  #: prioritized replay (the actors send initial priorities)
    buffer_size: int = 100_000  #: replay capacity; the oldest transitions go first
    alpha: float = 0.6  #: priority exponent
    beta: float = 0.4  #: importance-sampling exponent (constant, as in Ape-X)
    num_envs: int = 4  #: environments in each actor's vector env
    send_every: int = 50  #: transitions an actor collects before it casts them to the replay
    pull_every: int = 400  #: env steps of an actor between parameter pulls (answered only when newer)
    eps_base: float = 0.4  #: ε_i = eps_base ** (1 + eps_alpha * i / (N - 1))
    eps_alpha: float = 7.0  #: see eps_base
    min_replay: int = 2_000  #: transitions the replay holds before the learner samples
    samples_per_insert: float = 8.0  #: the rate limiter's target: transitions sampled per transition inserted
    error_buffer: float = 4_096.0  #: the rate limiter's tolerance, in sampled transitions
    eval_every: int = 10_000  #: env steps (all actors) between greedy evaluations on the learner node
    eval_episodes: int = 10  #: episodes of a periodic evaluation

    def learner_overrides(self) -> dict[str, Any]:
        """The DQN fields the Learner is configured with (beamrl.rl.deep.config.DQNConfig)."""
        values = {name: getattr(self, name) for name in _LEARNER_FIELDS}
        return {**values, "tau": 1.0, "lr_end": None}

    def limiter(self) -> dict[str, Any]:
        """The ReplayServer's rate limiter (beamrl.rl.replay.ratelimit.RateLimiter)."""
        return {
            "min_size": max(self.min_replay, self.batch_size),
            "samples_per_insert": self.samples_per_insert,
            "error_buffer": self.error_buffer,
        }

    def to_data(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def apex_config(env_id: str, overrides: dict[str, Any] | None = None) -> ApexConfig:
    """The config of a run on ``env_id``: the defaults above, then ``overrides`` (checked)."""
    del env_id  # one set of defaults so far (tuned on CartPole-v1)
    names = {f.name: f for f in dataclasses.fields(ApexConfig)}
    values = dict(overrides or {})
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ValueError(
            f"apex-dqn has no hyper-parameter {', '.join(map(repr, unknown))}: known are {', '.join(names)}"
        )
    base = ApexConfig()
    for key, value in values.items():
        values[key] = _coerce(key, value, getattr(base, key))
    cfg = dataclasses.replace(base, **values)
    _check(cfg)
    return cfg


def _coerce(key: str, value: Any, default: Any) -> Any:
    """``value`` as the type of the field's default, or a ValueError naming the key."""
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        raise ValueError(f"{key} must be true or false, got {value!r}")
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
            raise ValueError(f"{key} must be an integer, got {value!r}")
        return int(value)
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{key} must be a number, got {value!r}")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ValueError(f"{key} must be a string, got {value!r}")
        return value
    if not isinstance(value, list) or not value or not all(isinstance(v, int) and v > 0 for v in value):
        raise ValueError(f"{key} must be a list of positive integers like [64, 64], got {value!r}")
    return list(value)


def _check(cfg: ApexConfig) -> None:
    positive = ("batch_size", "target_update", "checkpoint_every", "n_step", "buffer_size", "num_envs")
    for name in (*positive, "send_every", "pull_every", "min_replay", "eval_every", "eval_episodes"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(cfg, name)}")
    if cfg.activation not in ("relu", "tanh"):
        raise ValueError(f"activation must be 'relu' or 'tanh', got {cfg.activation!r}")
    if not 0.0 <= cfg.gamma <= 1.0:
        raise ValueError(f"gamma must lie in [0, 1], got {cfg.gamma}")
    if not 0.0 < cfg.eps_base <= 1.0 or cfg.eps_alpha < 0:
        raise ValueError(f"eps_base must lie in (0, 1] and eps_alpha be >= 0, got {cfg.eps_base}, {cfg.eps_alpha}")
    for name in ("lr", "samples_per_insert", "error_buffer"):
        if getattr(cfg, name) <= 0:
            raise ValueError(f"{name} must be > 0, got {getattr(cfg, name)}")
    if cfg.batch_size > cfg.buffer_size:
        raise ValueError(f"batch_size ({cfg.batch_size}) must not exceed buffer_size ({cfg.buffer_size})")


def actor_epsilon(index: int, count: int, base: float = 0.4, alpha: float = 7.0) -> float:
    """Ape-X's exploration rate of actor ``index`` (0-based) of ``count``: ``base ** (1 + alpha i / (count - 1))``."""
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"actor index {index} is not in 0..{count - 1}")
    if count == 1:
        return base
    return float(base ** (1.0 + alpha * index / (count - 1)))
