"""A3C's hyper-parameters: the n-step actor-critic loss's, and the distributed ones.

    cfg = a3c_config("CartPole-v1", {"lr": 1e-3})
    cfg.to_data()                 # JSON-able: what a worker on another node is started with

The loss is A2C's (``beamrl.rl.deep.pg``: advantages from ``n_steps``-step returns, a value
baseline, an optional entropy bonus); each worker computes it on its own rollouts and pushes
the gradient, and the learner applies pushes one at a time with one shared optimizer
(Mnih et al. 2016 share RMSProp statistics between threads; here the learner owns them).
A push computed on parameters more than ``max_staleness`` versions old is dropped.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from beamrl.rl.deep.config import coerce_setting

__all__ = ["DEFAULTS", "A3CConfig", "a3c_config"]


@dataclass
class A3CConfig:
    """A3C: workers push n-step actor-critic gradients, one learner applies them."""

    hidden: list[int] = field(default_factory=lambda: [64, 64])  #: hidden layer sizes of the policy and value MLPs
    activation: str = "tanh"  #: "relu" or "tanh" between hidden layers
    gamma: float = 0.99  #: discount factor
    lr: float = 7e-4  #: the shared optimizer's learning rate (at the start)
    lr_end: float = 7e-4  #: the learning rate decays linearly to this over ``lr_decay_updates`` applied pushes
    lr_decay_updates: int = 10_000  #: applied pushes over which the learning rate decays
    optimizer: str = "rmsprop"  #: the learner's shared optimizer: "rmsprop" or "adam"
    num_envs: int = 8  #: environments each worker steps side by side
    n_steps: int = 5  #: steps per env in one rollout (the n of the n-step returns)
    gae_lambda: float = 1.0  #: GAE λ (1: plain n-step returns, as A3C)
    ent_coef: float = 0.0  #: entropy bonus weight
    vf_coef: float = 0.5  #: value loss weight
    normalize_advantages: bool = True  #: advantages scaled to zero mean, unit std per rollout
    max_grad_norm: float = 0.5  #: the learner clips each pushed gradient to this global norm
    max_staleness: int = 50  #: a push computed on parameters older than this many versions is dropped
    pull_every: int = 1  #: pushes of a worker between its parameter pulls (answered only when newer)
    checkpoint_every: int = 500  #: applied pushes between learner checkpoints
    eval_every: int = 10_000  #: env steps (all workers) between greedy evaluations on the learner node
    eval_episodes: int = 10  #: episodes of a periodic evaluation

    def to_data(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


#: per env-id prefix: the values that differ from the class defaults
DEFAULTS: dict[str, dict[str, Any]] = {
    # the A2C settings of beamrl.rl.deep.config (RMSProp, tanh, grad norm 0.5, 8 envs x 5 steps),
    # with a learning rate that decays: a constant 7e-4 kept CartPole's greedy return bouncing off 500
    "CartPole": {"lr": 1e-3, "lr_end": 1e-4, "lr_decay_updates": 8_000},
}


def a3c_config(env_id: str, overrides: dict[str, Any] | None = None) -> A3CConfig:
    """The config of a run on ``env_id``: the class defaults, then ``DEFAULTS``, then ``overrides`` (checked)."""
    names = {f.name for f in dataclasses.fields(A3CConfig)}
    values: dict[str, Any] = {}
    for prefix, table in DEFAULTS.items():
        if env_id.startswith(prefix):
            values.update(table)
    values.update(overrides or {})
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"a3c has no hyper-parameter {', '.join(map(repr, unknown))}: known are {', '.join(names)}")
    base = A3CConfig()
    cfg = dataclasses.replace(base, **{k: coerce_setting(k, v, getattr(base, k)) for k, v in values.items()})
    _check(cfg)
    return cfg


def _check(cfg: A3CConfig) -> None:
    positive = ("num_envs", "n_steps", "pull_every", "checkpoint_every", "eval_every", "eval_episodes")
    for name in (*positive, "lr_decay_updates", "max_staleness"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(cfg, name)}")
    if cfg.activation not in ("relu", "tanh"):
        raise ValueError(f"activation must be 'relu' or 'tanh', got {cfg.activation!r}")
    if cfg.optimizer not in ("rmsprop", "adam"):
        raise ValueError(f"optimizer must be 'rmsprop' or 'adam', got {cfg.optimizer!r}")
    if not 0.0 <= cfg.gamma <= 1.0 or not 0.0 <= cfg.gae_lambda <= 1.0:
        raise ValueError(f"gamma and gae_lambda must lie in [0, 1], got {cfg.gamma}, {cfg.gae_lambda}")
    for name in ("lr", "lr_end", "max_grad_norm"):
        if getattr(cfg, name) <= 0:
            raise ValueError(f"{name} must be > 0, got {getattr(cfg, name)}")
    for name in ("ent_coef", "vf_coef"):
        if getattr(cfg, name) < 0:
            raise ValueError(f"{name} must be >= 0, got {getattr(cfg, name)}")
