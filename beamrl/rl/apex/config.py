"""Ape-X DQN's hyper-parameters: the learner's DQN fields plus the distributed ones.

    cfg = apex_config("CartPole-v1", {"batch_size": 256})
    cfg.learner_overrides()      # the DQNConfig fields the Learner is started with
    actor_epsilon(i, n)          # ε of actor i of n: 0.4 ** (1 + 7 i / (n - 1))
    replay_names(cfg)            # ["replay"], or ["replay-0", ..., "replay-{R-1}"] with replay_shards=R
    shard_of(i, cfg.replay_shards)   # the shard actor i sends its transitions to

The class defaults follow the Ape-X paper (Horgan et al. 2018: batch 512, prioritized
replay with α = 0.6 and β = 0.4, 3-step returns, actors sending 50 transitions at a time
and pulling parameters every 400 steps, ε_i = 0.4^(1 + 7 i/(N−1))) with a replay and a
network sized for small machines; ``DEFAULTS`` holds what an env needs otherwise
(CartPole: batch 64, 32 samples per insert, measured below in the table's comment).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from beamrl.rl.deep.config import check_device, coerce_setting

__all__ = [
    "DEFAULTS",
    "ApexConfig",
    "actor_epsilon",
    "actor_epsilons",
    "apex_config",
    "replay_address",
    "replay_names",
    "shard_of",
]

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
    "device",
)


@dataclass
class ApexConfig:
    """Ape-X DQN: one learner and prioritized replay, many torch-free actors."""

    hidden: list[int] = field(default_factory=lambda: [128, 128])  #: hidden layer sizes of the Q-network
    activation: str = "relu"  #: "relu" or "tanh" between hidden layers
    gamma: float = 0.99  #: discount factor
    lr: float = 5e-4  #: the learner's Adam learning rate (at the start)
    lr_end: float = 5e-4  #: the learning rate decays linearly to this over ``lr_decay_updates`` updates
    lr_decay_updates: int = 5_000  #: learner updates over which the learning rate decays
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
    eps_per_env: bool = True  #: each env of an actor's vector env is one of the N x num_envs ε slots
    throttle: bool = True  #: actors pause while the replay's rate limiter has no insert headroom
    min_replay: int = 2_000  #: transitions the replay holds before the learner samples
    samples_per_insert: float = 8.0  #: the rate limiter's target: transitions sampled per transition inserted
    error_buffer: float = 4_096.0  #: the rate limiter's tolerance, in sampled transitions
    eval_every: int = 10_000  #: env steps (all actors) between greedy evaluations on the learner node
    eval_episodes: int = 10  #: episodes of a periodic evaluation
    learners: int = 1  #: data-parallel learner replicas (G > 1: G - 1 more learner nodes, see beamrl.rl.apex.replicas)
    replay_shards: int = 1  #: R > 1: R ReplayServers "replay-K" of buffer_size / R each (see shard_of)
    replay_checkpoint_s: float = 30.0  #: seconds between the replay's (each shard's) periodic checkpoints
    group_port: int = 0  #: the replicas' rendezvous port on the learner node (0: a free one; pin it for a firewall)
    device: str = "cpu"  #: where the learner computes: "cpu", "auto", "cuda", "cuda:N" (beamrl.rl.deep.device)
    #: how learner replicas average gradients: "gloo" (CPU tensors; replicas on ``device``) or "nccl"
    #: (one GPU per replica: replica r on cuda:LOCAL_RANK, whatever ``device`` says)
    learner_backend: str = "gloo"

    def learner_overrides(self) -> dict[str, Any]:
        """The DQN fields the Learner is configured with (beamrl.rl.deep.config.DQNConfig)."""
        values = {name: getattr(self, name) for name in _LEARNER_FIELDS}
        return {**values, "tau": 1.0, "lr_end": self.lr_end}

    def limiter(self) -> dict[str, Any]:
        """Each replay shard's rate limiter (beamrl.rl.replay.ratelimit.RateLimiter).

        A shard waits for its share of ``min_replay`` (at least one batch); the ratio and its
        tolerance are the run's, so R shards together allow what one replay would.
        """
        return {
            "min_size": max(math.ceil(self.min_replay / self.replay_shards), self.batch_size),
            "samples_per_insert": self.samples_per_insert,
            "error_buffer": self.error_buffer,
        }

    def shard_capacity(self) -> int:
        """Transitions each replay shard holds: ``buffer_size / replay_shards``, rounded up."""
        return math.ceil(self.buffer_size / self.replay_shards)

    def to_data(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


#: per env-id prefix: the values that differ from the class defaults (the paper's)
DEFAULTS: dict[str, dict[str, Any]] = {
    # CartPole needs many gradient steps more than big batches: with batch 512 (any ratio from 8
    # to 64 samples per insert, targets every 50 to 500 updates) its greedy return sat near 150
    # for 100k+ env steps here; batch 64 at 32 samples per insert reaches 500 within ~30k.
    "CartPole": {
        "batch_size": 64,
        "samples_per_insert": 32.0,
        "target_update": 500,
        "lr": 1e-3,
        "lr_end": 1e-4,
        "lr_decay_updates": 30_000,
        "min_replay": 1_000,
        "error_buffer": 1_000.0,
        "eval_every": 5_000,
    },
}


def apex_config(env_id: str, overrides: dict[str, Any] | None = None) -> ApexConfig:
    """The config of a run on ``env_id``: the class defaults, then ``DEFAULTS``, then ``overrides`` (checked)."""
    names = {f.name: f for f in dataclasses.fields(ApexConfig)}
    values: dict[str, Any] = {}
    for prefix, table in DEFAULTS.items():
        if env_id.startswith(prefix):
            values.update(table)
    values.update(overrides or {})
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ValueError(
            f"apex-dqn has no hyper-parameter {', '.join(map(repr, unknown))}: known are {', '.join(names)}"
        )
    base = ApexConfig()
    for key, value in values.items():
        values[key] = coerce_setting(key, value, getattr(base, key))
    cfg = dataclasses.replace(base, **values)
    _check(cfg)
    return cfg


def _check(cfg: ApexConfig) -> None:
    positive = ("batch_size", "target_update", "checkpoint_every", "n_step", "buffer_size", "num_envs")
    counts = ("send_every", "pull_every", "min_replay", "eval_every", "eval_episodes", "learners", "replay_shards")
    for name in (*positive, *counts):
        if getattr(cfg, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(cfg, name)}")
    if cfg.activation not in ("relu", "tanh"):
        raise ValueError(f"activation must be 'relu' or 'tanh', got {cfg.activation!r}")
    if not 0.0 <= cfg.gamma <= 1.0:
        raise ValueError(f"gamma must lie in [0, 1], got {cfg.gamma}")
    if not 0.0 < cfg.eps_base <= 1.0 or cfg.eps_alpha < 0:
        raise ValueError(f"eps_base must lie in (0, 1] and eps_alpha be >= 0, got {cfg.eps_base}, {cfg.eps_alpha}")
    for name in ("lr", "lr_end", "samples_per_insert", "error_buffer", "lr_decay_updates", "replay_checkpoint_s"):
        if getattr(cfg, name) <= 0:
            raise ValueError(f"{name} must be > 0, got {getattr(cfg, name)}")
    if not 0 <= cfg.group_port <= 65535:
        raise ValueError(f"group_port must be a TCP port in 0..65535 (0: a free one), got {cfg.group_port}")
    if cfg.group_port and cfg.learners == 1:
        raise ValueError("group_port is where learner replicas meet: it needs --set learners=G with G >= 2")
    check_device(cfg.device)
    if cfg.learner_backend not in ("gloo", "nccl"):
        raise ValueError(f"learner_backend must be 'gloo' (CPU) or 'nccl' (GPUs), got {cfg.learner_backend!r}")
    if cfg.learner_backend != "gloo" and cfg.learners == 1:
        raise ValueError(
            "learner_backend is how learner replicas average gradients: it needs --set learners=G with G >= 2"
            " (one learner on a GPU: --set device=cuda)"
        )
    if cfg.batch_size > cfg.buffer_size:
        raise ValueError(f"batch_size ({cfg.batch_size}) must not exceed buffer_size ({cfg.buffer_size})")
    if cfg.replay_shards > cfg.buffer_size:
        raise ValueError(
            f"replay_shards ({cfg.replay_shards}) must not exceed buffer_size ({cfg.buffer_size}): "
            "every shard holds part of the buffer"
        )
    if cfg.replay_shards > 1 and cfg.shard_capacity() < cfg.batch_size:
        raise ValueError(
            f"replay_shards={cfg.replay_shards} splits buffer_size={cfg.buffer_size} into shards of "
            f"{cfg.shard_capacity()} transitions, fewer than one batch (batch_size={cfg.batch_size}): "
            "use fewer shards or a bigger buffer_size"
        )


def replay_names(cfg: ApexConfig) -> list[str]:
    """The replay's process names: ``["replay"]``, or ``replay-0`` ... ``replay-{R-1}`` with R shards."""
    if cfg.replay_shards == 1:
        return ["replay"]
    return [f"replay-{k}" for k in range(cfg.replay_shards)]


def replay_address(cfg: ApexConfig, node: str | None = None) -> Any:
    """What a ``LearnerLoop`` samples: the replay's name (``(name, node)`` on another node), or a list of shards'."""
    addresses = [name if node is None else (name, node) for name in replay_names(cfg)]
    return addresses[0] if len(addresses) == 1 else addresses


def shard_of(actor_index: int, shards: int) -> int:
    """The replay shard actor ``actor_index`` sends its transitions to: ``actor_index mod shards``.

    Stable (an actor restarted on a restarted node feeds the same shard, so its n-step
    windows and the shard's checkpoint stay its own) and even: N actors fill R shards with
    N/R actors each, give or take one.
    """
    if shards < 1 or actor_index < 0:
        raise ValueError(f"shard_of needs an actor index >= 0 and shards >= 1, got {actor_index}, {shards}")
    return actor_index % shards


def actor_epsilon(index: int, count: int, base: float = 0.4, alpha: float = 7.0) -> float:
    """Ape-X's exploration rate of actor ``index`` (0-based) of ``count``: ``base ** (1 + alpha i / (count - 1))``."""
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"actor index {index} is not in 0..{count - 1}")
    if count == 1:
        return base
    return float(base ** (1.0 + alpha * index / (count - 1)))


def actor_epsilons(index: int, count: int, cfg: ApexConfig) -> list[float]:
    """The ε of each env of actor ``index`` of ``count``.

    With ``eps_per_env`` every env is one of ``count × num_envs`` Ape-X actors (the paper's
    actors each step one env): env ``j`` of actor ``i`` gets slot ``i × num_envs + j`` of the
    schedule. Without it, all envs of actor ``i`` share ``actor_epsilon(i, count)``.
    """
    if not cfg.eps_per_env:
        return [actor_epsilon(index, count, cfg.eps_base, cfg.eps_alpha)] * cfg.num_envs
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"actor index {index} is not in 0..{count - 1}")
    slots = count * cfg.num_envs
    first = index * cfg.num_envs
    return [actor_epsilon(first + j, slots, cfg.eps_base, cfg.eps_alpha) for j in range(cfg.num_envs)]
