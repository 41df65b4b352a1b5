"""The training loss: (class-weighted) cross-entropy of a batch, computed so that the
micro-batches of one batch add up to the batch's own loss and gradient."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from sentibench.engine.config import IGNORE_INDEX


def loss_denominator(labels: Sequence[torch.Tensor | int],
                     class_weights: torch.Tensor | None,
                     ignore_index: int = IGNORE_INDEX) -> float:
    """What a batch's summed loss is divided by: its rows, or the sum of their class
    weights (a weighted mean, as ``cross_entropy(weight=...)`` takes it), leaving out rows
    labelled ``ignore_index``. Computed over the whole batch, so micro-batches (and
    accumulated batches) add up to the batch's gradient. Under torchrun each rank divides
    by its own slice's weights (exact only when the slices' weights are equal). At least 1,
    so a batch whose rows are all ignored has loss 0, not 0/0."""
    kept = [int(y) for y in labels if int(y) != ignore_index]
    if class_weights is None:
        return float(max(len(kept), 1))
    total = float(class_weights[torch.as_tensor(kept, dtype=torch.long)].sum()) if kept else 0.0
    return total if total > 0 else 1.0


def batch_loss(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None,
               denominator: float, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Summed (class-weighted) cross-entropy of some rows over the batch's denominator."""
    return nn.functional.cross_entropy(logits, labels, weight=weights, reduction="sum",
                                       ignore_index=ignore_index) / denominator
