"""The policy-gradient loss's gradient by hand: autograd's bookkeeping dominates networks this small.

    run = ActorCriticGrad(ac)                              # grads live in one FlatGrads buffer
    out, value, head = run.forward(obs)                    # under torch.no_grad()
    logp, entropy = head.log_prob, head.entropy
    run.backward(head, d_logp, d_entropy, d_value)         # sets every parameter's .grad
    norm = run.clip_grad_norm(max_norm)                    # what nn.utils.clip_grad_norm_ does

For ``ActorCritic`` and the loss of ``beamrl.rl.deep.pg`` on a minibatch of B samples
(each term a mean over the minibatch)::

    loss = L_pg + vf_coef (V - R)^2 / 2 - ent_coef H

``PG`` gives the derivatives w.r.t. each sample's log π(a|s), V(s) and H(π(.|s))::

    d loss / d log π(a|s) = -A ρ [ρA <= clip(ρ)A] / B    (PPO: nothing where the clipped term wins)
                          = -A / B                       (A2C, REINFORCE)
    d loss / d V(s)       = vf_coef (V - R) / B
    d loss / d H          = -ent_coef / B

and the head carries them to its outputs::

    categorical, logits z, p = softmax(z):   d log π(a|s) / d z = onehot(a) - p
                                             d H / d z          = -p (log p + H)
    Gaussian, mean μ, log std s, u = (a - μ) / σ:
                                             d log π(a|s) / d μ = u / σ
                                             d log π(a|s) / d s = u² - 1
                                             d H / d s          = 1

then ``MLPGrad`` takes them through the policy and value MLPs. ``tests/deep/test_math.py``
checks the result against autograd on the same loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from beamrl.rl.deep.algo import FlatGrads
from beamrl.rl.deep.nets import ActorCritic, MLPGrad

__all__ = ["ActorCriticGrad", "Head"]

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


@dataclass
class Head:
    """The policy head's values on a batch, and what its backward pass needs."""

    log_prob: torch.Tensor  #: (B,) log π(a|s)
    entropy: torch.Tensor  #: (B,) H(π(.|s))
    act: torch.Tensor  #: the actions (B,) int64 or (B, D) float
    log_pi: torch.Tensor | None = None  #: categorical: (B, K) log-softmax of the logits
    u: torch.Tensor | None = None  #: Gaussian: (B, D) (a - μ) / σ
    std: torch.Tensor | None = None  #: Gaussian: (D,) σ


class ActorCriticGrad:
    """An ``ActorCritic``'s forward pass and loss gradient without autograd (see the module docstring)."""

    def __init__(self, ac: ActorCritic) -> None:
        self.ac = ac
        self.pi = MLPGrad(ac.pi, ac.activation)
        self.v = MLPGrad(ac.v, ac.activation)
        self.grads = FlatGrads(list(ac.parameters()))  # the norm and the clipping are one operation each
        self.pi_grads = self.grads.of(ac.pi.parameters())
        self.v_grads = self.grads.of(ac.v.parameters())
        self.log_std_grad = self.grads.of([ac.log_std])[0] if ac.continuous else None

    def values(self, obs: torch.Tensor) -> torch.Tensor:
        """V(s), (B,), with no backward to follow (call under ``torch.no_grad()``)."""
        return self.v.forward(obs, keep=False).squeeze(-1)

    def head(self, out: torch.Tensor, act: torch.Tensor) -> Head:
        """log π(a|s) and H(π(.|s)) from the policy MLP's output (logits or Gaussian means)."""
        if not self.ac.continuous:
            log_pi = out.log_softmax(1)
            log_prob = log_pi.gather(1, act.unsqueeze(1)).squeeze(1)
            entropy = -(log_pi.exp() * log_pi).sum(1)
            return Head(log_prob, entropy, act, log_pi=log_pi)
        log_std = self.ac.log_std.detach()
        std = log_std.exp()
        u = (act - out) / std
        log_prob = (u * u).mul_(-0.5).sub_(log_std + _HALF_LOG_2PI).sum(1)
        entropy = (log_std + (0.5 + _HALF_LOG_2PI)).sum().expand(len(out))
        return Head(log_prob, entropy, act, u=u, std=std)

    def log_prob(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """log π(a|s), with no backward to follow (call under ``torch.no_grad()``)."""
        return self.head(self.pi.forward(obs, keep=False), act).log_prob

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> tuple[Head, torch.Tensor]:
        """(the head at ``obs`` and ``act``, V(s)), keeping what ``backward`` needs (under ``torch.no_grad()``)."""
        return self.head(self.pi.forward(obs), act), self.v.forward(obs).squeeze(-1)

    def backward(self, head: Head, d_log_prob: torch.Tensor, d_entropy: float, d_value: torch.Tensor) -> None:
        """Set every parameter's ``.grad`` from the loss's derivatives w.r.t. log π(a|s), H and V(s) per sample."""
        if head.log_pi is not None:
            log_pi = head.log_pi
            p = log_pi.exp()
            # -p d_logp - d_H p (log p + H), plus d_logp at the taken action
            d_out = (log_pi + head.entropy.unsqueeze(1)).mul_(-d_entropy).sub_(d_log_prob.unsqueeze(1)).mul_(p)
            d_out.scatter_add_(1, head.act.unsqueeze(1), d_log_prob.unsqueeze(1))
        else:
            assert head.u is not None and head.std is not None and self.log_std_grad is not None
            g = d_log_prob.unsqueeze(1)
            d_out = (g * head.u).div_(head.std)
            d_log_std = (head.u * head.u).sub_(1.0).mul_(g).sum(0).add_(d_entropy * len(g))
            self.log_std_grad.copy_(d_log_std)
        self.pi.backward(d_out, out=self.pi_grads)
        self.v.backward(d_value.unsqueeze(1), out=self.v_grads)
        self.grads.attach()

    def clip_grad_norm(self, max_norm: float) -> torch.Tensor:
        """Scale the gradients to a total 2-norm of at most ``max_norm``; return the norm before (as torch does)."""
        return self.grads.clip(max_norm)
