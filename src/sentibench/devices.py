"""Which device a run uses, and the autocast dtype that goes with it."""

from __future__ import annotations

import torch

from .errors import SentibenchError


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


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """bf16 on CUDA by default; full precision elsewhere (CPU autocast is slow, not exact)."""
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
