"""Process-group set-up for ``torchrun --nproc_per_node=N -m superres train ...``.

torchrun starts N copies of the command and tells each its place through the environment
(:class:`superres.engine.distributed.Ranks`, shared with upscaling). Without those variables
training runs as a single process and nothing here touches ``torch.distributed``.

``data.batch_size`` is the batch over all processes (16 in both papers), split evenly among them,
so a recipe means the same on one GPU or eight. BatchNorm (in SRResNet and in both discriminators)
then normalises over each process's share only; SyncBatchNorm is not used: it would add a
collective per BN layer, and with 8+ images per process the statistics are already stable.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist

from superres.engine.distributed import Ranks, device_for_rank
from superres.errors import ConfigError


@dataclass(frozen=True)
class DistContext(Ranks):
    """This process's place and device. Rank 0 (``is_main``) alone logs, validates and writes checkpoints."""

    device: torch.device = torch.device("cpu")

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


def choose_device(requested: str, local_rank: int = 0) -> torch.device:
    """``auto`` picks this process's GPU when there is one, else the CPU."""
    name = device_for_rank(requested, local_rank, torch.cuda.is_available())
    device = torch.device("cpu" if name == "auto" else name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={requested}, but no CUDA GPU is available")
    return device


def setup(requested_device: str) -> DistContext:
    """Join the process group when launched by torchrun (NCCL on GPUs, gloo on CPU)."""
    place = Ranks.from_environment()
    device = choose_device(requested_device, place.local_rank)
    if not place.distributed:
        return DistContext(0, 1, 0, device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistContext(place.rank, place.world_size, place.local_rank, device)


def teardown(ctx: DistContext) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def broadcast_object(ctx: DistContext, value: object) -> object:
    """Rank 0's ``value`` on every rank (e.g. an error message, so all ranks stop together)."""
    if not ctx.distributed:
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def all_true(ctx: DistContext, flag: torch.Tensor) -> bool:
    """Whether a boolean tensor is true on every rank: all ranks take a decision (skip a step) together,
    or DDP's gradient all-reduce would wait forever for the ranks that skipped."""
    value = flag.to(torch.float32).reshape(1)
    if ctx.distributed:
        dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return bool(value.item())


def sync_buffers(ctx: DistContext, module: torch.nn.Module) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank.

    DDP broadcasts buffers at the start of each forward, so after the last step every rank still
    holds statistics of its own last batch; this makes all ranks end with rank 0's, as saved.
    """
    if ctx.distributed:
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)
