"""What a training run has done so far: loss curves, position, and what resuming needs."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch


@dataclass
class History:
    """Loss curves, in the reference's cadence; written to results.json."""

    steps: list[int] = field(default_factory=list)
    examples_seen: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    epoch_train_accuracy: list[float] = field(default_factory=list)
    epoch_val_accuracy: list[float] = field(default_factory=list)
    learning_rate: list[float] = field(default_factory=list)  # at each logged step
    eval_steps: list[int] = field(default_factory=list)  # --eval-every: whole validation
    eval_val_loss: list[float] = field(default_factory=list)
    eval_val_accuracy: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, list]:
        return asdict(self)


@dataclass
class TrainState:
    """Where training stands: enough to continue exactly after an interruption."""

    epoch: int = 0
    next_batch: int = 0
    global_step: int = -1
    seen: int = 0
    stopped: bool = False  # early stopping ended training
    best: dict | None = None  # --select-best: value, step and evaluations since


@dataclass
class Resume:
    """What a checkpoint restores besides the model weights."""

    state: TrainState
    history: History
    optimizer_state: dict
    rng_state: torch.Tensor
    best_params: dict[str, torch.Tensor] | None = None
