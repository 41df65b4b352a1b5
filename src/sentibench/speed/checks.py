"""Correctness checks the speedtest reports beside its figures, each pass or fail with the
numbers behind it: bf16 and fp32 logits of the same weights agree; compiled and eager
logits agree; training steps replayed as CUDA graphs give the eager steps' weights; the
data-parallel (DDP) training step runs in a one-process group and gives the plain step's
gradients and weights. (Loss falling and finiteness are judged on the
timed runs themselves, in :mod:`.run`.)"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from sentibench.core.errors import SentibenchError
from sentibench.speed.measure import quiet_engine, speed_config, synthetic_split
from sentibench.speed.models import SEED, SpeedModel

# |bf16 - fp32| <= BF16_ATOL + BF16_RTOL |fp32|, elementwise: bf16 keeps 8 bits of mantissa
# (relative rounding 2^-9 per operation), compounded over every layer of the network.
BF16_ATOL, BF16_RTOL = 0.05, 0.05
COMPILE_TOL = 1e-3  # fp32 both sides: only the order of floating-point operations differs
# A replay runs the eager step's kernels; only the learning rate's rounding (a float32
# tensor in the graph, a double argument eagerly) may move the last bits of an update.
GRAPH_RTOL, GRAPH_ATOL = 1e-5, 1e-6
GRAPH_CHECK_STEPS = 4
CHECK_ROWS = 8


@dataclass
class Check:
    name: str
    passed: bool | None  # None: not run here (the detail says why)
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "detail": self.detail}

    @property
    def word(self) -> str:
        return {True: "pass", False: "FAIL", None: "skipped"}[self.passed]


def bf16_supported(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return torch.amp.is_autocast_available(device.type)


def _logits(sm: SpeedModel, device: torch.device, precision: str, seq_len: int,
            compile: bool = False) -> torch.Tensor:
    engine = quiet_engine(sm.model, speed_config(str(device), precision, CHECK_ROWS, compile),
                          seq_len)
    return engine.predict_logits(synthetic_split(sm.vocab_size, CHECK_ROWS, seq_len, SEED + 3))


def within_tolerance(got: torch.Tensor, want: torch.Tensor, atol: float, rtol: float
                ) -> tuple[bool, float]:
    diff = (got - want).abs()
    ok = bool(torch.isfinite(got).all()) and bool((diff <= atol + rtol * want.abs()).all())
    return ok, float(diff.max())


def bf16_vs_fp32(sm: SpeedModel, device: torch.device, seq_len: int) -> Check:
    name = "bf16 logits = fp32 logits"
    if not bf16_supported(device):
        return Check(name, None, f"bf16 autocast unsupported on {device.type} here")
    want = _logits(sm, device, "fp32", seq_len)
    got = _logits(sm, device, "bf16", seq_len)
    ok, worst = within_tolerance(got, want, BF16_ATOL, BF16_RTOL)
    return Check(name, ok, f"max |diff| {worst:.2e} (tolerance {BF16_ATOL} + {BF16_RTOL} "
                           f"|fp32|, logits up to {float(want.abs().max()):.2f})")


def compiled_vs_eager(sm: SpeedModel, device: torch.device, seq_len: int) -> Check:
    want = _logits(sm, device, "fp32", seq_len)
    got = _logits(sm, device, "fp32", seq_len, compile=True)
    ok, worst = within_tolerance(got, want, COMPILE_TOL, COMPILE_TOL)
    return Check("compiled logits = eager logits", ok,
                 f"fp32, max |diff| {worst:.2e} (tolerance {COMPILE_TOL} + {COMPILE_TOL} |eager|)")


def _one_step(sm: SpeedModel, device: torch.device, seq_len: int, ddp: bool
              ) -> dict[str, torch.Tensor]:
    """Gradients and weights after two engine steps: a parameter that DDP saw unused in the
    first would fail the second."""
    cfg = replace(speed_config(str(device), "fp32", 2, compile=False, cuda_graphs="off"),
                  max_steps=2)
    engine = quiet_engine(sm.model, cfg, seq_len)
    if ddp:  # what Engine does under torchrun, whose WORLD_SIZE=1 it treats as no DDP
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index if device.index is not None else torch.cuda.current_device()] \
            if device.type == "cuda" else None
        engine.forward = DistributedDataParallel(engine.eval_forward, device_ids=ids)
    split = synthetic_split(sm.vocab_size, 2, seq_len, SEED, repeat=4)
    engine.fit(split, split)
    out = {}
    for key, p in sm.model.named_parameters():
        out[f"{key}.weight"] = p.detach().cpu().clone()
        if p.grad is not None:
            out[f"{key}.grad"] = p.grad.detach().cpu().clone()
    return out


def ddp_one_process(build: Callable[[], SpeedModel], device: torch.device,
                    seq_len: int) -> Check:
    """Engine steps with the model wrapped in DistributedDataParallel inside a one-process
    group (NCCL on CUDA, gloo on CPU) equal plain steps: same gradients, same weights
    (exact on CPU; CUDA's atomic additions may reorder sums, hence the tolerance)."""
    import torch.distributed as dist

    backend = "nccl" if device.type == "cuda" else "gloo"
    name = f"DDP steps, 1 process ({backend}) = plain steps"
    if dist.is_initialized():
        return Check(name, None, "a process group already exists (torchrun)")
    plain = _one_step(build(), device, seq_len, ddp=False)
    with tempfile.TemporaryDirectory() as tmp:
        dist.init_process_group(backend, init_method=(Path(tmp) / "store").as_uri(),
                                rank=0, world_size=1)
        try:
            wrapped = _one_step(build(), device, seq_len, ddp=True)
        finally:
            dist.destroy_process_group()
    if plain.keys() != wrapped.keys():
        return Check(name, False, "different parameters received gradients")
    worst = max(float((plain[k] - wrapped[k]).abs().max()) for k in plain)
    ok = all(torch.allclose(wrapped[k], plain[k], rtol=1e-4, atol=1e-5) for k in plain)
    grads = sum(k.endswith(".grad") for k in plain)
    return Check(name, ok, f"{grads} gradients and the weights after 2 steps, max |diff| "
                           f"{worst:.1e}")


def _without_dropout(model: torch.nn.Module) -> None:
    """Dropout off everywhere (modules and the float rates attention layers keep), so that
    two ways of running the same steps draw no random masks to differ by."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
        for key, value in list(vars(module).items()):
            if "drop" in key and isinstance(value, float):
                setattr(module, key, 0.0)


def _weights_after_steps(sm: SpeedModel, device: torch.device, precision: str, seq_len: int,
                         graphs: str) -> dict[str, torch.Tensor]:
    _without_dropout(sm.model)
    cfg = replace(speed_config(str(device), precision, CHECK_ROWS, compile=False,
                               cuda_graphs=graphs), max_steps=GRAPH_CHECK_STEPS)
    engine = quiet_engine(sm.model, cfg, seq_len)
    rows = CHECK_ROWS * (GRAPH_CHECK_STEPS + 1)
    split = synthetic_split(sm.vocab_size, rows, seq_len, SEED + 4)
    engine.fit(split, split)
    if graphs == "on" and engine.graphed is None:
        raise _NotRecorded(str(engine.graph_error))
    return {k: p.detach().float().cpu().clone() for k, p in sm.model.named_parameters()}


class _NotRecorded(Exception):
    """The engine could not record this model's step and trained it eagerly."""


def graphed_vs_eager(build: Callable[[], SpeedModel], device: torch.device, seq_len: int,
                     precisions: list[str]) -> Check:
    """Steps replayed as CUDA graphs (engine.graphs) leave the weights the eager steps
    leave, in each precision timed, dropout off on both sides. A model whose step cannot
    be recorded trains eagerly (the engine says why): not run, not failed."""
    name = "CUDA-graph steps = eager steps"
    if device.type != "cuda":
        return Check(name, None, "CUDA only")
    details, ok = [], True
    for precision in precisions:
        try:
            eager = _weights_after_steps(build(), device, precision, seq_len, "off")
            graphed = _weights_after_steps(build(), device, precision, seq_len, "on")
        except _NotRecorded as why:
            return Check(name, None, f"not recorded, trains eagerly: {why}")
        except (RuntimeError, SentibenchError) as error:
            return Check(name, False, f"{precision}: {error}")
        worst = max(float((graphed[k] - eager[k]).abs().max()) for k in eager)
        ok = ok and all(torch.allclose(graphed[k], eager[k], rtol=GRAPH_RTOL, atol=GRAPH_ATOL)
                        for k in eager)
        details.append(f"{precision} max |diff| {worst:.1e}")
    return Check(name, ok, f"weights after {GRAPH_CHECK_STEPS} steps, "
                           f"{', '.join(details)}")
