"""Scoring a saved model on new texts: length-sorted batches under ``inference_mode``.

This is what ``predict`` runs; it needs no training state (no optimizer, no checkpoint,
no training options), only the model, its tokenizer and the run's length limit.

On the CPU, batches are small (:data:`CPU_PREDICT_BATCH`) and scored by as many worker
threads as torch has intra-op threads, each running its batch on one thread. Profiling
MiniLM at 256 tokens showed why: a batch of 64 reviews makes 100 MB activations that
leave the caches (and are page-faulted in afresh on every allocation), and splitting
every small matrix product across two threads makes each wait for the slower one, which
on a shared machine is often descheduled. One thread per batch does the same arithmetic
per row, so the logits are those of the batch-of-64 path up to float rounding.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

import numpy as np
import torch
from torch import nn

from sentibench.core.errors import SentibenchError
from sentibench.core.progress import progress as progress_bar
from sentibench.engine.batching import (
    EncodedSplit,
    TextEncoder,
    collate,
    encode_split,
    sorted_batches,
)
from sentibench.engine.plan import resolve_device
from sentibench.engine.windows import encode_windows
from sentibench.models.truncation import HEAD, Truncation

CPU_PREDICT_BATCH = 8  # rows per batch on the CPU (see the module's docstring)
PREDICT_BATCH = 64  # on accelerators, where larger batches keep the device busy
PROGRESS_ROWS = 512  # show a progress bar from this many rows on


def default_batch_size(device: torch.device) -> int:
    return CPU_PREDICT_BATCH if device.type == "cpu" else PREDICT_BATCH


@contextlib.contextmanager
def _one_thread_each() -> Iterator[int]:
    """Torch's intra-op threads down to one while worker threads share the cores; yields
    how many workers to run (the former thread count)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield threads
    finally:
        torch.set_num_threads(threads)


Item, Scored = TypeVar("Item"), TypeVar("Scored")


def _ordered(pool: ThreadPoolExecutor, score: Callable[[Item], Scored], items: Iterable[Item],
             ahead: int) -> Iterator[Scored]:
    """``map(score, items)`` in order, with at most ``ahead`` items submitted and not yet
    taken (``Executor.map`` submits them all at once, so an error in one batch would leave
    every later batch queued behind it)."""
    pending: collections.deque[Future] = collections.deque()
    for item in items:
        pending.append(pool.submit(score, item))
        if len(pending) >= ahead:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


@contextlib.contextmanager
def scored_ahead(score: Callable[[Item], Scored], items: Sequence[Item],
                 parallel: bool) -> Iterator[Iterator[Scored]]:
    """``map(score, items)``; where ``parallel`` (CPU work), torch has several threads and
    there are two items or more, computed ahead by one-thread workers, one per torch thread
    (the module's docstring says why). ``score`` then runs in a worker thread, so it must
    enter ``inference_mode`` and any autocast itself (both are per thread)."""
    if not parallel or len(items) < 2 or torch.get_num_threads() < 2:
        yield map(score, items)
        return
    with _one_thread_each() as workers:
        pool = ThreadPoolExecutor(workers)
        try:
            yield _ordered(pool, score, items, 2 * workers)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA (as training's default precision there); fp32 elsewhere."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def predict_logits(model: nn.Module, split: EncodedSplit, max_length: int,
                   device: str | torch.device = "cpu", batch_size: int | None = None,
                   progress: str | None = None) -> torch.Tensor:
    """``[rows, C]`` float32 logits of every row of ``split``, in the split's order."""
    target = resolve_device(str(device))
    model = model.to(target)
    was_training = model.training
    model.eval()
    pad_id = int(getattr(model, "pad_id", 0))
    pad_to = max_length if getattr(model, "fixed_padding", False) else None
    batches = list(sorted_batches(split, range(len(split)),
                                  batch_size or default_batch_size(target)))

    @torch.inference_mode()
    def score(batch: list[int]) -> torch.Tensor:  # autocast and inference mode are per thread
        input_ids, mask, _ = collate(split, batch, pad_id, pad_to)
        with _autocast(target):
            return model(input_ids.to(target), mask.to(target)).float().cpu()

    out: torch.Tensor | None = None
    try:
        with scored_ahead(score, batches, target.type == "cpu") as scored:
            for batch, logits in progress_bar(zip(batches, scored, strict=True),
                                              total=len(batches), desc=progress,
                                              disable=progress is None, unit="batch"):
                if out is None:
                    out = torch.empty((len(split), logits.shape[1]))
                out[batch] = logits
    finally:
        model.train(was_training)
    return out if out is not None else torch.empty((0, 0))


def quantize_int8(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose ``nn.Linear`` layers are torch's dynamic int8 ones: int8
    weights with one scale per output channel (per-tensor scales changed 4.3 % of a MiniLM
    run's labels, per-channel 2.8 %, at the same speed), activations quantized per batch
    (fbgemm kernels, which use AVX-512 VNNI where the CPU has it). On such a CPU the
    activations keep all 8 bits (:func:`full_range_activations`). Embeddings, attention,
    norms and activations stay in float32; ``model`` itself is left as it was."""
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    model = model.cpu().eval()
    mapping = {nn.Linear: _full_range_linear()} if full_range_activations() else None
    with warnings.catch_warnings():  # torch announces the quantized dtypes' deprecation
        warnings.filterwarnings("ignore", message=".*quantiz.*deprecated", category=UserWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        quantized = quantize_dynamic(model, {nn.Linear: per_channel_dynamic_qconfig},
                                     dtype=torch.qint8, mapping=mapping)
    if not any(isinstance(m, DynamicLinear) for m in quantized.modules()):
        raise SentibenchError(f"--quantize int8: {type(model).__name__} has no Linear layer "
                              "to quantize")
    return quantized


@functools.cache
def full_range_activations() -> bool:
    """Whether int8 Linear layers may quantize activations to the full 0..255 range.

    torch's dynamic Linear always asks fbgemm for 7-bit activations (``reduce_range``):
    without VNNI, fbgemm adds pairs of uint8 x int8 products in saturating int16, which 8
    bits could overflow. With AVX-512 VNNI or AVX-VNNI the products accumulate in int32, so
    the eighth bit is safe, and it halves the rounding error: on a MiniLM run, 98.65 % of
    2,000 labels unchanged instead of 97.0 %, at the same speed."""
    if torch.backends.quantized.engine not in ("fbgemm", "x86"):
        return False
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            flags = next((line.split(":", 1)[1].split() for line in info
                          if line.startswith("flags")), [])
    except OSError:
        return False
    return "avx512_vnni" in flags or "avx_vnni" in flags


@functools.cache
def _full_range_linear() -> type[nn.Module]:
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    class FullRangeLinear(DynamicLinear):
        """torch's dynamic int8 Linear with 8-bit activations (see full_range_activations)."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            packed = self._packed_params._packed_params
            return torch.ops.quantized.linear_dynamic(x, packed, reduce_range=False).to(x.dtype)

    return FullRangeLinear


def rechecked(probs: np.ndarray, rescore: Callable[[list[int]], np.ndarray],
              margin: float) -> np.ndarray:
    """``probs`` with the rows whose two largest probabilities are less than ``margin``
    apart replaced by ``rescore(those rows)``: where a quantized model is unsure, the
    label comes from the full one."""
    if margin <= 0 or probs.shape[0] == 0 or probs.shape[1] < 2:
        return probs
    top = np.sort(probs, axis=1)[:, -2:]
    unsure = np.flatnonzero(top[:, 1] - top[:, 0] < margin).tolist()
    if not unsure:
        return probs
    print(f"--int8-recheck: {len(unsure)} of {len(probs)} texts ({len(unsure) / len(probs):.1%})"
          f" had their top two classes within {margin:g}; scored again in float32",
          file=sys.stderr)
    out = probs.copy()
    out[unsure] = rescore(unsure)
    return out


def class_probabilities(model: nn.Module, tokenizer: TextEncoder, texts: Sequence[str],
                        max_length: int, device: str = "cpu",
                        batch_size: int | None = None,
                        truncation: Truncation = HEAD, windows: bool = False,
                        window_stride: int | None = None) -> np.ndarray:
    """``[n, C]`` softmax probabilities of ``texts``, cut to ``max_length`` tokens as the
    run was trained (``truncation``), or with ``windows`` the softmax of the mean logits of
    windows covering each whole text (:mod:`sentibench.engine.windows`)."""
    progress = "predict" if len(texts) >= PROGRESS_ROWS else None
    if windows:
        windowed = encode_windows(tokenizer, list(texts), [0] * len(texts), max_length,
                                  window_stride)
        logits = windowed.average(predict_logits(model, windowed.split, max_length, device,
                                                 batch_size, progress))
    else:
        split = encode_split(tokenizer, list(texts), [0] * len(texts), max_length, truncation)
        logits = predict_logits(model, split, max_length, device, batch_size, progress)
    return torch.softmax(logits, dim=-1).numpy()
