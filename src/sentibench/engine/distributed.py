"""Data parallelism under ``torchrun``: process group set-up, sharding and gathering.

Semantics: ``--batch-size`` is the GLOBAL batch (the reference's 8 stays 8 on any number of
processes); each rank takes an equal slice of every global batch, and gradients are
averaged, so an N-process step equals a one-process step up to floating-point order.
Evaluation shards rows across ranks and gathers every row's logits exactly once.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist

from sentibench.core.errors import SentibenchError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_from_env(device_type: str) -> DistInfo:
    """Join the process group that ``torchrun`` describes in the environment, if any."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend)
    return DistInfo(rank, world, local_rank)


def local_slice(indices: Sequence[int], info: DistInfo, batch_size: int) -> list[int]:
    """This rank's rows of a global training batch."""
    if batch_size % info.world_size:
        raise SentibenchError(f"--batch-size {batch_size} must be divisible by the "
                              f"{info.world_size} processes")
    return list(indices[info.rank :: info.world_size])


def shard(indices: Sequence[int], info: DistInfo) -> list[int]:
    """Rows this rank evaluates; together the ranks cover each row exactly once."""
    return list(indices[info.rank :: info.world_size])


def gather_rows(local: torch.Tensor, positions: list[int], total: int,
                info: DistInfo) -> torch.Tensor:
    """Reassemble per-rank ``[n_local, C]`` results into ``[total, C]`` in row order."""
    if not info.enabled:
        return local
    parts: list[tuple[list[int], torch.Tensor] | None] = [None] * info.world_size
    dist.all_gather_object(parts, (positions, local.cpu()))
    out = torch.empty((total, local.shape[1]))
    filled = torch.zeros(total, dtype=torch.bool)
    for part_positions, values in parts:  # type: ignore[misc]
        out[part_positions] = values
        filled[part_positions] = True
    if not bool(filled.all()):
        raise RuntimeError("distributed evaluation missed rows")
    return out


def average_gradients(params: Sequence[torch.nn.Parameter], info: DistInfo) -> None:
    """All-reduce gradients (the feature-cache path trains the head outside DDP)."""
    if not info.enabled:
        return
    for p in params:
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad /= info.world_size
