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
    # real (unpadded) training tokens per second of optimizer steps since the previous
    # logged step, this process's share; trackers plot it (checkpoints before it: empty)
    tokens_per_second: list[float] = field(default_factory=list)
    eval_steps: list[int] = field(default_factory=list)  # --eval-every: whole validation
    eval_val_loss: list[float] = field(default_factory=list)
    eval_val_accuracy: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, list]:
        return asdict(self)


@dataclass
class Pace:
    """Training tokens and the seconds their optimizer steps took, since last taken: the
    speed a logged step reports (time spent logging and evaluating is not counted)."""

    tokens: int = 0
    seconds: float = 0.0

    def add(self, tokens: int, seconds: float) -> None:
        self.tokens += tokens
        self.seconds += seconds

    def take(self) -> float:
        """Tokens per second since the last call (0.0 before any step), then start over."""
        rate = self.tokens / self.seconds if self.seconds > 0 else 0.0
        self.tokens, self.seconds = 0, 0.0
        return rate


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
