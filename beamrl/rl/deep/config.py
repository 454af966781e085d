"""Hyper-parameters of the deep agents: one dataclass per family and the table of defaults.

    cfg = config_for("dqn", "CartPole-v1", overrides=parse_sets(["lr=5e-4", "dueling=true"]))
    asdict(cfg)          # what summary.json records

``DEFAULTS`` is the one place that says which values an (algorithm, env) pair starts
from; they are public known-good settings (CleanRL, the RL Baselines3 Zoo) tuned for the
step budgets of issue 12. ``--set key=value`` overrides any field; values are parsed as
JSON first (``0.1``, ``true``, ``[64, 64]``), then as the field's type.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ALGOS",
    "DEFAULTS",
    "OFF_POLICY",
    "ON_POLICY",
    "TABLE",
    "Common",
    "DDPGConfig",
    "DQNConfig",
    "PGConfig",
    "Target",
    "check_device",
    "config_for",
    "parse_sets",
]


@dataclass
class Common:
    """Fields every deep algorithm has."""

    hidden: list[int] = field(default_factory=lambda: [64, 64])  #: hidden layer sizes of every MLP
    activation: str = "relu"  #: "relu" or "tanh" between hidden layers
    gamma: float = 0.99  #: discount factor
    lr: float = 1e-3  #: learning rate (Adam unless ``optimizer`` says otherwise)
    num_envs: int = 1  #: environments one actor steps side by side
    eval_every: int = 5_000  #: env steps between periodic evaluations (0: none)
    eval_episodes: int = 10  #: episodes of a periodic evaluation (greedy policy)
    keep_best: bool = True  #: the final model is the best periodic evaluation's, not the last
    checkpoint_every: int = 2_000  #: learner updates (on-policy: rollouts) between checkpoints
    param_sync_every: int = 1  #: learner updates between an actor's parameter refreshes
    max_grad_norm: float = 10.0  #: gradients are clipped to this global norm
    #: where the learner computes: "cpu", "auto" (a GPU when torch sees one), "cuda" or "cuda:N"
    #: (see beamrl.rl.deep.device); "cpu" by default: small nets on one env step faster there
    device: str = "cpu"


@dataclass
class DQNConfig(Common):
    """DQN with a target network, Double DQN, Huber loss, n-step returns and prioritized replay."""

    buffer_size: int = 50_000  #: replay capacity (transitions)
    batch_size: int = 64  #: transitions per learner update
    learning_starts: int = 1_000  #: env steps before the first update
    train_freq: int = 1  #: env steps (per env) between learning phases
    gradient_steps: int = 1  #: updates per learning phase
    target_update: int = 500  #: updates between hard target-network copies (tau == 1)
    tau: float = 1.0  #: target-network mixing factor (1: hard copy every ``target_update``)
    eps_start: float = 1.0  #: initial ε of the ε-greedy behaviour policy
    eps_end: float = 0.05  #: final ε
    eps_steps: int = 10_000  #: env steps over which ε decays linearly
    double: bool = True  #: Double DQN targets (online argmax, target evaluation)
    dueling: bool = False  #: dueling head (value + centred advantages)
    huber: bool = True  #: Huber (smooth L1) loss instead of squared error
    n_step: int = 3  #: n-step returns, through the ReplayMemory's windows
    prioritized: bool = False  #: prioritized replay (proportional)
    alpha: float = 0.6  #: priority exponent
    beta: float = 0.4  #: initial importance-sampling exponent (annealed to 1)
    lr_end: float | None = None  #: linear learning-rate decay to this value over the run (None: constant)


@dataclass
class PGConfig(Common):
    """Policy gradients: REINFORCE with a learned baseline, A2C and PPO (GAE, vector envs)."""

    n_steps: int = 128  #: steps per env in one rollout (REINFORCE: steps per update, whole episodes)
    gae_lambda: float = 0.95  #: GAE λ (1: Monte-Carlo advantages)
    epochs: int = 4  #: passes over a rollout (A2C/REINFORCE: 1)
    minibatch_size: int = 256  #: samples per gradient step (A2C/REINFORCE: the whole rollout)
    clip: float = 0.2  #: PPO's ratio clip ε
    clip_decay: bool = False  #: anneal ``clip`` linearly to 0 with the learning rate
    ent_coef: float = 0.0  #: entropy bonus weight
    vf_coef: float = 0.5  #: value loss weight
    normalize_advantages: bool = True  #: advantages scaled to zero mean, unit std per minibatch
    lr_decay: bool = True  #: learning rate decays linearly to 0 over the run
    optimizer: str = "adam"  #: "adam" or "rmsprop"
    log_std_init: float = 0.0  #: initial log standard deviation of a Gaussian policy


@dataclass
class DDPGConfig(Common):
    """DDPG with Gaussian exploration noise, and TD3 (twin critics, target smoothing, delayed actor)."""

    buffer_size: int = 200_000  #: replay capacity (transitions)
    batch_size: int = 256  #: transitions per update
    learning_starts: int = 1_000  #: env steps of uniform random actions before learning
    train_freq: int = 1  #: env steps between learning phases
    gradient_steps: int = 1  #: updates per learning phase
    tau: float = 0.005  #: Polyak factor of the target networks
    noise: float = 0.1  #: exploration noise std, as a fraction of the action half-range
    policy_delay: int = 2  #: TD3: critic updates per actor update (DDPG: 1)
    target_noise: float = 0.2  #: TD3: target policy smoothing noise (fraction of half-range)
    target_noise_clip: float = 0.5  #: TD3: clip of that noise
    twin: bool = True  #: TD3: two critics, the smaller target wins
    n_step: int = 1  #: n-step returns
    prioritized: bool = False  #: prioritized replay


ON_POLICY = ("reinforce", "a2c", "ppo")
OFF_POLICY = ("dqn", "ddpg", "td3")
ALGOS = (*OFF_POLICY, *ON_POLICY)
_CLASSES: dict[str, type[Common]] = {
    "dqn": DQNConfig,
    "reinforce": PGConfig,
    "a2c": PGConfig,
    "ppo": PGConfig,
    "ddpg": DDPGConfig,
    "td3": DDPGConfig,
}

#: per algorithm: defaults for every env (key ""), then per env-id prefix
DEFAULTS: dict[str, dict[str, dict[str, Any]]] = {
    "dqn": {
        "": {},
        "CartPole": {"hidden": [128, 128], "lr": 1e-3, "lr_end": 1e-4, "target_update": 500, "eps_steps": 12_000},
        "Acrobot": {
            "hidden": [256, 256],
            "lr": 6.3e-4,
            "batch_size": 128,
            "train_freq": 4,
            "gradient_steps": 4,
            "target_update": 250,
            "eps_end": 0.1,
            "eps_steps": 12_000,
            "learning_starts": 1_000,
            # the Zoo's plain DQN: with Double DQN and 3-step returns the last policy (100k steps,
            # seeds 0/1/2) gave -78.2/-405.5/-78.0; without them -71.2/-71.6 on seeds 0/1
            "double": False,
            "n_step": 1,
        },
    },
    "reinforce": {
        "": {
            "gae_lambda": 1.0,
            "epochs": 1,
            "n_steps": 2_000,
            "minibatch_size": 2_000,
            "lr_decay": False,
            "checkpoint_every": 10,
        },
        "CartPole": {"lr": 2e-3, "activation": "tanh"},
        "Pendulum": {"gamma": 0.9, "n_steps": 4_000, "minibatch_size": 4_000, "lr": 1e-3},
    },
    "a2c": {
        "": {
            "num_envs": 8,
            "n_steps": 5,
            "gae_lambda": 1.0,
            "epochs": 1,
            "minibatch_size": 40,
            "lr": 7e-4,
            "checkpoint_every": 500,
        },
        "CartPole": {"optimizer": "rmsprop", "activation": "tanh", "max_grad_norm": 0.5, "ent_coef": 0.0},
        "Pendulum": {"gamma": 0.9, "gae_lambda": 0.9, "n_steps": 8, "minibatch_size": 64, "log_std_init": -0.5},
    },
    "ppo": {
        "": {"num_envs": 8, "activation": "tanh", "max_grad_norm": 0.5, "checkpoint_every": 25},
        "CartPole": {
            "n_steps": 32,
            "minibatch_size": 256,
            "gae_lambda": 0.8,
            "gamma": 0.98,
            "epochs": 20,
            "lr": 1e-3,
            "clip_decay": True,
        },
        "Pendulum": {
            "num_envs": 4,
            "n_steps": 1024,
            "minibatch_size": 64,
            "gae_lambda": 0.95,
            "gamma": 0.9,
            "epochs": 10,
            "lr": 1e-3,
            "hidden": [64, 64],
        },
    },
    "ddpg": {
        "": {"hidden": [256, 256], "gamma": 0.98, "lr": 1e-3, "policy_delay": 1, "twin": False, "target_noise": 0.0},
    },
    "td3": {
        "": {"hidden": [256, 256], "gamma": 0.98, "lr": 1e-3},
    },
}


def _family_defaults(algo: str, env_id: str) -> dict[str, Any]:
    table = DEFAULTS[algo]
    values = dict(table.get("", {}))
    for prefix, overrides in table.items():
        if prefix and env_id.startswith(prefix):
            values.update(overrides)
    return values


def config_for(algo: str, env_id: str, overrides: dict[str, Any] | None = None) -> Common:
    """The config an (algorithm, env) run uses: class defaults, then ``DEFAULTS``, then ``overrides``."""
    if algo not in _CLASSES:
        raise ValueError(f"unknown deep algorithm {algo!r}: choose one of {', '.join(ALGOS)}")
    cls = _CLASSES[algo]
    values = _family_defaults(algo, env_id)
    values.update(overrides or {})
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ValueError(f"{algo} has no hyper-parameter {', '.join(map(repr, unknown))}: known are {', '.join(names)}")
    cfg = cls(**{k: _coerce(k, v, names[k]) for k, v in values.items()})
    _check(cfg)
    return cfg


def _coerce(key: str, value: Any, f: dataclasses.Field[Any]) -> Any:
    kind = str(f.type)
    if kind == "bool":
        if isinstance(value, bool):
            return value
        raise ValueError(f"{key} must be true or false, got {value!r}")
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
            raise ValueError(f"{key} must be an integer, got {value!r}")
        return int(value)
    if kind.startswith("float"):
        if value is None and "None" in kind:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{key} must be a number, got {value!r}")
        return float(value)
    if kind == "str":
        if not isinstance(value, str):
            raise ValueError(f"{key} must be a string, got {value!r}")
        return value
    if kind == "list[int]":
        if not isinstance(value, list) or not all(isinstance(v, int) and v > 0 for v in value):
            raise ValueError(f"{key} must be a list of positive integers like [64, 64], got {value!r}")
        return list(value)
    return value


_DEVICE = re.compile(r"^(cpu|auto|cuda(:\d+)?)$")


def check_device(name: object) -> None:
    """Refuse a ``device`` setting that is not spelled ``cpu``, ``auto``, ``cuda`` or ``cuda:N`` (no torch needed)."""
    if not isinstance(name, str) or not _DEVICE.match(name):
        raise ValueError(f"device must be 'cpu', 'auto', 'cuda' or 'cuda:N' (N: a GPU's index), got {name!r}")


def _check(cfg: Common) -> None:
    check_device(cfg.device)
    if cfg.activation not in ("relu", "tanh"):
        raise ValueError(f"activation must be 'relu' or 'tanh', got {cfg.activation!r}")
    for name in ("num_envs", "checkpoint_every", "param_sync_every", "eval_episodes"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(cfg, name)}")
    if not 0.0 <= cfg.gamma <= 1.0:
        raise ValueError(f"gamma must lie in [0, 1], got {cfg.gamma}")
    if cfg.lr <= 0:
        raise ValueError(f"lr must be > 0, got {cfg.lr}")
    if isinstance(cfg, PGConfig) and cfg.optimizer not in ("adam", "rmsprop"):
        raise ValueError(f"optimizer must be 'adam' or 'rmsprop', got {cfg.optimizer!r}")


def parse_sets(items: list[str] | None) -> dict[str, Any]:
    """``["lr=1e-3", "hidden=[64,64]"]`` -> ``{"lr": 0.001, "hidden": [64, 64]}`` (JSON values, else text)."""
    result: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects KEY=VALUE (e.g. lr=1e-3, dueling=true, hidden=[64,64]), got {item!r}")
        try:
            result[key.strip()] = json.loads(text)
        except ValueError:
            result[key.strip()] = text
    return result


@dataclass(frozen=True)
class Target:
    """One row of issue 12's learning table."""

    algo: str  #: algorithm
    env_id: str  #: environment id
    target: float  #: the greedy policy's mean return must reach this
    steps: int  #: within this many env steps


#: the learning table (judged on 20 greedy episodes at the end, median over seeds 0, 1, 2)
TABLE = [
    Target("dqn", "CartPole-v1", 475.0, 50_000),
    Target("dqn", "Acrobot-v1", -100.0, 100_000),
    Target("reinforce", "CartPole-v1", 475.0, 300_000),
    Target("a2c", "CartPole-v1", 475.0, 300_000),
    Target("ppo", "CartPole-v1", 475.0, 100_000),
    Target("ppo", "Pendulum-v1", -250.0, 200_000),
    Target("ddpg", "Pendulum-v1", -200.0, 20_000),
    Target("td3", "Pendulum-v1", -200.0, 20_000),
]


def coerce_setting(key: str, value: Any, default: Any) -> Any:
    """A ``--set`` value as the type of the setting's ``default`` (Ape-X, A3C), or a ValueError naming ``key``."""
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
