"""Timed training and evaluation of one model through sentibench's own engine.

The engine runs exactly as for a real row (its plan: autocast, fused AdamW, micro-batches,
fast dropout, loader workers, compile), on synthetic token ids of one fixed length. Step
times come from the engine's after-step callback (one time stamp after each step, the
device synchronised), so each interval is one whole step: collating, forward, backward, update.
The training rows are one batch of distinct random rows with random labels, repeated:
a task any working model learns, so the loss on those rows must fall.
"""

from __future__ import annotations

import math
import resource
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from sentibench.engine.batching import EncodedSplit
from sentibench.engine.config import TrainConfig
from sentibench.engine.training import Engine
from sentibench.speed.models import SEED, SpeedModel

# Learning rates at which a few steps clearly lower the loss on the repeated batch (speed
# does not depend on them): 1e-4 at real sizes overshoots (GPT-2 124M's batch loss went
# 0.64, 0.00, 1.95); 2e-5 took GPT-2 124M from 0.67 to 0.02 and ModernBERT base from 0.80
# to 0.00 in 11 steps; toy models need the larger rate.
SPEED_LR, TINY_LR = 2e-5, 1e-4
NEVER = 10**9  # eval_freq: no periodic loss evaluation inside the timed steps
_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")


def synthetic_split(vocab_size: int, rows: int, seq_len: int, seed: int,
                    repeat: int = 1) -> EncodedSplit:
    """``rows`` random rows of ``seq_len`` ids (clear of the special ids at either end of
    every vocabulary here) with random labels, the whole set repeated ``repeat`` times."""
    generator = torch.Generator().manual_seed(seed)
    low, high = min(1000, vocab_size // 10), vocab_size - 200
    ids = torch.randint(low, high, (rows, seq_len), generator=generator).tolist()
    labels = torch.randint(0, 2, (rows,), generator=generator)
    return EncodedSplit(ids * repeat, labels.repeat(repeat))


class PeakMemory:
    """Peak memory of a phase: CUDA's allocator peak, or on CPU the process's peak resident
    set (Linux VmHWM, reset per phase through /proc/self/clear_refs; elsewhere the peak
    since the process started)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        if device.type == "cuda":
            self.kind = "CUDA max_memory_allocated"
        elif self._can_reset():
            self.kind = "peak RSS of the process (VmHWM, reset per phase)"
        else:
            self.kind = "peak RSS of the process since it started (ru_maxrss)"

    @staticmethod
    def _can_reset() -> bool:
        try:
            _CLEAR_REFS.write_text("5")
            return "VmHWM" in _STATUS.read_text()
        except OSError:
            return False

    def reset(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        elif "reset" in self.kind:
            _CLEAR_REFS.write_text("5")

    def read(self) -> int:
        if self.device.type == "cuda":
            return int(torch.cuda.max_memory_allocated(self.device))
        if "reset" in self.kind:
            line = next(x for x in _STATUS.read_text().splitlines() if x.startswith("VmHWM"))
            return int(line.split()[1]) * 1024
        scale = 1 if sys.platform == "darwin" else 1024  # macOS counts bytes, Linux KiB
        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * scale


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Phase:
    """Throughput of training or evaluation in one precision."""

    seconds: float
    steps: int
    examples: int
    tokens: int
    peak_memory: int
    flops_per_token: float
    losses: list[float] = field(default_factory=list)  # training: before, after

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds

    def to_dict(self, peak_tflops: float | None) -> dict[str, Any]:
        from sentibench.speed.peaks import mfu

        return {"seconds": self.seconds, "steps": self.steps, "examples": self.examples,
                "tokens": self.tokens, "tokens_per_s": self.tokens_per_s,
                "examples_per_s": self.examples / self.seconds,
                "step_s": self.seconds / self.steps, "peak_memory_bytes": self.peak_memory,
                "flops_per_token": self.flops_per_token,
                "mfu": None if peak_tflops is None else
                mfu(self.flops_per_token, self.tokens_per_s, peak_tflops)}


def speed_config(device: str, precision: str, batch_size: int, compile: bool,
                 learning_rate: float = SPEED_LR, cuda_graphs: str = "auto") -> TrainConfig:
    return TrainConfig(device=device, precision=precision, batch_size=batch_size,
                       learning_rate=learning_rate, eval_freq=NEVER, eval_iter=1,
                       compile=compile, seed=SEED, cuda_graphs=cuda_graphs)


def quiet_engine(model: torch.nn.Module, cfg: TrainConfig, seq_len: int) -> Engine:
    return Engine(model, cfg, seq_len, log=lambda line: None)


def time_training(engine: Engine, sm: SpeedModel, seq_len: int, steps: int, warmup: int,
                  memory: PeakMemory) -> Phase:
    """``warmup`` untimed steps, then ``steps`` timed ones, through ``Engine.fit`` (stamped
    by the engine after each step: a replayed CUDA graph calls no optimizer hook)."""
    batch = engine.cfg.batch_size
    total_steps = warmup + steps + 1  # the first stamp after the warm-up opens the timing
    fixed = synthetic_split(sm.vocab_size, batch, seq_len, SEED)
    train = synthetic_split(sm.vocab_size, batch, seq_len, SEED, repeat=total_steps + 1)
    engine.cfg = replace(engine.cfg, max_steps=total_steps)
    before = engine.loss_and_accuracy(fixed, range(batch))[0]
    stamps: list[float] = []

    def stamp(*_: Any) -> None:
        synchronize(engine.device)
        stamps.append(time.perf_counter())

    memory.reset()
    engine.on_step = stamp
    try:
        engine.fit(train, fixed)
    finally:
        engine.on_step = None
    peak = memory.read()
    after = engine.loss_and_accuracy(fixed, range(batch))[0]
    timed = stamps[warmup:]
    return Phase(timed[-1] - timed[0], len(timed) - 1, (len(timed) - 1) * batch,
                 (len(timed) - 1) * batch * seq_len, peak,
                 sm.flops_per_token(seq_len, train=True), [before, after])


def time_evaluation(engine: Engine, sm: SpeedModel, seq_len: int, batches: int,
                    memory: PeakMemory) -> tuple[Phase, bool]:
    """Seconds for ``batches`` evaluation batches: a pass over twice as many minus a pass
    over as many, so the fixed cost of a pass (loader workers starting, the first batch)
    cancels (if noise leaves nothing, the whole longer pass counts). Fresh rows each time,
    so the engine's per-weights memo of logits cannot serve them. Also: all logits finite?"""
    size = engine.plan.eval_batch_size
    engine.predict_logits(synthetic_split(sm.vocab_size, size, seq_len, SEED + 1))  # warm-up
    memory.reset()
    seconds, finite_logits = [], True
    for seed, count in ((SEED + 2, batches), (SEED + 3, 2 * batches)):
        split = synthetic_split(sm.vocab_size, size * count, seq_len, seed)
        t0 = time.perf_counter()
        logits = engine.predict_logits(split)
        seconds.append(time.perf_counter() - t0)
        finite_logits = finite_logits and bool(torch.isfinite(logits).all())
    difference = seconds[1] - seconds[0]
    timed = difference if difference > 0 else seconds[1]
    rows = size * (batches if difference > 0 else 2 * batches)
    return Phase(timed, rows // size, rows, rows * seq_len, memory.read(),
                 sm.flops_per_token(seq_len, train=False)), finite_logits


def finite(values: list[float]) -> bool:
    return all(math.isfinite(v) for v in values)
