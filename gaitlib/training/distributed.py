"""torch.distributed plumbing: one code path for one process and for torchrun DDP.

``torchrun`` sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; without them the
run is a single process and every helper here is the identity. Backend: NCCL when the run is on
CUDA, gloo on CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(preference: str, local_rank: int = 0) -> torch.device:
    """'auto' -> CUDA when available, else CPU; 'cuda' without a GPU is an error."""
    if preference == "cuda" or (preference == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            from gaitlib.errors import ConfigError

            raise ConfigError("device=cuda, but torch sees no GPU; valid here: device=cpu or "
                              "device=auto")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def init(preference: str = "auto") -> DistInfo:
    """Join the process group that torchrun describes (if any) and pick this rank's device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(preference, local_rank)
    if world_size > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=rank,
                                world_size=world_size)
    return DistInfo(rank, world_size, local_rank, device)


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


class _GatherWithGrad(torch.autograd.Function):
    """All-gather whose backward gives each rank the sum over ranks of its slice's gradient.

    Written here rather than taken from ``torch.distributed.nn.functional.all_gather``
    (deprecated), whose gloo backward (an all-to-all of the gradient slices) returned wrong
    gradients for the non-contiguous gradients a batch-all triplet loss produces (torch 2.13).
    An all-reduce of the whole, made-contiguous gradient is simple and the tensors are small.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
        x = x.contiguous()
        parts = [torch.empty_like(x) for _ in range(world_size)]
        dist.all_gather(parts, x)
        ctx.rank, ctx.rows = rank, x.shape[0]
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad[ctx.rank * ctx.rows : (ctx.rank + 1) * ctx.rows], None, None


def gather_with_grad(x: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Concatenate every rank's ``x`` (same shape on all ranks) in rank order, keeping the
    autograd graph: the backward pass sends each rank the sum of all ranks' gradients for its
    own slice (see the trainer's note on why that gives the global-batch gradient)."""
    if not info.enabled:
        return x
    return _GatherWithGrad.apply(x, info.rank, info.world_size)


def gather_plain(x: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Concatenate every rank's ``x`` (same shape on all ranks) in rank order, no gradient."""
    if not info.enabled:
        return x
    out = [torch.empty_like(x) for _ in range(info.world_size)]
    dist.all_gather(out, x.contiguous())
    return torch.cat(out, dim=0)


def gather_varying(x: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Concatenate every rank's ``x`` in rank order when the first dimension differs by rank
    (evaluation shards): sizes are exchanged, rows padded to the largest, gathered, unpadded."""
    if not info.enabled:
        return x
    comm = x.to(info.device)
    size = torch.tensor([comm.shape[0]], device=info.device)
    sizes = gather_plain(size, info).tolist()
    padded = comm.new_zeros((max(sizes), *comm.shape[1:]))
    padded[: comm.shape[0]] = comm
    gathered = gather_plain(padded, info).reshape(info.world_size, max(sizes), *comm.shape[1:])
    return torch.cat([gathered[r, :n] for r, n in enumerate(sizes)]).to(x.device)


def reduce_mean(value: float, info: DistInfo) -> float:
    """Mean of a scalar over ranks (logging)."""
    if not info.enabled:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=info.device)
    dist.all_reduce(t)
    return float(t.item()) / info.world_size


def broadcast_flag(flag: bool, info: DistInfo) -> bool:
    """Rank 0's boolean on every rank (e.g. 'an error happened on the main rank')."""
    if not info.enabled:
        return flag
    t = torch.tensor([int(flag)], device=info.device)
    dist.broadcast(t, 0)
    return bool(t.item())


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks whose backward sums the gradients over ranks too: each rank's input
    influences every rank's output, so its gradient is the sum of theirs."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad


class AllReduceBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm over the global batch of a DDP job, on any device and backend (gloo on the
    CPU, where ``torch.nn.SyncBatchNorm`` refuses to run).

    In training, the per-channel sum and count, then the sum of squared deviations from the
    global mean, are all-reduced (differentiably: the backward pass all-reduces their
    gradients), so every rank normalises with the statistics one process would compute on the
    whole batch and updates the running statistics alike (unbiased variance over the global
    count).  Two passes, as single-process BatchNorm computes the variance, so the two agree to
    float rounding.  Outside training, or without a process group, it is plain BatchNorm.
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized()
                and dist.get_world_size() > 1):
            return super().forward(x)
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        x32 = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x  # stats in >= fp32
        local = torch.cat([x32.sum(dims), x32.new_tensor([x.numel() // x.shape[1]])])
        total = _AllReduceSum.apply(local)
        count = total[-1]
        mean = total[:-1] / count
        centred = x32 - mean.reshape(shape)
        var = _AllReduceSum.apply((centred * centred).sum(dims)) / count
        out = centred * torch.rsqrt(var + self.eps).reshape(shape)
        if self.affine:
            out = out * self.weight.reshape(shape) + self.bias.reshape(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = (1.0 / float(self.num_batches_tracked) if self.momentum is None
                          else self.momentum)
                n = float(count)
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), factor)
                unbiased = var.detach() * (n / max(n - 1.0, 1.0))
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), factor)
        return out.to(x.dtype)


def synchronise_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Every BatchNorm module of ``module`` made to use the global batch's statistics under DDP:
    ``torch.nn.SyncBatchNorm`` on CUDA (fused kernels), :class:`AllReduceBatchNorm` elsewhere.
    Parameters and running statistics are carried over; returns the converted module.

    Only BatchNorm *modules* are converted: a model that normalises with ``F.batch_norm`` on a
    module's buffers outside that module's forward keeps per-rank statistics there."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and \
            not isinstance(module, AllReduceBatchNorm | nn.SyncBatchNorm):
        out = AllReduceBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                                 module.track_running_stats)
        if module.affine:
            with torch.no_grad():
                out.weight = module.weight
                out.bias = module.bias
        out.running_mean, out.running_var = module.running_mean, module.running_var
        out.num_batches_tracked = module.num_batches_tracked
        out.train(module.training)
        return out
    for name, child in module.named_children():
        module.add_module(name, synchronise_batchnorm(child, device))
    return module


def step_seed(seed: int, iteration: int, rank: int) -> int:
    """The seed of one rank's random stream (dropout) at one iteration.

    The trainer reseeds torch with it before every step, so the random draws of a step depend
    on (seed, iteration, rank) only: a resumed run draws what an uninterrupted one would, at
    any world size and with any number of visible GPUs, and no two ranks draw the same dropout
    masks.  (The batches and their augmentation are drawn per sample by the sampler, from (seed,
    iteration, slot), so they do not depend on the rank.)"""
    import numpy as np

    state = np.random.SeedSequence([int(seed), 2, int(iteration), int(rank)]).generate_state(1)
    return int(state[0])
