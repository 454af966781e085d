"""torch networks: an MLP builder and the heads the deep algorithms need.

    q = QNet(obs_dim=4, n_actions=2, hidden=[64, 64])          # q(obs) -> (batch, 2)
    ac = ActorCritic(4, 2, [64, 64], "tanh", continuous=False)  # ac.dist(obs), ac.value(obs)

Every MLP is an ``nn.Sequential`` of ``Linear`` layers and activations, so its
``state_dict`` keys (``body.0.weight``, ``body.2.weight``, ...) are what
``beamrl.rl.deep.params.mlp_forward`` runs with numpy. ``spec()`` on each head gives
the JSON description a ``NumpyPolicy`` needs.
"""

from __future__ import annotations

import math
from itertools import pairwise
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical, Distribution, Independent, Normal

from beamrl.rl.deep.params import Params

__all__ = [
    "ActorCritic",
    "Critic",
    "DeterministicActor",
    "DuelingQNet",
    "MLPGrad",
    "QNet",
    "mlp",
    "module_params",
]

_ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh}
# autograd's own kernels for relu's and tanh's backward: g * (h > 0) and g * (1 - h²), each in one pass
_threshold_backward = torch.ops.aten.threshold_backward
_tanh_backward = torch.ops.aten.tanh_backward


def mlp(
    sizes: list[int], activation: str = "relu", final_activation: bool = False, out_gain: float | None = None
) -> nn.Sequential:
    """Linear layers of ``sizes`` with ``activation`` between them (and after the last one if asked).

    ``out_gain`` (when given) initialises every layer orthogonally, hidden ones with gain
    √2 and the last with ``out_gain`` (the PPO recipe); otherwise torch's default init.
    """
    if len(sizes) < 2:
        raise ValueError(f"an MLP needs at least input and output sizes, got {sizes}")
    layers: list[nn.Module] = []
    act = _ACTIVATIONS[activation]
    for i, (a, b) in enumerate(pairwise(sizes)):
        layer = nn.Linear(a, b)
        if out_gain is not None:
            last = i == len(sizes) - 2
            nn.init.orthogonal_(layer.weight, out_gain if last else math.sqrt(2))
            nn.init.zeros_(layer.bias)
        layers.append(layer)
        if i < len(sizes) - 2 or final_activation:
            layers.append(act())
    return nn.Sequential(*layers)


def module_params(prefix: str, module: nn.Module) -> Params:
    """A module's tensors as numpy copies named ``prefix.<state_dict key>``."""
    return {f"{prefix}.{k}": v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}


class MLPGrad:
    """An ``mlp`` run forward and backward by hand, without autograd (its per-node cost dominates small nets).

        run = MLPGrad(q.body, "relu")
        out = run.forward(x)            # under torch.no_grad(); keeps each layer's input
        grads = run.backward(d_out)     # d loss / d parameters, in ``q.body.parameters()`` order

    For ``h_{i+1} = act(h_i W_iᵀ + b_i)`` (no activation after the last layer) and
    ``g = d loss / d out``: ``dW_i = gᵀ h_i``, ``db_i = Σ g``, then ``g <- (g W_i) * act'``
    where ``act'`` is ``h_i > 0`` (relu) or ``1 - h_i²`` (tanh), read off the kept outputs.
    """

    def __init__(self, seq: nn.Sequential, activation: str) -> None:
        self.layers = [m for m in seq if isinstance(m, nn.Linear)]
        if len(self.layers) != len(list(seq.parameters())) // 2 or activation not in _ACTIVATIONS:
            raise ValueError("MLPGrad runs an mlp(...) of Linear layers with relu or tanh between them")
        self.activation = activation
        self.inputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor, keep: bool = True) -> torch.Tensor:
        """The network's output (call under ``torch.no_grad()``); ``keep``: for a ``backward`` to follow."""
        self.inputs = []
        h = x
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            if keep:
                self.inputs.append(h)
            h = torch.addmm(layer.bias, h, layer.weight.t())
            if i < last:
                h = h.relu_() if self.activation == "relu" else h.tanh_()
        return h

    def backward(self, d_out: torch.Tensor, out: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
        """The gradients (weight, bias per layer, first layer first); written into ``out`` when given."""
        grads: list[torch.Tensor] = []
        g = d_out
        for i in range(len(self.layers) - 1, -1, -1):
            h = self.inputs[i]
            if out is None:
                grads += [g.sum(0), g.t().mm(h)]
            else:
                grads += [torch.sum(g, 0, out=out[2 * i + 1]), torch.mm(g.t(), h, out=out[2 * i])]
            if i > 0:
                g = g.mm(self.layers[i].weight)  # then act' from the kept output, in one fused kernel:
                g = _threshold_backward(g, h, 0.0) if self.activation == "relu" else _tanh_backward(g, h)
        grads.reverse()  # weight, bias per layer, first layer first
        return grads

    def input_grad(self, d_out: torch.Tensor) -> torch.Tensor:
        """d loss / d input (the last ``forward``'s), computing no parameter gradient."""
        g = d_out
        for i in range(len(self.layers) - 1, -1, -1):
            g = g.mm(self.layers[i].weight)
            if i > 0:
                h = self.inputs[i]
                g = _threshold_backward(g, h, 0.0) if self.activation == "relu" else _tanh_backward(g, h)
        return g


class QNet(nn.Module):
    """Q-values of every discrete action."""

    def __init__(self, obs_dim: int, n_actions: int, hidden: list[int], activation: str = "relu") -> None:
        super().__init__()
        self.activation = activation
        self.body = mlp([obs_dim, *hidden, n_actions], activation)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.body(obs)
        return out

    def spec(self) -> dict[str, Any]:
        return {"kind": "q", "activation": self.activation}


class DuelingQNet(nn.Module):
    """Dueling head: ``Q = V(s) + A(s, a) - mean_a A(s, a)`` on a shared trunk."""

    def __init__(self, obs_dim: int, n_actions: int, hidden: list[int], activation: str = "relu") -> None:
        super().__init__()
        self.activation = activation
        self.trunk = mlp([obs_dim, *hidden], activation, final_activation=True)
        self.value = nn.Linear(hidden[-1], 1)
        self.adv = nn.Linear(hidden[-1], n_actions)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        h = self.trunk(obs)
        adv = self.adv(h)
        out: torch.Tensor = self.value(h) + adv - adv.mean(dim=1, keepdim=True)
        return out

    def spec(self) -> dict[str, Any]:
        return {"kind": "dueling_q", "activation": self.activation}


class ActorCritic(nn.Module):
    """A categorical or Gaussian policy (``pi``) and a state-value critic (``v``), separate MLPs."""

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: list[int],
        activation: str = "tanh",
        continuous: bool = False,
        log_std_init: float = 0.0,
        bounds: tuple[list[float], list[float]] | None = None,
    ) -> None:
        super().__init__()
        self.activation = activation
        self.continuous = continuous
        self.bounds = bounds
        self.pi = mlp([obs_dim, *hidden, act_dim], activation, out_gain=0.01)
        self.v = mlp([obs_dim, *hidden, 1], activation, out_gain=1.0)
        if continuous:
            self.log_std = nn.Parameter(torch.full((act_dim,), float(log_std_init)))

    def dist(self, obs: torch.Tensor) -> Distribution:
        """The action distribution at ``obs``."""
        out = self.pi(obs)  # no argument checks: the network's outputs are valid by construction
        if self.continuous:
            return Independent(
                Normal(out, self.log_std.exp().expand_as(out), validate_args=False), 1, validate_args=False
            )
        return Categorical(logits=out, validate_args=False)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.v(obs).squeeze(-1)
        return out

    def spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"kind": "gaussian" if self.continuous else "categorical", "activation": self.activation}
        if self.bounds is not None:
            spec["low"], spec["high"] = self.bounds
        return spec


class DeterministicActor(nn.Module):
    """``a = low + (tanh(pi(s)) + 1) / 2 * (high - low)``: DDPG's and TD3's actor."""

    def __init__(
        self, obs_dim: int, act_dim: int, hidden: list[int], low: np.ndarray, high: np.ndarray, activation: str = "relu"
    ) -> None:
        super().__init__()
        self.activation = activation
        self.pi = mlp([obs_dim, *hidden, act_dim], activation)
        self.low_list = [float(x) for x in low]
        self.high_list = [float(x) for x in high]
        # buffers, so .to(device) moves them; not persistent: the state_dict (and the files) hold weights only
        self.low: torch.Tensor
        self.high: torch.Tensor
        self.register_buffer("low", torch.tensor(self.low_list, dtype=torch.float32), persistent=False)
        self.register_buffer("high", torch.tensor(self.high_list, dtype=torch.float32), persistent=False)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.low + (torch.tanh(self.pi(obs)) + 1.0) * 0.5 * (self.high - self.low)

    def spec(self) -> dict[str, Any]:
        return {"kind": "deterministic", "activation": self.activation, "low": self.low_list, "high": self.high_list}


class Critic(nn.Module):
    """``Q(s, a)`` for continuous actions: an MLP of the concatenated observation and action."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: list[int], activation: str = "relu") -> None:
        super().__init__()
        self.q = mlp([obs_dim + act_dim, *hidden, 1], activation)

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.q(torch.cat([obs, act], dim=-1)).squeeze(-1)
        return out
