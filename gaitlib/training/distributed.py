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
