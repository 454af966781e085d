"""``Algorithm``: what every deep learner is: torch modules, optimizers, ``learn(batch)``, a state.

    algo = DQN(cfg, obs_space, action_space, seed=0)
    stats = algo.learn(batch)                 # one update (or one rollout's epochs)
    spec, params = algo.spec(), algo.policy_params()   # what a numpy actor needs
    tensors, meta = algo.state()              # everything to continue: weights, targets,
    algo.load_state(tensors, meta)            # optimizer moments, RNG, counters

Subclasses build their modules on the CPU (so a seed gives the same initial weights on
every device), move them to ``self.device`` (the ``device`` hyper-parameter, see
``beamrl.rl.deep.device``) and create every tensor of an update there; what leaves
(stats, TD errors, parameters, checkpoints) comes back through ``host`` as numpy.
Subclasses register their modules in ``self.modules`` (targets too) and optimizers in
``self.optimizers``, name the module that holds the policy in ``policy_module``, and
implement ``learn``. ``state`` flattens the optimizers' tensors into the same dict of
numpy arrays (``optim/NAME/PARAM/KEY``) and their hyper-parameters into ``meta``, so a
checkpoint is safetensors + JSON, nothing pickled.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

from beamrl.rl.deep.device import resolve_device, to_host
from beamrl.rl.deep.nets import module_params
from beamrl.rl.deep.params import Params
from beamrl.rl.spaces import Box, Discrete

__all__ = ["Algorithm", "FlatGrads", "adam", "adam_step", "flush_denormals", "obs_dim"]

M = TypeVar("M", bound=nn.Module)


def obs_dim(space: Any) -> int:
    """Flat size of a ``Box`` observation space (deep agents need vector observations)."""
    if not isinstance(space, Box):
        raise ValueError(f"deep agents need a Box observation space, got {space!r}")
    return int(np.prod(space.shape))


class Algorithm(ABC):
    """Base of the deep learners; see the module docstring."""

    policy_module: str = ""
    supports_grad_sync: bool = False  #: whether ``learn`` calls ``grad_sync`` (data-parallel replicas need it)

    def __init__(self, seed: int, device: str | torch.device = "cpu") -> None:
        torch.manual_seed(seed)
        self.device = resolve_device(device)  #: where modules, optimizer state and every update's tensors live
        self.modules: dict[str, nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.updates = 0  #: gradient updates (or rollouts) done
        #: called with the trainable parameters between computing the gradients and clipping
        #: them (data-parallel replicas average them here: ``beamrl.rl.deep.distributed``)
        self.grad_sync: Callable[[list[nn.Parameter]], None] | None = None

    @abstractmethod
    def learn(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        """Learn from one batch; return stats (floats, and arrays such as ``td`` for priorities)."""

    def place(self, module: M) -> M:
        """``module`` (built on the CPU) moved onto this algorithm's device."""
        return module.to(self.device)

    def host(self, tensor: torch.Tensor) -> np.ndarray:
        """``tensor`` as numpy on the CPU: the one way results leave the device (stats, TD errors)."""
        return to_host(tensor)

    def spec(self) -> dict[str, Any]:
        """The JSON description of the policy a ``NumpyPolicy`` needs."""
        spec: dict[str, Any] = self.modules[self.policy_module].spec()  # type: ignore[operator]
        return spec

    def policy_params(self) -> Params:
        """The policy's parameters as numpy copies."""
        return module_params(self.policy_module, self.modules[self.policy_module])

    def set_lr(self, lr: float) -> None:
        for opt in self.optimizers.values():
            for group in opt.param_groups:
                group["lr"] = lr

    # -- state ----------------------------------------------------------------------------
    def state(self) -> tuple[Params, dict[str, Any]]:
        """(tensors, meta): every weight, optimizer moment and RNG state, plus counters as JSON."""
        tensors: Params = {}
        for name, module in self.modules.items():
            for key, value in module.state_dict().items():
                tensors[f"module/{name}/{key}"] = value.detach().cpu().numpy().copy()
        groups: dict[str, Any] = {}
        for name, opt in self.optimizers.items():
            sd = opt.state_dict()
            groups[name] = sd["param_groups"]
            for idx, per_param in sd["state"].items():
                for key, value in per_param.items():
                    tensors[f"optim/{name}/{idx}/{key}"] = torch.as_tensor(value).detach().cpu().numpy().copy()
        tensors["rng/torch"] = torch.get_rng_state().numpy().copy()
        if self.device.type == "cuda":  # randperm and noise drawn on the GPU use its own generator
            tensors["rng/cuda"] = torch.cuda.get_rng_state(self.device).numpy().copy()
        return tensors, {"updates": self.updates, "optim_groups": groups}

    def load_state(self, tensors: Params, meta: dict[str, Any]) -> None:
        """Restore what ``state`` returned; a missing or mis-shaped tensor raises ``ValueError``.

        The tensors are copied onto this algorithm's device, whichever device saved them.
        """
        for name, module in self.modules.items():
            prefix = f"module/{name}/"
            sd = {k[len(prefix) :]: torch.from_numpy(np.array(v)) for k, v in tensors.items() if k.startswith(prefix)}
            try:
                module.load_state_dict(sd)
            except RuntimeError as e:
                raise ValueError(f"checkpoint does not fit module {name!r}: {e}") from e
        for name, opt in self.optimizers.items():
            prefix = f"optim/{name}/"
            per: dict[int, dict[str, torch.Tensor]] = {}
            for key, value in tensors.items():
                if key.startswith(prefix):
                    idx, _, field = key[len(prefix) :].partition("/")
                    per.setdefault(int(idx), {})[field] = torch.from_numpy(np.array(value))
            groups = meta["optim_groups"][name]
            for group in groups:
                if "betas" in group:
                    group["betas"] = tuple(group["betas"])
            try:
                opt.load_state_dict({"state": per, "param_groups": groups})
            except (ValueError, KeyError) as e:
                raise ValueError(f"checkpoint does not fit optimizer {name!r}: {e}") from e
        torch.set_rng_state(torch.from_numpy(np.array(tensors["rng/torch"])))
        if self.device.type == "cuda" and "rng/cuda" in tensors:
            torch.cuda.set_rng_state(torch.from_numpy(np.array(tensors["rng/cuda"])), self.device)
        self.updates = int(meta["updates"])


def adam(params: Any, lr: float, eps: float = 1e-8) -> torch.optim.Optimizer:
    """Adam as one fused kernel per step: the per-tensor update (to float rounding, ~1e-9) at a fraction of its cost."""
    return torch.optim.Adam(params, lr=lr, eps=eps, fused=True)


def adam_step(opt: torch.optim.Optimizer) -> None:
    """``opt.step()`` for an ``adam(...)`` optimizer by its fused kernel directly: the same update bit for bit.

    ``Optimizer.step`` spends ~0.1 ms of Python per call regrouping the tensors, half the
    kernel's own time at 256×256. Until every parameter has a gradient and Adam state (and
    for any other optimizer), this is ``opt.step()``.
    """
    group = opt.param_groups[0]
    params = group["params"]
    states = [opt.state.get(p) for p in params]
    plain = (
        not isinstance(opt, torch.optim.Adam)
        or len(opt.param_groups) != 1
        or not group.get("fused")
        or group["amsgrad"]
        or group["maximize"]
        or group["weight_decay"] != 0
        or group.get("decoupled_weight_decay", False)
        or not all(states)
        or any(p.grad is None for p in params)
    )
    if plain:
        opt.step()
        return
    steps = [state["step"] for state in states]  # type: ignore[index]
    beta1, beta2 = group["betas"]
    with torch.no_grad():
        torch._foreach_add_(steps, 1)
        torch._fused_adam_(
            params,
            [p.grad for p in params],
            [state["exp_avg"] for state in states],  # type: ignore[index]
            [state["exp_avg_sq"] for state in states],  # type: ignore[index]
            [],
            steps,
            amsgrad=False,
            lr=group["lr"],
            beta1=beta1,
            beta2=beta2,
            weight_decay=0.0,
            eps=group["eps"],
            maximize=False,
            grad_scale=None,
            found_inf=None,
        )


@contextmanager
def flush_denormals() -> Iterator[None]:
    """Inside: this thread's float arithmetic takes subnormal numbers (below ~1.2e-38) as 0 and makes none.

    An Adam moment of a weight whose gradient stays 0 (a dead ReLU unit) decays by β each step
    into the subnormal range and stays there (``β · min`` rounds back to ``min``); the CPU then
    takes a slow microcode path on every such element: DDPG's and TD3's fused Adam ran ~5x
    slower by 4,000 steps. Such a moment moves no weight (``lr · m / (√v + ε)`` with
    ``m < 1.2e-38`` is lost against any normal weight), so its being 0 changes nothing a
    network computes. The flags (x86 FTZ/DAZ) are the calling thread's and are cleared on
    exit: nothing outside the block, or in another thread, is affected.
    """
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def clip_step(opt: torch.optim.Optimizer, loss: torch.Tensor, params: list[nn.Parameter], max_norm: float) -> None:
    """Zero the gradients, backpropagate ``loss``, clip to ``max_norm`` and step."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(params, max_norm)
    opt.step()


def polyak(target: nn.Module | Sequence[torch.Tensor], source: nn.Module | Sequence[torch.Tensor], tau: float) -> None:
    """``target <- tau * source + (1 - tau) * target`` (tau == 1: a copy), over all tensors at once.

    Two foreach kernels for every tensor, each element rounded as ``t.mul_(1 - tau).add_(s, alpha=tau)``.
    """
    targets: list[torch.Tensor] = list(target.parameters() if isinstance(target, nn.Module) else target)
    sources: list[torch.Tensor] = list(source.parameters() if isinstance(source, nn.Module) else source)
    if len(targets) != len(sources):
        raise ValueError(f"polyak needs as many target as source tensors, got {len(targets)} and {len(sources)}")
    with torch.no_grad():
        torch._foreach_mul_(targets, 1.0 - tau)
        torch._foreach_add_(targets, sources, alpha=tau)


class FlatGrads:
    """Every gradient of ``params`` in one flat buffer: the norm and the clipping are one operation each.

        grads = FlatGrads(params)
        run.backward(d_out, out=grads.of(module.parameters()))   # MLPGrad writes into the views
        grads.attach()                                           # each parameter's .grad is its view
        grads.clip(max_norm)                                     # what nn.utils.clip_grad_norm_ does
        opt.step()

    The views stay the parameters' ``.grad`` across steps, so nothing is allocated per update.
    """

    def __init__(self, params: list[nn.Parameter]) -> None:
        self.params = list(params)
        self.flat = torch.zeros(sum(p.numel() for p in self.params), device=self.params[0].device)
        views = torch.split(self.flat, [p.numel() for p in self.params])
        self.grads = [view.view_as(p) for view, p in zip(views, self.params, strict=True)]
        self._by_param = {id(p): g for p, g in zip(self.params, self.grads, strict=True)}

    def of(self, params: Any) -> list[torch.Tensor]:
        """The gradient views of ``params`` (a subset of this buffer's), in their order."""
        return [self._by_param[id(p)] for p in params]

    def attach(self) -> None:
        """Point every parameter's ``.grad`` at its view (an optimizer's ``zero_grad`` may have dropped them)."""
        for param, grad in zip(self.params, self.grads, strict=True):
            param.grad = grad

    def clip(self, max_norm: float) -> torch.Tensor:
        """Scale the gradients to a total 2-norm of at most ``max_norm``; return the norm before (as torch does)."""
        norm = torch.linalg.vector_norm(self.flat)
        self.flat.mul_((max_norm / (norm + 1e-6)).clamp_(max=1.0))
        return norm


def action_info(space: Any) -> tuple[int, bool, tuple[list[float], list[float]] | None]:
    """(action count or dimension, continuous?, bounds) of an action space."""
    if isinstance(space, Discrete):
        return int(space.n), False, None
    if isinstance(space, Box):
        low = [float(x) for x in np.asarray(space.low).ravel()]
        high = [float(x) for x in np.asarray(space.high).ravel()]
        return len(low), True, (low, high)
    raise ValueError(f"deep agents need a Discrete or Box action space, got {space!r}")
