"""DQN: target network, Double DQN, Huber loss, n-step targets, prioritized replay, dueling head.

The update, for a batch from ``ReplayMemory`` (whose ``reward`` is already the n-step
return and whose ``discount`` is γ^k, or 0 when the episode terminated within the
window)::

    a*     = argmax_a Q_online(s', a)         (Double DQN; plain DQN: argmax of Q_target)
    y      = reward + discount * Q_target(s', a*)
    td     = y - Q_online(s, a)
    loss   = mean(w * huber(td))              (w: importance weights, 1 without priorities)

The target network is copied every ``target_update`` updates (``tau == 1``) or mixed
in by ``tau`` after every update. ``|td|`` goes back to the replay as new priorities.

The plain Q-network's gradient is computed by hand (``MLPGrad``: the loss's derivative
``d loss / d Q(s, a) = -w clip(td, -1, 1) / B`` (Huber; squared error: ``-2 w td / B``)
backpropagated through the MLP), which costs a fraction of autograd's bookkeeping on
networks this small; the dueling head goes through autograd. Both give the same
gradients (to float rounding; ``tests/deep/test_math.py`` checks it).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from beamrl.rl.deep.algo import Algorithm, FlatGrads, action_info, adam, adam_step, obs_dim, polyak
from beamrl.rl.deep.config import DQNConfig
from beamrl.rl.deep.nets import DuelingQNet, MLPGrad, QNet

__all__ = ["DQN", "dqn_targets"]


def dqn_targets(
    q_next_online: torch.Tensor, q_next_target: torch.Tensor, reward: torch.Tensor, discount: torch.Tensor, double: bool
) -> torch.Tensor:
    """``reward + discount * Q_target(s', a*)`` with ``a*`` from the online net (Double) or the target."""
    source = q_next_online if double else q_next_target
    best = source.argmax(dim=1, keepdim=True)
    return reward + discount * q_next_target.gather(1, best).squeeze(1)


class DQN(Algorithm):
    """The DQN family's learner (see the module docstring)."""

    policy_module = "q"
    supports_grad_sync = True

    def __init__(
        self,
        cfg: DQNConfig,
        observation_space: Any,
        action_space: Any,
        seed: int = 0,
        device: str | torch.device | None = None,
    ) -> None:
        """``device``: where to compute (default: ``cfg.device``; see ``beamrl.rl.deep.device``)."""
        super().__init__(seed, cfg.device if device is None else device)
        n, continuous, _ = action_info(action_space)
        if continuous:
            raise ValueError("DQN needs a Discrete action space; use ddpg or td3 for continuous actions")
        self.cfg = cfg
        net_cls = DuelingQNet if cfg.dueling else QNet
        self.q = self.place(net_cls(obs_dim(observation_space), n, cfg.hidden, cfg.activation))
        self.q_target = copy.deepcopy(self.q)
        self.opt = adam(self.q.parameters(), cfg.lr)
        self.modules = {"q": self.q, "q_target": self.q_target}
        self.optimizers = {"q": self.opt}
        self._params = list(self.q.parameters())
        self._by_hand: MLPGrad | None = None  # the plain Q-network's gradient by hand (see the module docstring)
        self._target_by_hand: MLPGrad | None = None
        self._grads: FlatGrads | None = None  # the by-hand gradients' one buffer: one norm, one clip
        if isinstance(self.q, QNet) and isinstance(self.q_target, QNet):
            self._by_hand = MLPGrad(self.q.body, cfg.activation)
            self._target_by_hand = MLPGrad(self.q_target.body, cfg.activation)
            self._grads = FlatGrads(self._params)

    def learn(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        cfg = self.cfg
        if cfg.lr_end is not None and "progress" in batch:
            frac = min(1.0, float(batch["progress"]))
            self.set_lr(cfg.lr + frac * (cfg.lr_end - cfg.lr))
        b, dev = len(batch["reward"]), self.device
        obs = torch.as_tensor(batch["state"], dtype=torch.float32, device=dev).reshape(b, -1)
        nxt = torch.as_tensor(batch["next_state"], dtype=torch.float32, device=dev).reshape(b, -1)
        act = torch.as_tensor(batch["action"], dtype=torch.int64, device=dev).reshape(b, 1)
        reward = torch.as_tensor(batch["reward"], dtype=torch.float32, device=dev)
        discount = torch.as_tensor(batch["discount"], dtype=torch.float32, device=dev)
        weights = torch.as_tensor(batch["weights"], dtype=torch.float32, device=dev) if "weights" in batch else None
        with torch.no_grad():
            if self._by_hand is not None and self._target_by_hand is not None:  # no module-call overhead
                q_next_target = self._target_by_hand.forward(nxt, keep=False)
                q_next_online = self._by_hand.forward(nxt, keep=False) if cfg.double else q_next_target
            else:
                q_next_target = self.q_target(nxt)
                q_next_online = self.q(nxt) if cfg.double else q_next_target
            y = dqn_targets(q_next_online, q_next_target, reward, discount, cfg.double)
        if self._by_hand is not None:
            loss, q, td = self._gradients_by_hand(obs, act, y, weights)
        else:
            loss, q, td = self._gradients_autograd(obs, act, y, weights)
        if self.grad_sync is not None:  # replicas: the group's mean replaces the .grad tensors
            self.grad_sync(self._params)
            nn.utils.clip_grad_norm_(self._params, cfg.max_grad_norm)
        elif self._grads is not None:
            self._grads.clip(cfg.max_grad_norm)
        else:
            nn.utils.clip_grad_norm_(self._params, cfg.max_grad_norm)
        adam_step(self.opt)
        self.updates += 1
        if cfg.tau < 1.0:
            polyak(self.q_target, self.q, cfg.tau)
        elif self.updates % cfg.target_update == 0:
            self.q_target.load_state_dict(self.q.state_dict())
        loss_value, q_mean = self.host(torch.stack([loss, q.mean()])).tolist()  # one read
        return {"loss": loss_value, "q": q_mean, "td": self.host(td.abs())}

    def _gradients_autograd(
        self, obs: torch.Tensor, act: torch.Tensor, y: torch.Tensor, weights: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Set the online network's ``.grad``; return (loss, Q(s, a), td), detached."""
        q = self.q(obs).gather(1, act).squeeze(1)
        per_item = F.smooth_l1_loss(q, y, reduction="none") if self.cfg.huber else (y - q).pow(2)
        if weights is not None:
            per_item = per_item * weights
        loss = per_item.mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        return loss.detach(), q.detach(), (y - q).detach()

    def _gradients_by_hand(
        self, obs: torch.Tensor, act: torch.Tensor, y: torch.Tensor, weights: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The same as ``_gradients_autograd`` with ``MLPGrad`` (see the module docstring)."""
        assert self._by_hand is not None
        with torch.no_grad():
            q_all = self._by_hand.forward(obs)
            q = q_all.gather(1, act).squeeze(1)
            td = y - q
            if self.cfg.huber:
                size = td.abs()
                per_item = torch.where(size < 1.0, 0.5 * td * td, size - 0.5)
                d_q = td.clamp(-1.0, 1.0).neg_()
            else:
                per_item = td * td
                d_q = td * -2.0
            if weights is not None:
                per_item = per_item * weights
                d_q = d_q * weights
            d_out = torch.zeros_like(q_all).scatter_(1, act, d_q.div_(len(q)).unsqueeze(1))
            assert self._grads is not None
            self._by_hand.backward(d_out, out=self._grads.grads)
            self._grads.attach()
            return per_item.mean(), q, td
