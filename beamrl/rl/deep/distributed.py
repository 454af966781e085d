"""Data-parallel learners: G replicas of one ``Algorithm`` stepping together with ``torch.distributed``.

Each replica is its own OS process (one per GPU, or per group of CPU cores) and samples
its own batches; before every optimizer step the gradients are averaged over the G
replicas with one all-reduce, so every replica takes the same step and the replicas
stay bit-identical. That step is the one a single learner takes on the mean gradient of
the G batches (for DQN's mean loss: one batch G times as large)::

    join_group(rank, G, "tcp://127.0.0.1:29500")   # blocks until all G replicas joined
    algo = make_algorithm("dqn", "CartPole-v1", cfg, seed)
    replicate(algo)        # rank 0's weights, optimizer moments and counters to all; averaging on
    algo.learn(batch)      # this replica's own batch; the step follows the averaged gradient
    leave_group()

As a process, ``DataParallelLearner`` is a ``Learner`` that does the above in ``init``;
replica 0 alone publishes parameters to actors and writes checkpoints::

    pid = await node.start(DataParallelLearner, "dqn", "CartPole-v1", config, 0, "run/learner",
                           rank=0, world_size=2, address="tcp://127.0.0.1:29500")
    await node.call(pid, ["learn", batch])          # collective: every replica must learn as often
    await node.call(pid, ["stats"])                 # ... "rank", "world_size", "digest" (equal on all)
    await node.call(pid, ["hold", 120])             # learn up to version 120, then refuse (Rejected)

``["hold", version]`` is how a run stops G replicas at one version: learning is
collective, so replicas told "stop now" at different moments could leave one waiting
in an all-reduce the others never join; told one version above all of theirs, each
keeps learning until it is there and then refuses, and they all end identical.

Backends: ``gloo`` on CPU (loopback or a LAN; the replica computes on the config's
``device``, "cpu" by default); ``nccl`` with one process per GPU: ``DataParallelLearner``
calls ``torch.cuda.set_device(local_rank)`` before it joins and computes on
``cuda:LOCAL_RANK`` (``local_rank``: its index among the replicas on its machine, by
default ``rank`` modulo the machine's GPU count). nccl was built and checked on CPU only
(its refusals; the device placement through ``device="meta"`` in the tests): it has never
run on a GPU here. What crosses between replicas is torch's own process-group traffic
(raw tensors), never beamrl's wire.

Every ``learn`` is a collective: a replica that stops learning (its replay held back,
its process gone) stalls the others in the all-reduce until the group's timeout, after
which they fail. A group cannot take back one restarted replica: restart them all
(a ``one_for_all`` supervisor over the replicas' nodes) so they meet at ``address`` again.
Only algorithms whose ``learn`` calls ``grad_sync`` (DQN) can be replicated.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import re
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from beamrl.errors import Rejected
from beamrl.process import From
from beamrl.rl.deep.algo import Algorithm
from beamrl.rl.deep.device import check_backend, replica_device
from beamrl.rl.deep.learner import Learner

__all__ = [
    "BACKENDS",
    "DataParallelLearner",
    "GradientAverage",
    "join_group",
    "leave_group",
    "replica_digest",
    "replicate",
]

BACKENDS = ("gloo", "nccl")
_ADDRESS = re.compile(r"^tcp://[^\s:/]+:(\d{1,5})$")


def _check_group_args(rank: Any, world_size: Any, address: Any, backend: Any) -> None:
    """Refuse what cannot form a group, before anything blocks on it."""
    if isinstance(world_size, bool) or not isinstance(world_size, int) or world_size < 1:
        raise ValueError(f"world_size must be a positive integer, got {world_size!r}")
    if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < world_size:
        raise ValueError(f"rank must be an integer in 0..{world_size - 1}, got {rank!r}")
    match = _ADDRESS.match(address) if isinstance(address, str) else None
    if match is None or not 0 < int(match.group(1)) < 65536:
        raise ValueError(f"address must look like 'tcp://127.0.0.1:29500' (rank 0 listens there), got {address!r}")
    check_backend(backend)


def join_group(
    rank: int,
    world_size: int,
    address: str,
    backend: str = "gloo",
    timeout_s: float = 300.0,
    device: torch.device | None = None,
) -> None:
    """Join (rank 0: host) the process's data-parallel group; blocks until all replicas joined.

    One group per OS process: ``torch.distributed``'s default group is process-wide.
    ``device`` (nccl): the replica's GPU, bound to the group here, so that whichever thread
    later runs a collective, nccl does not fall back to that thread's current GPU (cuda:0).
    """
    _check_group_args(rank, world_size, address, backend)
    if dist.is_initialized():
        raise RuntimeError("this OS process already belongs to a data-parallel group (one replica per process)")
    dist.init_process_group(
        backend,
        init_method=address,
        rank=rank,
        world_size=world_size,
        timeout=datetime.timedelta(seconds=timeout_s),
        device_id=device,
    )


def leave_group() -> None:
    """Leave the group (no-op when not in one)."""
    if dist.is_initialized():
        dist.destroy_process_group()


class GradientAverage:
    """``Algorithm.grad_sync``: replace each replica's gradients by their mean over the group.

    The gradients travel as one flat buffer, so a step costs one all-reduce whatever the
    number of tensors; a parameter without a gradient contributes zeros.
    """

    def __init__(self) -> None:
        self.world_size = dist.get_world_size()
        self.calls = 0  #: all-reduces done

    def __call__(self, params: list[nn.Parameter]) -> None:
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat.div_(self.world_size)
        offset = 0
        for param in params:
            n = param.numel()
            param.grad = flat[offset : offset + n].view_as(param)
            offset += n
        self.calls += 1


def replicate(algorithm: Algorithm, src: int = 0) -> GradientAverage:
    """Make ``algorithm`` one replica of the group: copy ``src``'s state to it, average its gradients.

    Every replica calls this (it is a collective). Copied from ``src``: every module's
    weights and buffers (targets too), the optimizers' moments and learning rates, and the
    update count, so replicas that started apart (a rank 0 resumed from a checkpoint)
    continue as one.
    """
    if not algorithm.supports_grad_sync:
        raise ValueError(f"{type(algorithm).__name__} cannot be replicated: its learn() does not call grad_sync")
    if not dist.is_initialized():
        raise RuntimeError("replicate() needs the data-parallel group: call join_group() first")
    device = _device(algorithm)  # nccl reduces only tensors on the replica's GPU
    with torch.no_grad():
        for name in sorted(algorithm.modules):
            for tensor in algorithm.modules[name].state_dict().values():
                dist.broadcast(tensor, src)
        for name in sorted(algorithm.optimizers):
            _broadcast_optimizer(algorithm.optimizers[name], src, device)
        updates = torch.tensor([algorithm.updates], dtype=torch.int64, device=device)
        dist.broadcast(updates, src)
        algorithm.updates = int(updates.item())
    average = GradientAverage()
    algorithm.grad_sync = average
    return average


def _device(algorithm: Algorithm) -> torch.device:
    for module in algorithm.modules.values():
        for param in module.parameters():
            return param.device
    return torch.device("cpu")


def _broadcast_optimizer(opt: torch.optim.Optimizer, src: int, device: torch.device) -> None:
    """``src``'s learning rates and per-parameter state (e.g. Adam's moments and step) to every replica."""
    params = [p for group in opt.param_groups for p in group["params"]]
    has_state = torch.tensor([int(all(p in opt.state for p in params))], dtype=torch.int64, device=device)
    dist.broadcast(has_state, src)
    lrs = torch.tensor([float(group["lr"]) for group in opt.param_groups], dtype=torch.float64, device=device)
    dist.broadcast(lrs, src)
    for group, lr in zip(opt.param_groups, lrs.tolist(), strict=True):
        group["lr"] = lr
    if not has_state.item():
        return
    if not all(p in opt.state for p in params):  # create the state's tensors (a step that moves nothing) ...
        saved = [group["lr"] for group in opt.param_groups]
        for group in opt.param_groups:
            group["lr"] = 0.0
        for p in params:
            p.grad = torch.zeros_like(p)
        opt.step()
        opt.zero_grad(set_to_none=True)
        for group, lr in zip(opt.param_groups, saved, strict=True):
            group["lr"] = lr
    for p in params:  # ... then overwrite them with src's
        for key in sorted(opt.state[p]):
            value = opt.state[p][key]
            if isinstance(value, torch.Tensor):
                dist.broadcast(value, src)


def replica_digest(algorithm: Algorithm) -> str:
    """A short hash of every module's weights and buffers: equal on replicas that are bit-identical."""
    h = hashlib.sha256()
    for name in sorted(algorithm.modules):
        for key, tensor in sorted(algorithm.modules[name].state_dict().items()):
            h.update(f"{name}/{key}".encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


class DataParallelLearner(Learner):
    """A ``Learner`` that is one of G data-parallel replicas (see the module docstring)."""

    async def init(  # type: ignore[override]
        self,
        algo: str,
        env_id: str,
        config: dict[str, Any],
        seed: int = 0,
        checkpoint_dir: str | None = None,
        *,
        rank: int,
        world_size: int,
        address: str,
        backend: str = "gloo",
        timeout_s: float = 300.0,
        local_rank: int | None = None,
    ) -> None:
        """``local_rank`` (nccl): this replica's GPU, by default ``rank`` modulo the GPUs of this machine."""
        _check_group_args(rank, world_size, address, backend)
        if rank != 0 and checkpoint_dir is not None:
            raise ValueError(f"only replica 0 writes checkpoints; replica {rank} was given {checkpoint_dir!r}")
        if dist.is_initialized():
            raise RuntimeError("this OS process already belongs to a data-parallel group (one replica per process)")
        gpu: torch.device | None = None
        if backend == "nccl":  # before joining: nccl binds the process to its current GPU
            local = rank % torch.cuda.device_count() if local_rank is None else local_rank
            config = {**config, "device": replica_device(backend, local)}
            torch.cuda.set_device(local)
            gpu = torch.device("cuda", local)
        await super().init(algo, env_id, config, seed, checkpoint_dir)
        self.rank, self.world_size = rank, world_size
        self.hold_at: int | None = None
        joined = False
        try:
            await asyncio.to_thread(join_group, rank, world_size, address, backend, timeout_s, gpu)
            joined = True
            self.average = await asyncio.to_thread(replicate, self.algorithm)
        except BaseException:
            if joined:  # only the group this replica joined: never another's in this process
                await asyncio.to_thread(leave_group)
            if self._fence is not None:
                self._fence.release()
            raise

    async def handle_call(self, request: Any, from_: From) -> Any:
        match request:
            case ["get_params", _] if self.rank != 0:
                raise Rejected(f"replica {self.rank} does not publish parameters: actors ask replica 0")
            case ["learn", _] if self.hold_at is not None and self.version >= self.hold_at:
                raise Rejected(f"replica {self.rank} holds at version {self.hold_at}")
            case ["hold", int() as version]:
                if version < self.version:
                    raise Rejected(f"replica {self.rank} is at version {self.version}, past {version}")
                self.hold_at = version
                return self.version
            case ["stats"]:
                stats: dict[str, Any] = await super().handle_call(request, from_)
                digest = await asyncio.to_thread(replica_digest, self.algorithm)
                return {
                    **stats,
                    "rank": self.rank,
                    "world_size": self.world_size,
                    "digest": digest,
                    "hold_at": self.hold_at,
                }
        return await super().handle_call(request, from_)

    async def terminate(self, reason: Any) -> None:
        try:
            await super().terminate(reason)
        finally:
            await asyncio.to_thread(leave_group)
