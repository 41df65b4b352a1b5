"""Scoring a saved model on new texts: length-sorted batches under ``inference_mode``.

This is what ``predict`` runs; it needs no training state (no optimizer, no checkpoint,
no training options), only the model, its tokenizer and the run's length limit.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from ..progress import progress as progress_bar
from .batching import EncodedSplit, TextEncoder, collate, encode_split, sorted_batches
from .plan import resolve_device
from .truncation import HEAD, Truncation

PREDICT_BATCH = 64


@torch.inference_mode()
def predict_logits(model: nn.Module, split: EncodedSplit, max_length: int,
                   device: str | torch.device = "cpu", batch_size: int = PREDICT_BATCH,
                   progress: str | None = None) -> torch.Tensor:
    """``[rows, C]`` float32 logits of every row of ``split``, in the split's order."""
    target = resolve_device(str(device))
    model = model.to(target)
    was_training = model.training
    model.eval()
    pad_id = int(getattr(model, "pad_id", 0))
    pad_to = max_length if getattr(model, "fixed_padding", False) else None
    out: torch.Tensor | None = None
    batches = list(sorted_batches(split, range(len(split)), batch_size))
    try:
        for batch in progress_bar(batches, desc=progress, disable=progress is None, leave=False):
            input_ids, mask, _ = collate(split, batch, pad_id, pad_to)
            logits = model(input_ids.to(target), mask.to(target)).float().cpu()
            if out is None:
                out = torch.empty((len(split), logits.shape[1]))
            out[batch] = logits
    finally:
        model.train(was_training)
    return out if out is not None else torch.empty((0, 0))


def class_probabilities(model: nn.Module, tokenizer: TextEncoder, texts: Sequence[str],
                        max_length: int, device: str = "cpu",
                        batch_size: int = PREDICT_BATCH,
                        truncation: Truncation = HEAD) -> np.ndarray:
    """``[n, C]`` softmax probabilities of ``texts``, cut to ``max_length`` tokens as the
    run was trained (``truncation``)."""
    split = encode_split(tokenizer, list(texts), [0] * len(texts), max_length, truncation)
    logits = predict_logits(model, split, max_length, device, batch_size)
    return torch.softmax(logits, dim=-1).numpy()
