"""A3C's math (torch): a worker's n-step actor-critic gradient, and the learner's shared model.

    model = SharedModel(cfg, "CartPole-v1", seed=0)        # the learner's: networks + shared optimizer
    local = model.ac                                       # a worker holds its own ActorCritic copy
    grads, stats = compute_gradients(local, rollout, cfg)  # {"ac.pi.0.weight": ndarray, ...}
    model.apply(grads)                                     # checked, clipped, one optimizer step

The loss on a rollout (arrays (T, N): ``obs``, ``actions``, ``rewards``, ``terminated``,
``dones``, ``next_obs``), with ``V`` the worker's critic and ``A`` the n-step advantage
(``beamrl.rl.deep.pg.gae`` with λ = ``gae_lambda``; λ = 1 is A3C's n-step return)::

    loss = -mean(log π(a|s) A) + vf_coef mean((V(s) - (A + V(s)))^2) / 2 - ent_coef mean(H(π(.|s)))

Gradients travel as numpy arrays named like the policy's parameters (``ac.<state_dict key>``),
so they are data the codec carries, never pickles.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from beamrl.errors import Rejected
from beamrl.rl.a3c.config import A3CConfig
from beamrl.rl.deep.algo import Algorithm, action_info, obs_dim
from beamrl.rl.deep.nets import ActorCritic
from beamrl.rl.deep.params import Params
from beamrl.rl.deep.pg import gae
from beamrl.rl.envs import make

__all__ = ["BadGradient", "SharedModel", "WorkerCopy", "compute_gradients", "load_into", "make_actor_critic"]

PREFIX = "ac."


class BadGradient(Rejected):
    """A pushed gradient that does not fit the model (names, shapes or values); the learner keeps running."""


def make_actor_critic(env_id: str, cfg: A3CConfig) -> ActorCritic:
    """The policy-and-value network for ``env_id``'s spaces (a worker's and the learner's are alike)."""
    env = make(env_id)
    try:
        obs_space, act_space = env.observation_space, env.action_space
    finally:
        env.close()
    n, continuous, bounds = action_info(act_space)
    return ActorCritic(obs_dim(obs_space), n, cfg.hidden, cfg.activation, continuous, 0.0, bounds)


def a3c_loss(ac: ActorCritic, rollout: dict[str, np.ndarray], cfg: A3CConfig) -> tuple[torch.Tensor, dict[str, float]]:
    """The loss of the module docstring on one rollout, and its parts."""
    t, n = rollout["rewards"].shape
    obs = torch.as_tensor(rollout["obs"], dtype=torch.float32).reshape(t * n, -1)
    nxt = torch.as_tensor(rollout["next_obs"], dtype=torch.float32).reshape(t * n, -1)
    act = torch.as_tensor(rollout["actions"]).reshape(t * n, -1)
    act = act.float() if ac.continuous else act.long().squeeze(-1)
    with torch.no_grad():
        values = ac.value(obs).reshape(t, n).numpy()
        next_values = ac.value(nxt).reshape(t, n).numpy()
    adv_np = gae(
        rollout["rewards"], values, next_values, rollout["terminated"], rollout["dones"], cfg.gamma, cfg.gae_lambda
    )
    ret = torch.as_tensor(adv_np + values, dtype=torch.float32).reshape(-1)
    adv = torch.as_tensor(adv_np, dtype=torch.float32).reshape(-1)
    if cfg.normalize_advantages and len(adv) > 1:
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    dist = ac.dist(obs)
    pg_loss = -(dist.log_prob(act) * adv).mean()
    v_loss = 0.5 * (ac.value(obs) - ret).pow(2).mean()
    entropy = dist.entropy().mean()
    loss = pg_loss + cfg.vf_coef * v_loss - cfg.ent_coef * entropy
    return loss, {"loss": loss.item(), "pg_loss": pg_loss.item(), "v_loss": v_loss.item(), "entropy": entropy.item()}


def compute_gradients(
    ac: ActorCritic, rollout: dict[str, np.ndarray], cfg: A3CConfig
) -> tuple[Params, dict[str, float]]:
    """d loss / d parameters of ``ac`` on ``rollout``, as named numpy arrays (unclipped), and the loss parts."""
    ac.zero_grad(set_to_none=True)
    loss, stats = a3c_loss(ac, rollout, cfg)
    loss.backward()
    grads: Params = {}
    for name, p in ac.named_parameters():
        g = p.grad
        grads[PREFIX + name] = np.zeros(tuple(p.shape), np.float32) if g is None else g.detach().numpy().copy()
    return grads, stats


def load_into(ac: nn.Module, params: Params) -> None:
    """Copy the learner's published parameters (``ac.<key>`` arrays) into a worker's module."""
    state = {k[len(PREFIX) :]: torch.from_numpy(np.asarray(v, np.float32)) for k, v in params.items()}
    ac.load_state_dict(state)


class SharedModel(Algorithm):
    """The learner's ActorCritic and the optimizer every worker's gradients go through."""

    policy_module = "ac"

    def __init__(self, cfg: A3CConfig, env_id: str, seed: int = 0) -> None:
        super().__init__(seed)
        self.cfg = cfg
        self.ac = make_actor_critic(env_id, cfg)
        params = list(self.ac.parameters())
        if cfg.optimizer == "rmsprop":
            self.opt: torch.optim.Optimizer = torch.optim.RMSprop(params, lr=cfg.lr, alpha=0.99, eps=1e-5)
        else:
            self.opt = torch.optim.Adam(params, lr=cfg.lr, eps=1e-5)
        self.modules = {"ac": self.ac}
        self.optimizers = {"ac": self.opt}
        self.shapes = {PREFIX + name: tuple(p.shape) for name, p in self.ac.named_parameters()}

    def check(self, grads: Any) -> dict[str, np.ndarray]:
        """``grads`` as float32 arrays, or ``BadGradient`` naming what does not fit."""
        if not isinstance(grads, dict):
            raise BadGradient(f"a gradient is a dict of arrays named like {sorted(self.shapes)[:2]}..., got {grads!r}")
        missing, extra = sorted(set(self.shapes) - set(grads)), sorted(set(grads) - set(self.shapes))
        if missing or extra:
            raise BadGradient(f"gradient names do not fit the model: missing {missing}, unknown {extra}")
        out = {}
        for name, shape in self.shapes.items():
            g = grads[name]
            if not isinstance(g, np.ndarray) or g.shape != shape:
                got = g.shape if isinstance(g, np.ndarray) else type(g).__name__
                raise BadGradient(f"gradient {name!r} must be an array of shape {shape}, got {got}")
            g = g.astype(np.float32, copy=False)
            if not np.isfinite(g).all():
                raise BadGradient(f"gradient {name!r} holds NaN or infinite values")
            out[name] = g
        return out

    def apply(self, grads: dict[str, np.ndarray]) -> float:
        """One optimizer step along checked gradients (clipped to ``max_grad_norm``); the norm before clipping."""
        cfg = self.cfg
        frac = min(1.0, self.updates / cfg.lr_decay_updates)
        self.set_lr(cfg.lr + (cfg.lr_end - cfg.lr) * frac)
        self.opt.zero_grad(set_to_none=True)
        for name, p in self.ac.named_parameters():
            p.grad = torch.from_numpy(np.array(grads[PREFIX + name]))
        norm = float(nn.utils.clip_grad_norm_(list(self.ac.parameters()), cfg.max_grad_norm))
        self.opt.step()
        self.updates += 1
        return norm

    def learn(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        """``batch`` is a gradient here (the Algorithm interface; the learner calls ``check`` + ``apply``)."""
        return {"grad_norm": self.apply(self.check(batch))}


class WorkerCopy:
    """A worker's torch side: its copy of the network, loaded with published parameters, and its gradients."""

    def __init__(self, env_id: str, cfg: A3CConfig) -> None:
        torch.set_num_threads(1)
        self.cfg = cfg
        self.ac = make_actor_critic(env_id, cfg)

    def load(self, params: Params) -> None:
        load_into(self.ac, params)

    def gradients(self, rollout: dict[str, np.ndarray]) -> tuple[Params, dict[str, float]]:
        return compute_gradients(self.ac, rollout, self.cfg)
