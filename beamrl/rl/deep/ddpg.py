"""DDPG and TD3: a deterministic actor and Q critics learned off-policy from a ReplayMemory.

For a batch (``reward``/``discount`` as the replay gives them)::

    a'   = μ_target(s') [+ clip(N(0, σ̃), -c, c), clipped to the bounds]      (TD3 smoothing)
    y    = reward + discount * min_i Q_target_i(s', a')                       (DDPG: one critic)
    critic loss = Σ_i mean((Q_i(s, a) - y)^2)
    every ``policy_delay`` updates (DDPG: every one):
        actor loss = -mean(Q_1(s, μ(s)));  targets <- τ online + (1 - τ) targets
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch

from beamrl.rl.deep.algo import Algorithm, action_info, adam, clip_step, obs_dim, polyak
from beamrl.rl.deep.config import DDPGConfig
from beamrl.rl.deep.nets import Critic, DeterministicActor

__all__ = ["DDPG"]


class DDPG(Algorithm):
    """DDPG (``twin=False, policy_delay=1, target_noise=0``) or TD3 (the defaults of ``DDPGConfig``)."""

    policy_module = "actor"

    def __init__(self, cfg: DDPGConfig, observation_space: Any, action_space: Any, seed: int = 0) -> None:
        super().__init__(seed)
        dim, continuous, bounds = action_info(action_space)
        if not continuous or bounds is None:
            raise ValueError("DDPG/TD3 need a Box action space; use dqn, a2c or ppo for discrete actions")
        self.cfg = cfg
        low, high = np.array(bounds[0], np.float32), np.array(bounds[1], np.float32)
        self.low, self.high = torch.from_numpy(low), torch.from_numpy(high)
        self.half = (self.high - self.low) / 2
        n_obs = obs_dim(observation_space)
        self.actor = DeterministicActor(n_obs, dim, cfg.hidden, low, high, cfg.activation)
        self.critics = torch.nn.ModuleList(
            [Critic(n_obs, dim, cfg.hidden, cfg.activation) for _ in range(2 if cfg.twin else 1)]
        )
        self.actor_target = copy.deepcopy(self.actor)
        self.critics_target = copy.deepcopy(self.critics)
        self.actor_opt = adam(self.actor.parameters(), cfg.lr)
        self.critic_opt = adam(self.critics.parameters(), cfg.lr)
        self.modules = {
            "actor": self.actor,
            "critics": self.critics,
            "actor_target": self.actor_target,
            "critics_target": self.critics_target,
        }
        self.optimizers = {"actor": self.actor_opt, "critics": self.critic_opt}
        self._actor_params = list(self.actor.parameters())
        self._critic_params = list(self.critics.parameters())

    def learn(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        cfg = self.cfg
        b = len(batch["reward"])
        obs = torch.as_tensor(batch["state"], dtype=torch.float32).reshape(b, -1)
        nxt = torch.as_tensor(batch["next_state"], dtype=torch.float32).reshape(b, -1)
        act = torch.as_tensor(batch["action"], dtype=torch.float32).reshape(b, -1)
        reward = torch.as_tensor(batch["reward"], dtype=torch.float32)
        discount = torch.as_tensor(batch["discount"], dtype=torch.float32)
        with torch.no_grad():
            a2 = self.actor_target(nxt)
            if cfg.target_noise > 0:
                noise = (torch.randn_like(a2) * cfg.target_noise * self.half).clamp(
                    -cfg.target_noise_clip * self.half, cfg.target_noise_clip * self.half
                )
                a2 = torch.max(torch.min(a2 + noise, self.high), self.low)
            q_next = torch.stack([c(nxt, a2) for c in self.critics_target]).min(dim=0).values
            y = reward + discount * q_next
        qs = [c(obs, act) for c in self.critics]
        per_item = sum((q - y).pow(2) for q in qs)
        assert isinstance(per_item, torch.Tensor)
        if "weights" in batch:
            per_item = per_item * torch.as_tensor(batch["weights"], dtype=torch.float32)
        critic_loss = per_item.mean()
        clip_step(self.critic_opt, critic_loss, self._critic_params, cfg.max_grad_norm)
        self.updates += 1
        stats: dict[str, Any] = {
            "loss": critic_loss.item(),
            "q": qs[0].mean().item(),
            "td": (y - qs[0]).detach().abs().numpy(),
        }
        if self.updates % cfg.policy_delay == 0:
            actor_loss = -self.critics[0](obs, self.actor(obs)).mean()
            clip_step(self.actor_opt, actor_loss, self._actor_params, cfg.max_grad_norm)
            polyak(self.actor_target, self.actor, cfg.tau)
            polyak(self.critics_target, self.critics, cfg.tau)
            stats["actor_loss"] = actor_loss.item()
        return stats
