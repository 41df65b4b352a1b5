"""``--select-best``: keep the weights of the best full-validation evaluation, restore them
at the end, and stop early after ``--early-stopping-patience`` evaluations without
improvement. Only trainable parameters are kept (frozen ones never change)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class Best:
    """The best evaluation so far; ``params`` is a CPU copy of its trainable weights."""

    metric: str
    patience: int | None = None
    value: float | None = None
    step: int | None = None
    bad: int = 0  # evaluations since the last improvement
    params: dict[str, torch.Tensor] | None = None

    def improves(self, value: float) -> bool:
        if self.value is None:
            return True
        return value > self.value if self.metric == "val_accuracy" else value < self.value

    def update(self, model: nn.Module, accuracy: float, loss: float, step: int) -> bool:
        """Record an evaluation; True when it is the new best (its weights are kept)."""
        value = accuracy if self.metric == "val_accuracy" else loss
        if not self.improves(value):
            self.bad += 1
            return False
        self.value, self.step, self.bad = value, step, 0
        self.params = {name: p.detach().to("cpu", copy=True)
                       for name, p in model.named_parameters() if p.requires_grad}
        return True

    @property
    def should_stop(self) -> bool:
        return self.patience is not None and self.bad >= self.patience

    def restore(self, model: nn.Module) -> None:
        """Put the best weights back (in place: evaluation memos see the change)."""
        if self.params is None:
            return
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name in self.params:
                    p.copy_(self.params[name].to(p.device))

    def to_state(self) -> dict:
        return {"value": self.value, "step": self.step, "bad": self.bad}

    def load_state(self, state: dict | None, params: dict[str, torch.Tensor] | None) -> None:
        if state:
            self.value, self.step, self.bad = state["value"], state["step"], state["bad"]
        self.params = params
