"""Every model the comparison runs: our own GPT-2 (``gpt2``, ``gpt2_tokenizer``,
``gpt2_classifier``), Hugging Face encoders (``encoders``), scikit-learn baselines
(``baselines``), and the one ``registry`` that names them all.

The constants below are shared by every family, defined once. This module stays light
(no torch), so the command line can read them for ``--help``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

TRAINABLE_LAYERS = ("all", "last_block", "last_two_blocks", "last_layer",
                    "lora")  # lora: see models/lora.py
# How many of the last transformer blocks a --trainable_layers choice trains (with what
# runs after them: final norm / pooler, and the head); the other choices train none or all.
LAST_BLOCKS = {"last_block": 1, "last_two_blocks": 2}
TOKEN_POSITIONS = ("first", "last", "last_padded")


def count_parameters(module: nn.Module) -> tuple[int, int]:
    """(total, trainable) parameter counts; a tied Parameter counts once."""
    params = list(module.parameters())  # parameters() yields a shared tensor once
    return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)
