"""Every ``auto`` of the training options, resolved in one place into the plan that runs.

:func:`resolve_plan` turns a :class:`~sentibench.engine.config.TrainConfig` (whose device,
precision, evaluation batch, workers, micro-batching, fast dropout and feature cache may
say ``auto`` or nothing) into a :class:`Plan` of concrete values; the engine reads only
the plan, prints it once and results.json records it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import nn

from sentibench.core.errors import SentibenchError
from sentibench.engine import feature_cache
from sentibench.engine.config import TrainConfig

AMP_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
CUDA_EVAL_BATCH = 64  # on CPU larger evaluation batches are slower: the training size is used
CUDA_WORKERS = 2  # spare cores are rare on CPU runs, so 0 there


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SentibenchError(f"--device {name}: CUDA is not available on this machine")
    if name == "mps" and not torch.backends.mps.is_available():
        raise SentibenchError("--device mps: MPS is not available on this machine")
    return torch.device(name)


def resolve_precision(device: torch.device, precision: str) -> str:
    """bf16 on CUDA by default; full precision elsewhere (CPU autocast is slow, not exact)."""
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    return precision


@dataclass(frozen=True)
class Plan:
    """What a run actually does, with no ``auto`` left."""

    device: str
    precision: str
    eval_batch_size: int
    num_workers: int
    pin_memory: bool
    split_batches: bool
    fast_dropout: bool
    feature_cache: str  # "off", or the level cached: "pooled" vectors or per-row "tokens"
    first_token_block: bool  # the last block runs at the first position only (exact)
    compile: bool
    cuda_graphs: bool  # training steps replayed as CUDA graphs (engine.graphs)
    world_size: int

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        on = {True: "on", False: "off"}
        return (f"Plan: device {self.device}, precision {self.precision}, eval batch "
                f"{self.eval_batch_size}, workers {self.num_workers}, micro-batches "
                f"{on[self.split_batches]}, fast dropout {on[self.fast_dropout]}, feature "
                f"cache {self.feature_cache}, last block at the first token only "
                f"{on[self.first_token_block]}, compile {on[self.compile]}, CUDA graphs "
                f"{on[self.cuda_graphs]}, {self.world_size} "
                f"process{'es' if self.world_size > 1 else ''}")


def _split_batches(setting: str, device: torch.device, fixed_padding: bool, cached: bool,
                   log: Callable[[str], None]) -> bool:
    """Micro-batches pay only where each batch is padded to its own longest row and the
    full model runs; on a GPU one large kernel beats several smaller ones."""
    if setting == "off" or cached:
        return False
    if fixed_padding:
        if setting == "on":
            log("--split-batches on: no effect, this model pads every row to a fixed length")
        return False
    return setting == "on" or device.type == "cpu"


def _cuda_graphs(cfg: TrainConfig, device: torch.device, world_size: int, cached: bool,
                 split_batches: bool) -> bool:
    """Steps can be recorded where one process runs one micro-batch per step through the
    whole model on CUDA; ``on`` anywhere else is an error, ``auto`` turns them off."""
    blockers = [why for why, present in (
        ("it needs --device cuda", device.type != "cuda"),
        ("not with --compile (it records its own graphs)", cfg.compile),
        ("not under torchrun (DDP)", world_size > 1),
        ("not with --accumulation-steps above 1", cfg.accumulation_steps > 1),
        ("not with --no-padding", cfg.no_padding),
        ("not with --split-batches", split_batches),
        ("not with the feature cache", cached)) if present]
    if cfg.cuda_graphs == "on" and blockers:
        raise SentibenchError(f"--cuda-graphs on: {blockers[0]}")
    return cfg.cuda_graphs != "off" and not blockers


def resolve_plan(cfg: TrainConfig, model: nn.Module, device: torch.device, world_size: int,
                 log: Callable[[str], None]) -> Plan:
    level = feature_cache.plan(model, cfg.feature_cache, log)
    cuda = device.type == "cuda"
    split = _split_batches(cfg.split_batches, device,
                           bool(getattr(model, "fixed_padding", False)), level is not None, log)
    return Plan(
        device=str(device),
        precision=resolve_precision(device, cfg.precision),
        eval_batch_size=cfg.eval_batch_size or (CUDA_EVAL_BATCH if cuda else cfg.batch_size),
        num_workers=cfg.num_workers if cfg.num_workers is not None else
        (CUDA_WORKERS if cuda else 0),
        pin_memory=cuda,
        split_batches=split,
        fast_dropout=cfg.fast_dropout != "off" and device.type == "cpu" and not cfg.compile,
        feature_cache=level or "off",
        first_token_block=getattr(model, "first_token_block", None) is not None,
        compile=cfg.compile,
        cuda_graphs=_cuda_graphs(cfg, device, world_size, level is not None, split),
        world_size=world_size,
    )
