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
class Pace:
    """Training speed at each logged step: real (unpadded) training tokens per second of
    the optimizer steps since the previous logged step (this process's share; the time
    spent logging and evaluating is not counted). Kept apart from :class:`History`, which
    must come out the same whenever a run is repeated or resumed, as timings never do;
    a resumed run's pace starts where it resumed. Written to results.json as ``pace``."""

    steps: list[int] = field(default_factory=list)
    tokens_per_second: list[float] = field(default_factory=list)
    tokens: int = field(default=0, repr=False)  # since the last logged step
    seconds: float = field(default=0.0, repr=False)

    def add(self, tokens: int, seconds: float) -> None:
        self.tokens += tokens
        self.seconds += seconds

    def mark(self, step: int) -> None:
        """Record the speed since the last mark at ``step``, then start over."""
        self.steps.append(step)
        self.tokens_per_second.append(self.tokens / self.seconds if self.seconds > 0 else 0.0)
        self.tokens, self.seconds = 0, 0.0

    def to_dict(self) -> dict[str, list]:
        return {"steps": list(self.steps), "tokens_per_second": list(self.tokens_per_second)}


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
