"""Model code: our own GPT-2 (weights, tokenizer, classifier) in :mod:`sentibench.models.gpt2`."""

from __future__ import annotations

from torch import nn


def count_parameters(module: nn.Module) -> tuple[int, int]:
    """(total, trainable) parameter counts; a tied Parameter counts once."""
    params = list(module.parameters())  # parameters() yields a shared tensor once
    return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)
