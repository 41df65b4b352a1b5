"""Learning-rate schedules: a factor of the base rate for each optimizer step.

The conventions are those of Hugging Face's schedulers, so results compare: a linear
warm-up from 0 over ``ceil(total x warmup_ratio)`` steps (the first step runs at rate 0
when there is a warm-up), then constant, linear decay to 0, or half a cosine to 0 at the
last step. The factor depends on the step alone, so a resumed run continues it exactly.
"""

from __future__ import annotations

import math

SCHEDULES = ("constant", "linear", "cosine")


def warmup_steps(total: int, ratio: float) -> int:
    return math.ceil(total * ratio)


def lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """The factor for optimizer step ``step`` (0-based) of ``total``."""
    if step < warmup:
        return step / max(1, warmup)
    if schedule == "constant":
        return 1.0
    progress = (step - warmup) / max(1, total - warmup)
    if schedule == "linear":
        return max(0.0, 1.0 - progress)
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))
