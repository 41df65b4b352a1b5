"""The training loss: (class-weighted) cross-entropy of a batch, computed so that the
micro-batches of one batch add up to the batch's own loss and gradient."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def loss_denominator(labels: Sequence[torch.Tensor | int],
                     class_weights: torch.Tensor | None) -> float:
    """What a batch's summed loss is divided by: its rows, or the sum of their class
    weights (a weighted mean, as ``cross_entropy(weight=...)`` takes it). Computed over the
    whole batch, so micro-batches add up to the batch's gradient. Under torchrun each rank
    divides by its own slice's weights (exact only when the slices' weights are equal)."""
    if class_weights is None:
        return float(len(labels))
    return float(class_weights[torch.as_tensor([int(y) for y in labels])].sum())


def batch_loss(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None,
               denominator: float) -> torch.Tensor:
    """Summed (class-weighted) cross-entropy of some rows over the batch's denominator."""
    return nn.functional.cross_entropy(logits, labels, weight=weights,
                                       reduction="sum") / denominator
