"""One process per device: where ``torchrun`` puts this process, and the little talk between processes.

``torchrun --nproc_per_node=N -m superres ...`` starts N copies of the command and tells each its place
through the environment: ``RANK`` (0 … ``WORLD_SIZE`` − 1 over all machines), ``LOCAL_RANK`` (its
device on this machine) and ``MASTER_ADDR``/``MASTER_PORT`` (where rank 0 listens). Without those
variables there is one process and nothing here touches ``torch.distributed``.

Upscaling needs no collective maths: each rank takes its share of the work (:meth:`Ranks.share`) and
writes its own files. :func:`process_group` is only for the end, so that rank 0 can wait for the others and
report for all of them; it speaks gloo, which runs over TCP and needs no GPU, whatever device each
rank computes on. Training (:mod:`superres.train.distributed`) uses the same place and devices.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

T = TypeVar("T")

# How long rank 0 waits at the end for the slowest rank: a rank may still be upscaling a long video
# when the others are done (gloo's default, 30 minutes, would end the run).
WAIT_FOR_RANKS = timedelta(days=7)


@dataclass(frozen=True)
class Ranks:
    """This process's place among the processes torchrun started (one process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_environment(cls) -> Ranks:
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size <= 1:
            return cls()
        return cls(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))

    @property
    def is_main(self) -> bool:
        """Rank 0 alone plans, joins and reports."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def share(self, items: Sequence[T]) -> list[T]:
        """This rank's items: every ``world_size``-th, from its rank on. Dealt round-robin, so neighbours
        (files of one folder, segments of one video), which tend to cost alike, spread evenly."""
        return list(items[self.rank :: self.world_size])


def device_for_rank(requested: str, local_rank: int, cuda_available: bool) -> str:
    """One GPU per process: ``auto`` or a bare ``cuda`` means ``cuda:LOCAL_RANK`` where CUDA is available;
    anything else is taken as given (``auto`` without CUDA is left to the engine: mps, else cpu)."""
    if requested == "cuda" or (requested == "auto" and cuda_available):
        return f"cuda:{local_rank}"
    return requested


@contextmanager
def process_group(ranks: Ranks) -> Iterator[Group]:
    """The processes of one torchrun, joined over gloo while the block runs (nothing for one process)."""
    joined = False
    if ranks.distributed:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("gloo", timeout=WAIT_FOR_RANKS)
            joined = True
    try:
        yield Group(ranks)
    finally:
        if joined:
            import torch.distributed as dist

            dist.destroy_process_group()


@dataclass(frozen=True)
class Group:
    """What the ranks say to each other at the end (see :func:`process_group`): :meth:`gather` brings
    every rank's report to rank 0, :meth:`broadcast` rank 0's verdict to all."""

    ranks: Ranks

    def gather(self, value: T) -> list[T] | None:
        """Every rank's ``value``, by rank, on rank 0; ``None`` on the others."""
        if not self.ranks.distributed:
            return [value]
        import torch.distributed as dist

        gathered: list[T] | None = [value] * self.ranks.world_size if self.ranks.is_main else None
        dist.gather_object(value, gathered, dst=0)
        return gathered

    def broadcast(self, value: T) -> T:
        """Rank 0's ``value`` on every rank."""
        if not self.ranks.distributed:
            return value
        import torch.distributed as dist

        holder = [value]
        dist.broadcast_object_list(holder, src=0)
        return holder[0]
