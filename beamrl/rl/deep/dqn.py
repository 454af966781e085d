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
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from beamrl.rl.deep.algo import Algorithm, action_info, adam, clip_step, obs_dim, polyak
from beamrl.rl.deep.config import DQNConfig
from beamrl.rl.deep.nets import DuelingQNet, QNet

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

    def __init__(self, cfg: DQNConfig, observation_space: Any, action_space: Any, seed: int = 0) -> None:
        super().__init__(seed)
        n, continuous, _ = action_info(action_space)
        if continuous:
            raise ValueError("DQN needs a Discrete action space; use ddpg or td3 for continuous actions")
        self.cfg = cfg
        net_cls = DuelingQNet if cfg.dueling else QNet
        self.q = net_cls(obs_dim(observation_space), n, cfg.hidden, cfg.activation)
        self.q_target = copy.deepcopy(self.q)
        self.opt = adam(self.q.parameters(), cfg.lr)
        self.modules = {"q": self.q, "q_target": self.q_target}
        self.optimizers = {"q": self.opt}
        self._params = list(self.q.parameters())

    def learn(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        cfg = self.cfg
        if cfg.lr_end is not None and "progress" in batch:
            frac = min(1.0, float(batch["progress"]))
            self.set_lr(cfg.lr + frac * (cfg.lr_end - cfg.lr))
        b = len(batch["reward"])
        obs = torch.as_tensor(batch["state"], dtype=torch.float32).reshape(b, -1)
        nxt = torch.as_tensor(batch["next_state"], dtype=torch.float32).reshape(b, -1)
        act = torch.as_tensor(batch["action"], dtype=torch.int64).reshape(b, 1)
        reward = torch.as_tensor(batch["reward"], dtype=torch.float32)
        discount = torch.as_tensor(batch["discount"], dtype=torch.float32)
        with torch.no_grad():
            q_next_target = self.q_target(nxt)
            q_next_online = self.q(nxt) if cfg.double else q_next_target
            y = dqn_targets(q_next_online, q_next_target, reward, discount, cfg.double)
        q = self.q(obs).gather(1, act).squeeze(1)
        td = y - q
        per_item = F.smooth_l1_loss(q, y, reduction="none") if cfg.huber else td.pow(2)
        if "weights" in batch:
            per_item = per_item * torch.as_tensor(batch["weights"], dtype=torch.float32)
        loss = per_item.mean()
        clip_step(self.opt, loss, self._params, cfg.max_grad_norm)
        self.updates += 1
        if cfg.tau < 1.0:
            polyak(self.q_target, self.q, cfg.tau)
        elif self.updates % cfg.target_update == 0:
            self.q_target.load_state_dict(self.q.state_dict())
        return {"loss": loss.item(), "q": q.mean().item(), "td": td.detach().abs().numpy()}
