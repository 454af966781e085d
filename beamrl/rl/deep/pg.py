"""Policy gradients on rollouts: REINFORCE with a learned baseline, A2C and PPO, all with GAE.

A rollout is a dict of arrays with leading dims (T, N) (steps, envs): ``obs``,
``actions``, ``rewards``, ``terminated``, ``dones`` (terminated or truncated) and
``next_obs`` (the real next observation, before any reset), plus ``progress`` (the
run's fraction done, for the schedules). The update::

    δ_t   = r_t + γ V(s_{t+1}) (1 - terminated_t) - V(s_t)     (a time limit bootstraps)
    A_t   = δ_t + γ λ (1 - done_t) A_{t+1}                     (GAE; λ = 1: Monte Carlo)
    R_t   = A_t + V(s_t)                                        (the value target)
    PPO:        L = -min(ρ A, clip(ρ, 1-ε, 1+ε) A),  ρ = π(a|s) / π_old(a|s)
    A2C/REINFORCE: L = -log π(a|s) A
    loss  = L + vf_coef (V(s) - R)^2 / 2 - ent_coef H(π(.|s))

PPO runs ``epochs`` passes of shuffled minibatches; A2C and REINFORCE one step on the
whole rollout (REINFORCE's rollouts are whole episodes of one env, its λ is 1).

``learn`` computes the loss's gradient by hand (``beamrl.rl.deep.pg_grad``: autograd's
bookkeeping and ``torch.distributions`` cost more than the arithmetic on networks this
small); ``PG._gradients_autograd`` writes the same loss for autograd, and
``tests/deep/test_math.py`` checks that the two agree.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from beamrl.rl.deep.algo import Algorithm, action_info, adam, obs_dim
from beamrl.rl.deep.config import PGConfig
from beamrl.rl.deep.nets import ActorCritic
from beamrl.rl.deep.pg_grad import ActorCriticGrad

__all__ = ["PG", "gae"]


def gae(
    rewards: np.ndarray,
    values: np.ndarray,
    next_values: np.ndarray,
    terminated: np.ndarray,
    dones: np.ndarray,
    gamma: float,
    lam: float,
) -> np.ndarray:
    """Generalised advantage estimates (float64) for arrays of shape (T, ...); see the module docstring."""
    values = np.asarray(values, dtype=np.float64)
    next_values = np.asarray(next_values, dtype=np.float64)
    delta = np.asarray(rewards, np.float64) + gamma * next_values * (1.0 - np.asarray(terminated, np.float64)) - values
    carry = gamma * lam * (1.0 - np.asarray(dones, np.float64))  # how much of A_{t+1} flows into A_t
    if delta[0].size == 1:  # one env (REINFORCE's long rollouts): python floats cost a tenth of numpy's scalars
        out, last = [], 0.0
        for d, c in zip(reversed(delta.reshape(-1).tolist()), reversed(carry.reshape(-1).tolist()), strict=True):
            last = d + c * last
            out.append(last)
        out.reverse()
        return np.array(out).reshape(delta.shape)
    adv = np.empty_like(delta)
    last_row = np.zeros_like(delta[0])
    for t in range(len(delta) - 1, -1, -1):
        last_row = delta[t] + carry[t] * last_row
        adv[t] = last_row
    return adv


def ppo_policy_loss(logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, clip: float) -> torch.Tensor:
    """PPO's clipped surrogate (to minimise)."""
    ratio = (logp - old_logp).exp()
    return -torch.min(ratio * adv, ratio.clamp(1.0 - clip, 1.0 + clip) * adv).mean()


class PG(Algorithm):
    """REINFORCE + baseline, A2C or PPO (``mode``), categorical or Gaussian policy."""

    policy_module = "ac"

    def __init__(
        self,
        mode: str,
        cfg: PGConfig,
        observation_space: Any,
        action_space: Any,
        seed: int = 0,
        device: str | torch.device | None = None,
    ) -> None:
        """``device``: where to compute (default: ``cfg.device``; see ``beamrl.rl.deep.device``)."""
        super().__init__(seed, cfg.device if device is None else device)
        if mode not in ("reinforce", "a2c", "ppo"):
            raise ValueError(f"unknown policy-gradient mode {mode!r}")
        self.mode, self.cfg = mode, cfg
        n, continuous, bounds = action_info(action_space)
        self.continuous = continuous
        self.ac = self.place(
            ActorCritic(obs_dim(observation_space), n, cfg.hidden, cfg.activation, continuous, cfg.log_std_init, bounds)
        )
        # RMSprop: foreach, one kernel per operation over all tensors (torch has no fused one on CPU);
        # Adam: fused, one kernel per step (a third of foreach's cost at this size)
        params = list(self.ac.parameters())
        if cfg.optimizer == "rmsprop":
            self.opt: torch.optim.Optimizer = torch.optim.RMSprop(params, lr=cfg.lr, alpha=0.99, eps=1e-5, foreach=True)
        else:
            self.opt = adam(params, cfg.lr, eps=1e-5)
        self.modules = {"ac": self.ac}
        self.optimizers = {"ac": self.opt}
        self._params = params
        self._by_hand = ActorCriticGrad(self.ac)  # the gradient without autograd (beamrl.rl.deep.pg_grad)

    def learn(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        cfg = self.cfg
        frac = min(1.0, float(batch.get("progress", 0.0)))
        if cfg.lr_decay:
            self.set_lr(cfg.lr * max(1.0 - frac, 0.0))
        clip = cfg.clip * (1.0 - frac) if cfg.clip_decay else cfg.clip
        clip = max(clip, 1e-3)
        t, n = batch["rewards"].shape
        dev = self.device
        obs = torch.as_tensor(batch["obs"], dtype=torch.float32, device=dev).reshape(t * n, -1)
        nxt = torch.as_tensor(batch["next_obs"], dtype=torch.float32, device=dev).reshape(t * n, -1)
        act = torch.as_tensor(batch["actions"], device=dev).reshape(t * n, -1)
        act = act.float() if self.continuous else act.long().squeeze(-1)
        with torch.no_grad():
            both = self._by_hand.values(torch.cat([obs, nxt]))  # V(s) and V(s') in one pass
            both_np = self.host(both)
            values, next_values = both_np[: t * n].reshape(t, n), both_np[t * n :].reshape(t, n)
            old_logp = self._by_hand.log_prob(obs, act)
        adv_np = gae(
            batch["rewards"], values, next_values, batch["terminated"], batch["dones"], cfg.gamma, cfg.gae_lambda
        )
        ret = torch.as_tensor(adv_np + values, dtype=torch.float32, device=dev).reshape(-1)
        adv_all = torch.as_tensor(adv_np, dtype=torch.float32, device=dev).reshape(-1)
        size = t * n
        epochs, mb = (cfg.epochs, min(cfg.minibatch_size, size)) if self.mode == "ppo" else (1, size)
        totals = torch.zeros(4, device=dev)  # loss, pg_loss, v_loss, entropy: summed as tensors, read once
        steps = 0
        for _ in range(epochs):
            order = torch.randperm(size, device=dev)
            for start in range(0, size - mb + 1, mb):
                idx = order[start : start + mb]
                adv = adv_all[idx]
                if cfg.normalize_advantages and len(idx) > 1:
                    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                totals += self._gradients_by_hand(obs[idx], act[idx], old_logp[idx], adv, ret[idx], clip)
                self._by_hand.clip_grad_norm(cfg.max_grad_norm)
                self.opt.step()
                steps += 1
        self.updates += 1
        names = ("loss", "pg_loss", "v_loss", "entropy")
        return dict(zip(names, self.host(totals / max(steps, 1)).tolist(), strict=True))

    # -- the loss and its gradient: by autograd (the reference) and by hand (what learn runs) --
    def _gradients_autograd(
        self,
        obs: torch.Tensor,
        act: torch.Tensor,
        old_logp: torch.Tensor,
        adv: torch.Tensor,
        ret: torch.Tensor,
        clip: float,
    ) -> torch.Tensor:
        """Set every parameter's ``.grad`` from the module docstring's loss; return (loss, pg_loss, v_loss, entropy)."""
        dist = self.ac.dist(obs)
        logp = dist.log_prob(act)
        pg_loss = ppo_policy_loss(logp, old_logp, adv, clip) if self.mode == "ppo" else -(logp * adv).mean()
        v_loss = 0.5 * (self.ac.value(obs) - ret).pow(2).mean()
        entropy = dist.entropy().mean()
        loss = pg_loss + self.cfg.vf_coef * v_loss - self.cfg.ent_coef * entropy
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        return torch.stack([loss, pg_loss, v_loss, entropy]).detach()

    def _gradients_by_hand(
        self,
        obs: torch.Tensor,
        act: torch.Tensor,
        old_logp: torch.Tensor,
        adv: torch.Tensor,
        ret: torch.Tensor,
        clip: float,
    ) -> torch.Tensor:
        """The same as ``_gradients_autograd`` with ``ActorCriticGrad`` (its derivatives: ``pg_grad``'s docstring)."""
        cfg, size = self.cfg, len(obs)
        with torch.no_grad():
            head, value = self._by_hand.forward(obs, act)
            if self.mode == "ppo":
                ratio = (head.log_prob - old_logp).exp()
                plain, clipped = ratio * adv, ratio.clamp(1.0 - clip, 1.0 + clip) * adv
                pg_loss = -torch.min(plain, clipped).mean()
                d_log_prob = (plain <= clipped) * plain * (-1.0 / size)  # the clipped term's gradient is 0
            else:
                pg_loss = -(head.log_prob * adv).mean()
                d_log_prob = adv * (-1.0 / size)
            err = value - ret
            v_loss = 0.5 * (err * err).mean()
            entropy = head.entropy.mean()
            loss = pg_loss + cfg.vf_coef * v_loss - cfg.ent_coef * entropy
            self._by_hand.backward(head, d_log_prob, -cfg.ent_coef / size, err * (cfg.vf_coef / size))
            return torch.stack([loss, pg_loss, v_loss, entropy])
