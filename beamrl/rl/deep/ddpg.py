"""DDPG and TD3: a deterministic actor and Q critics learned off-policy from a ReplayMemory.

For a batch (``reward``/``discount`` as the replay gives them, ``w`` the prioritized
replay's weights, 1 without)::

    a'   = μ_target(s') [+ clip(N(0, σ̃), -c, c), clipped to the bounds]      (TD3 smoothing)
    y    = reward + discount * min_i Q_target_i(s', a')                       (DDPG: one critic)
    critic loss = mean(w Σ_i (Q_i(s, a) - y)^2)
    every ``policy_delay`` updates (DDPG: every one):
        actor loss = -mean(Q_1(s, μ(s)));  targets <- τ online + (1 - τ) targets

``learn`` computes the gradients by hand (``MLPGrad``; autograd's bookkeeping costs more
than the matmuls of nets this small), into one flat buffer per optimizer::

    d critic loss / d Q_i(s, a) = 2 w (Q_i - y) / B
    d actor loss / d μ(s)       = -(1 / B) d Q_1 / d a     (the critic's input gradient, its weights untouched)
    μ(s) = low + (tanh(z) + 1) / 2 (high - low):   d μ / d z = (1 - tanh(z)^2) (high - low) / 2

and ``_critic_gradients_autograd``/``_actor_gradients_autograd`` are the same losses by
autograd, which ``tests/deep/test_math.py`` holds the hand-written ones to.
"""

from __future__ import annotations

import copy
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from beamrl.rl.deep.algo import (
    Algorithm,
    FlatGrads,
    action_info,
    adam,
    adam_step,
    flush_denormals,
    obs_dim,
    polyak,
)
from beamrl.rl.deep.config import DDPGConfig
from beamrl.rl.deep.nets import Critic, DeterministicActor, MLPGrad

__all__ = ["DDPG"]


class DDPG(Algorithm):
    """DDPG (``twin=False, policy_delay=1, target_noise=0``) or TD3 (the defaults of ``DDPGConfig``)."""

    policy_module = "actor"

    def __init__(
        self,
        cfg: DDPGConfig,
        observation_space: Any,
        action_space: Any,
        seed: int = 0,
        device: str | torch.device | None = None,
    ) -> None:
        """``device``: where to compute (default: ``cfg.device``; see ``beamrl.rl.deep.device``)."""
        super().__init__(seed, cfg.device if device is None else device)
        dim, continuous, bounds = action_info(action_space)
        if not continuous or bounds is None:
            raise ValueError("DDPG/TD3 need a Box action space; use dqn, a2c or ppo for discrete actions")
        self.cfg = cfg
        low, high = np.array(bounds[0], np.float32), np.array(bounds[1], np.float32)
        self.low, self.high = torch.from_numpy(low).to(self.device), torch.from_numpy(high).to(self.device)
        self.half = (self.high - self.low) / 2
        self._noise_bounds = (-cfg.target_noise_clip * self.half, cfg.target_noise_clip * self.half)  # TD3's noise clip
        self.n_obs = n_obs = obs_dim(observation_space)
        self.actor = self.place(DeterministicActor(n_obs, dim, cfg.hidden, low, high, cfg.activation))
        critics = [self.place(Critic(n_obs, dim, cfg.hidden, cfg.activation)) for _ in range(2 if cfg.twin else 1)]
        self.critics = torch.nn.ModuleList(critics)
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
        #: False: ``learn`` takes autograd's gradients and torch's clipping (the reference, for tests)
        self.by_hand = True
        self._actor_run = MLPGrad(self.actor.pi, cfg.activation)
        self._actor_target_run = MLPGrad(self.actor_target.pi, cfg.activation)
        self._critic_runs = [MLPGrad(c.q, cfg.activation) for c in critics]
        self._critic_target_runs = [MLPGrad(cast(Critic, c).q, cfg.activation) for c in self.critics_target]
        self._actor_grads = FlatGrads(self._actor_params)
        self._critic_grads = FlatGrads(self._critic_params)
        self._critic_grad_views = [self._critic_grads.of(c.parameters()) for c in self.critics]
        self._online = [*self._actor_params, *self._critic_params]
        self._targets = [*self.actor_target.parameters(), *self.critics_target.parameters()]

    def learn(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        with flush_denormals():  # the Adam moments of dead units would otherwise slow every step (see there)
            return self._learn(batch)

    def _learn(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        cfg = self.cfg
        b, dev = len(batch["reward"]), self.device
        obs = torch.as_tensor(batch["state"], dtype=torch.float32, device=dev).reshape(b, -1)
        nxt = torch.as_tensor(batch["next_state"], dtype=torch.float32, device=dev).reshape(b, -1)
        act = torch.as_tensor(batch["action"], dtype=torch.float32, device=dev).reshape(b, -1)
        reward = torch.as_tensor(batch["reward"], dtype=torch.float32, device=dev)
        discount = torch.as_tensor(batch["discount"], dtype=torch.float32, device=dev)
        weights = torch.as_tensor(batch["weights"], dtype=torch.float32, device=dev) if "weights" in batch else None
        y = self.targets(nxt, reward, discount)
        if self.by_hand:
            critic_loss, q, td = self._critic_gradients_by_hand(obs, act, y, weights)
            self._critic_grads.clip(cfg.max_grad_norm)
        else:
            critic_loss, q, td = self._critic_gradients_autograd(obs, act, y, weights)
            nn.utils.clip_grad_norm_(self._critic_params, cfg.max_grad_norm)
        adam_step(self.critic_opt)
        self.updates += 1
        losses = [critic_loss, q.mean()]
        if self.updates % cfg.policy_delay == 0:
            if self.by_hand:
                losses.append(self._actor_gradients_by_hand(obs))
                self._actor_grads.clip(cfg.max_grad_norm)
            else:
                losses.append(self._actor_gradients_autograd(obs))
                nn.utils.clip_grad_norm_(self._actor_params, cfg.max_grad_norm)
            adam_step(self.actor_opt)
            polyak(self._targets, self._online, cfg.tau)
        values = self.host(torch.stack(losses)).tolist()  # read once
        stats: dict[str, Any] = {"loss": values[0], "q": values[1], "td": self.host(td.abs_())}
        if len(values) > 2:
            stats["actor_loss"] = values[2]
        return stats

    def targets(self, nxt: torch.Tensor, reward: torch.Tensor, discount: torch.Tensor) -> torch.Tensor:
        """``y = reward + discount * min_i Q_target_i(s', a')``, a' the (TD3: smoothed) target action."""
        cfg = self.cfg
        with torch.no_grad():
            a2 = self._bounded(self._actor_target_run.forward(nxt, keep=False))
            if cfg.target_noise > 0:
                noise = (torch.randn_like(a2) * cfg.target_noise * self.half).clamp_(*self._noise_bounds)
                a2 = (a2 + noise).clamp_(self.low, self.high)
            x = torch.cat([nxt, a2], dim=-1)
            q_next = self._critic_target_runs[0].forward(x, keep=False)
            for run in self._critic_target_runs[1:]:
                q_next = torch.minimum(q_next, run.forward(x, keep=False))
            return reward + discount * q_next.squeeze(-1)

    def _bounded(self, z: torch.Tensor) -> torch.Tensor:
        """The actor's output layer (``DeterministicActor.forward`` after its MLP)."""
        return self.actor.low + (torch.tanh(z) + 1.0) * 0.5 * (self.actor.high - self.actor.low)

    # -- the losses and their gradients: by autograd (the reference) and by hand (what learn runs) --
    def _critic_gradients_autograd(
        self, obs: torch.Tensor, act: torch.Tensor, y: torch.Tensor, weights: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Set the critics' ``.grad``; return (critic loss, Q_1(s, a), y - Q_1(s, a)), detached."""
        qs = [c(obs, act) for c in self.critics]
        per_item = sum((q - y).pow(2) for q in qs)
        assert isinstance(per_item, torch.Tensor)
        if weights is not None:
            per_item = per_item * weights
        loss = per_item.mean()
        self.critic_opt.zero_grad(set_to_none=True)
        loss.backward()
        return loss.detach(), qs[0].detach(), (y - qs[0]).detach()

    def _critic_gradients_by_hand(
        self, obs: torch.Tensor, act: torch.Tensor, y: torch.Tensor, weights: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The same as ``_critic_gradients_autograd`` with ``MLPGrad`` (see the module docstring)."""
        scale = 2.0 / len(y)
        with torch.no_grad():
            x = torch.cat([obs, act], dim=-1)
            per_item: torch.Tensor | None = None
            first_q = first_td = y
            for i, (run, out) in enumerate(zip(self._critic_runs, self._critic_grad_views, strict=True)):
                q = run.forward(x).squeeze(-1)
                err = q - y
                sq = err * err
                per_item = sq if per_item is None else per_item + sq
                d_q = err * scale if weights is None else err * weights * scale
                run.backward(d_q.unsqueeze(-1), out=out)
                if i == 0:
                    first_q, first_td = q, err.neg()
            assert per_item is not None
            if weights is not None:
                per_item = per_item * weights
            self._critic_grads.attach()
            return per_item.mean(), first_q, first_td

    def _actor_gradients_autograd(self, obs: torch.Tensor) -> torch.Tensor:
        """Set the actor's ``.grad`` from ``-mean(Q_1(s, μ(s)))``; return that loss, detached."""
        loss = -self.critics[0](obs, self.actor(obs)).mean()
        self.actor_opt.zero_grad(set_to_none=True)
        loss.backward()
        return loss.detach()

    def _actor_gradients_by_hand(self, obs: torch.Tensor) -> torch.Tensor:
        """The same as ``_actor_gradients_autograd`` with ``MLPGrad``, leaving the critics' gradients alone."""
        critic = self._critic_runs[0]
        with torch.no_grad():
            z = self._actor_run.forward(obs)
            t = torch.tanh(z)
            act = self.actor.low + (t + 1.0) * 0.5 * (self.actor.high - self.actor.low)
            q = critic.forward(torch.cat([obs, act], dim=-1))
            d_act = critic.input_grad(torch.full_like(q, -1.0 / len(q)))[:, self.n_obs :]
            d_z = (1.0 - t * t).mul_(d_act).mul_(self.half)
            self._actor_run.backward(d_z, out=self._actor_grads.grads)
            self._actor_grads.attach()
            return q.mean().neg()
