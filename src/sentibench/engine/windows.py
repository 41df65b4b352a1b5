"""Sliding-window scoring (``--eval-windows``): a review longer than the model's length is
scored as overlapping windows that together cover every token, and its logits are the mean
of its windows' logits.

Truncation shows the model only part of a long review (the first 256 tokens of a 1,000-token
IMDb review, say), and the verdict is often at the end. Windows let evaluation and
``predict`` read all of it without retraining: each window is a plain input of at most
``max_length`` tokens, framed by the model's own special tokens ([CLS] ... [SEP] for BERT
tokenizers, none for GPT-2), exactly the shape the model was trained on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from sentibench.core.errors import SentibenchError
from sentibench.engine.batching import EncodedSplit, TextEncoder

ENCODE_CHUNK = 1024  # texts per tokenizer call


@dataclass(frozen=True)
class WindowedSplit:
    """Every window of some reviews, one row each, and the review each row belongs to."""

    split: EncodedSplit  # windows, labelled with their review's label
    owner: torch.Tensor  # [windows] long: the review (row of the original texts) of each
    rows: int  # how many reviews

    def average(self, logits: torch.Tensor) -> torch.Tensor:
        """``[rows, C]``: each review's mean of its windows' ``logits`` ``[windows, C]``."""
        return average_logits(logits, self.owner, self.rows)


def default_stride(size: int) -> int:
    """Half a window: every token but those at a review's ends is seen by two windows, once
    away from a window's edge, where it has context on both sides."""
    return max(1, size // 2)


def window_starts(length: int, size: int, stride: int) -> list[int]:
    """Where the windows of ``length`` text tokens start: every ``stride`` tokens, and a last
    window ending at the last token, so the union covers all of them."""
    if size < 1 or stride < 1:
        raise SentibenchError(f"windows need a size and stride of at least 1, got {size} and "
                              f"{stride}")
    if length <= size:
        return [0]
    return [*range(0, length - size, stride), length - size]


def special_frame(tokenizer: TextEncoder) -> tuple[list[int], list[int]]:
    """The special ids a tokenizer puts before and after a text (none for GPT-2's BPE)."""
    frame = getattr(tokenizer, "special_frame", None)
    return (list(frame[0]), list(frame[1])) if frame is not None else ([], [])


def encode_windows(tokenizer: TextEncoder, texts: Sequence[str], labels: Sequence[int],
                   max_length: int, stride: int | None = None) -> WindowedSplit:
    """The windows of ``texts``: at most ``max_length`` ids each, special tokens included;
    ``stride`` text tokens apart (default: :func:`default_stride`)."""
    prefix, suffix = special_frame(tokenizer)
    size = max_length - len(prefix) - len(suffix)
    if size < 1:
        raise SentibenchError(f"max_length {max_length} leaves no room for text between the "
                              f"{len(prefix) + len(suffix)} special tokens")
    stride = default_stride(size) if stride is None else int(stride)
    if stride > size:
        raise SentibenchError(f"--window-stride {stride} exceeds the window's {size} text "
                              "tokens: windows would skip tokens")
    ids: list[list[int]] = []
    owner: list[int] = []
    window_labels: list[int] = []
    for start in range(0, len(texts), ENCODE_CHUNK):
        full = tokenizer.encode_batch(list(texts[start:start + ENCODE_CHUNK]), None)
        for offset, row in enumerate(full):
            content = row[len(prefix):len(row) - len(suffix)]
            if not content and not (prefix or suffix):
                raise SentibenchError(f"row {start + offset} encodes to zero tokens")
            for first in window_starts(len(content), size, stride):
                ids.append([*prefix, *content[first:first + size], *suffix])
                owner.append(start + offset)
                window_labels.append(int(labels[start + offset]))
    split = EncodedSplit(ids, torch.as_tensor(window_labels, dtype=torch.long))
    return WindowedSplit(split, torch.as_tensor(owner, dtype=torch.long), len(texts))


def average_logits(logits: torch.Tensor, owner: torch.Tensor, rows: int) -> torch.Tensor:
    """Mean of the rows of ``logits`` that share an ``owner``, for owners 0..rows-1."""
    sums = torch.zeros((rows, logits.shape[1]), dtype=logits.dtype)
    sums.index_add_(0, owner, logits)
    counts = torch.bincount(owner, minlength=rows).clamp_min(1).to(logits.dtype)
    return sums / counts.unsqueeze(1)
