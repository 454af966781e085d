"""Where a deep learner computes: the ``device`` hyper-parameter as a ``torch.device``.

    resolve_device("cpu")       # torch.device("cpu"), the default: what every run did before
    resolve_device("auto")      # cuda (GPU 0) when torch sees one, else cpu
    resolve_device("cuda:1")    # GPU 1; refused (ValueError naming the value) without CUDA or that GPU
    replica_device("nccl", 3)   # "cuda:1" on a machine with 2 GPUs: a data-parallel replica's device
    to_host(tensor)             # a numpy array on the CPU: how results leave the device

``config.check_device`` checks the spelling without torch; this module checks that the
machine has what the value asks for, so a run that names a GPU it cannot have is refused
before it starts (``beamrl train`` exits 2 with the message). A ``torch.device`` given
directly is taken as it is (tests place an algorithm on torch's fake devices that way).

What stays on the CPU whatever the device: the numpy acting half (its policy is a CPU
copy of the learner's weights), parameters published to actors, statistics, TD errors
sent back as priorities, and checkpoints (safetensors of numpy arrays; loading maps them
onto the configured device).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.distributed as dist

from beamrl.rl.deep.config import check_device

__all__ = ["check_backend", "replica_device", "resolve_device", "to_host"]


def resolve_device(name: str | torch.device) -> torch.device:
    """The ``torch.device`` a ``device`` setting names on this machine (see the module docstring)."""
    if isinstance(name, torch.device):
        return name
    check_device(name)
    if name == "cpu":
        return torch.device("cpu")
    available = torch.cuda.is_available()
    if name == "auto":
        return torch.device("cuda", 0) if available else torch.device("cpu")
    if not available:
        raise ValueError(
            f"device {name!r} needs a CUDA GPU, but torch {torch.__version__} sees none here"
            " (torch.cuda.is_available() is False): use device=cpu, or device=auto to take a GPU when there is one"
        )
    index = int(name.partition(":")[2] or 0)
    count = torch.cuda.device_count()
    if index >= count:
        raise ValueError(f"device {name!r} names GPU {index}, but this machine has {count} (cuda:0..cuda:{count - 1})")
    return torch.device("cuda", index)


def to_host(tensor: torch.Tensor) -> np.ndarray:
    """``tensor`` as a numpy array on the CPU (a view of it when it is there already, else a copy)."""
    return tensor.detach().cpu().numpy()


def check_backend(backend: str) -> None:
    """Refuse a data-parallel backend this machine cannot run: nccl needs CUDA and a torch built with NCCL."""
    if backend not in ("gloo", "nccl"):
        raise ValueError(f"backend must be one of ('gloo', 'nccl') (CPU; one GPU per replica), got {backend!r}")
    if backend == "gloo" and not dist.is_gloo_available():
        raise ValueError("this torch build has no gloo backend")
    if backend == "nccl" and not (dist.is_nccl_available() and torch.cuda.is_available()):
        raise ValueError(
            f"backend 'nccl' needs CUDA and a torch built with NCCL (torch {torch.__version__} here:"
            f" CUDA {'available' if torch.cuda.is_available() else 'not available'}): use 'gloo' on CPU"
        )


def replica_device(backend: str, local_rank: int, configured: str = "cpu") -> str:
    """The ``device`` setting of a data-parallel replica: ``cuda:LOCAL_RANK`` with nccl, ``configured`` with gloo.

    nccl reduces only GPU tensors, one GPU per replica process: the replica with local rank
    ``r`` (its index among the replicas on its machine) computes on GPU ``r``, whatever
    ``configured`` says. gloo reduces CPU tensors: the replica keeps ``configured`` ("cpu"
    by default).
    """
    check_backend(backend)
    if backend == "gloo":
        return configured
    count = torch.cuda.device_count()
    if not 0 <= local_rank < count:
        raise ValueError(f"local_rank {local_rank} has no GPU: this machine has {count} (cuda:0..cuda:{count - 1})")
    return f"cuda:{local_rank}"
