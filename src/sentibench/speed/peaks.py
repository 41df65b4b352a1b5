"""The peak dense TFLOP/s that model-FLOPs utilisation is measured against.

Known GPUs by the name CUDA reports (vendor datasheets: dense tensor-core bf16 without
sparsity, and plain fp32 without TF32, since torch leaves TF32 off for fp32 matmuls by
default); ``--peak-tflops`` for any other; on CPU a measured large matmul, so that the CPU's
MFU says how close training gets to what this machine's BLAS reaches at best.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class GpuPeak:
    label: str
    pattern: str  # regex searched in torch.cuda.get_device_name(), case-insensitive
    bf16: float  # TFLOP/s, dense tensor cores (fp16 where the GPU has no bf16: T4, V100)
    fp32: float  # TFLOP/s, no TF32


# Order matters: the first match wins (H100 PCIe/NVL before the SXM default, L40S before L4).
GPU_PEAKS = (
    GpuPeak("H100 PCIe", r"H100.*PCIe", 756.0, 51.2),
    GpuPeak("H100 NVL", r"H100.*NVL", 835.0, 60.0),
    GpuPeak("H100 SXM", r"H100", 989.4, 66.9),
    GpuPeak("H200", r"H200", 989.4, 66.9),
    GpuPeak("GH200", r"GH200", 989.4, 66.9),
    GpuPeak("A100", r"A100", 312.0, 19.5),
    GpuPeak("L40S", r"L40S", 362.1, 91.6),
    GpuPeak("L4", r"\bL4\b", 121.0, 30.3),
    GpuPeak("A10G", r"\bA10G\b", 70.0, 31.2),
    GpuPeak("A10", r"\bA10\b", 125.0, 31.2),
    GpuPeak("T4", r"\bT4\b", 65.0, 8.1),
    GpuPeak("V100", r"V100", 125.0, 15.7),
    GpuPeak("RTX 4090", r"RTX 4090", 165.2, 82.6),
    GpuPeak("RTX 3090", r"RTX 3090", 35.6, 35.6),
)


def gpu_peak(name: str) -> GpuPeak | None:
    """The datasheet figures of the GPU CUDA calls ``name`` (e.g. "NVIDIA H100 80GB HBM3")."""
    return next((p for p in GPU_PEAKS if re.search(p.pattern, name, re.IGNORECASE)), None)


def flops_text(tflops: float) -> str:
    return f"{tflops:g} TFLOP/s" if tflops >= 1 else f"{tflops * 1000:.0f} GFLOP/s"


def mfu(flops_per_token: float, tokens_per_second: float, peak_tflops: float) -> float:
    """Model-FLOPs utilisation: the model's FLOPs per second over the device's peak."""
    return flops_per_token * tokens_per_second / (peak_tflops * 1e12)


def matmul_tflops(dtype_name: str = "fp32", n: int = 2048, seconds: float = 0.5) -> float:
    """TFLOP/s of the fastest of repeated ``n x n`` CPU matmuls (2 n^3 FLOPs each)."""
    import torch

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype_name]
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    a @ b  # warm-up: threads, packing buffers
    best, start = float("inf"), time.perf_counter()
    while time.perf_counter() - start < seconds or best == float("inf"):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best / 1e12


def device_peaks(device_type: str, device_name: str, precisions: list[str],
                 given: float | None) -> tuple[dict[str, float | None], str]:
    """Peak TFLOP/s per precision, and where they come from."""
    if given is not None:
        return {p: given for p in precisions}, "--peak-tflops"
    if device_type == "cuda":
        known = gpu_peak(device_name)
        if known is None:
            return {p: None for p in precisions}, \
                f"unknown GPU {device_name!r}: pass --peak-tflops for MFU"
        return {p: known.fp32 if p == "fp32" else known.bf16 for p in precisions}, \
            f"datasheet, {known.label} (dense bf16 {known.bf16}, fp32 {known.fp32} TFLOP/s)"
    if device_type == "cpu":
        peaks = {p: matmul_tflops(p) for p in precisions}
        return peaks, "the fastest of repeated 2048x2048 matmuls on this CPU"
    return {p: None for p in precisions}, "no known peak for this device: pass --peak-tflops"
