"""What the engine reports while it trains: the reference's loss and accuracy lines on a
fixed set of rows, the learning-rate schedule, and ``--eval-every`` / ``--select-best`` on
the whole validation split. The :class:`~sentibench.engine.training.Engine` owns one
:class:`Monitor` per fit."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from sentibench.engine.batching import EncodedSplit
from sentibench.engine.schedule import lr_factor, warmup_steps
from sentibench.engine.state import TrainState

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from torch import nn

    from sentibench.engine.config import TrainConfig
    from sentibench.engine.selection import Best
    from sentibench.engine.state import History


def monitor_indices(cfg: TrainConfig, train_rows: int, val_rows: int
                    ) -> tuple[list[int], list[int]]:
    """The reference evaluates on the first ``eval_iter`` batches of each loader: the
    rows the loss lines are computed on (train rows drawn once by the seed)."""
    count = cfg.eval_iter * cfg.batch_size
    generator = torch.Generator().manual_seed(cfg.seed)
    train_idx = torch.randperm(train_rows, generator=generator)[:count].tolist()
    return train_idx, list(range(min(count, val_rows)))


class Monitor:
    """Reporting and best-weight selection during one fit of ``total`` optimizer steps.

    ``loss_and_accuracy(split, rows)`` scores rows with the current weights (the engine's
    :class:`~sentibench.engine.evaluation.Evaluator`); lines go to ``log``; what is
    measured is appended to ``history``.
    """

    def __init__(self, cfg: TrainConfig, model: nn.Module, history: History,
                 best: Best | None, log: Callable[[str], None],
                 loss_and_accuracy: Callable[[EncodedSplit, Sequence[int]],
                                             tuple[float, float]],
                 total: int,
                 on_evaluation: Callable[[int, float, float], None] | None = None,
                 on_record: Callable[[History], None] | None = None) -> None:
        self.cfg, self.model, self.history, self.best = cfg, model, history, best
        self.log, self.loss_and_accuracy, self.total = log, loss_and_accuracy, total
        self.on_evaluation = on_evaluation  # (step, loss, accuracy): e.g. a tuner's pruner
        self.on_record = on_record  # the history, each time it grows: live trackers

    def _recorded(self) -> None:
        if self.on_record is not None:
            self.on_record(self.history)

    def restore_best(self) -> None:
        if self.best is not None and self.best.params is not None:
            self.best.restore(self.model)
            self.log(f"Restored the weights of step {self.best.step} "
                     f"({self.best.metric} {self.best.value:.4f})")

    def set_learning_rate(self, optimizer: torch.optim.Optimizer, step: int) -> None:
        warmup = warmup_steps(self.total, self.cfg.warmup_ratio)
        factor = lr_factor(step, self.total, warmup, self.cfg.lr_schedule)
        for group in optimizer.param_groups:
            if isinstance(group["lr"], torch.Tensor):  # read by a recorded CUDA graph
                group["lr"].fill_(self.cfg.learning_rate * factor)
            else:
                group["lr"] = self.cfg.learning_rate * factor

    def evaluate_and_select(self, state: TrainState, val: EncodedSplit) -> None:
        """--eval-every: the whole validation split; the best weights are kept."""
        loss, accuracy = self.loss_and_accuracy(val, range(len(val)))
        step = state.global_step
        self.history.eval_steps.append(step)
        self.history.eval_val_loss.append(loss)
        self.history.eval_val_accuracy.append(accuracy)
        mark = ""
        if self.best is not None:
            mark = " (best so far)" if self.best.update(self.model, accuracy, loss, step) else ""
            state.stopped = self.best.should_stop
        self.log(f"Step {step:06d}: whole validation split: loss {loss:.3f}, accuracy "
                 f"{accuracy * 100:.2f}%{mark}")
        if state.stopped:
            self.log(f"Early stopping: {self.best.bad} evaluations without improvement")
        self._recorded()
        if self.on_evaluation is not None:
            self.on_evaluation(step, loss, accuracy)

    def log_losses(self, state: TrainState, train: EncodedSplit, val: EncodedSplit,
                    train_mon: list[int], val_mon: list[int]) -> None:
        train_loss, _ = self.loss_and_accuracy(train, train_mon)
        val_loss, _ = self.loss_and_accuracy(val, val_mon)
        epoch, step = state.epoch, state.global_step
        self.history.steps.append(step)
        self.history.examples_seen.append(state.seen)
        self.history.train_loss.append(train_loss)
        self.history.val_loss.append(val_loss)
        self.history.learning_rate.append(self.cfg.learning_rate * lr_factor(
            step, self.total, warmup_steps(self.total, self.cfg.warmup_ratio),
            self.cfg.lr_schedule))
        self.log(f"Ep {epoch + 1} (Step {step:06d}): "
                 f"Train loss {train_loss:.3f}, Val loss {val_loss:.3f}")
        self._recorded()

    def log_epoch_accuracy(self, train: EncodedSplit, val: EncodedSplit,
                            train_mon: list[int], val_mon: list[int]) -> None:
        _, train_acc = self.loss_and_accuracy(train, train_mon)
        _, val_acc = self.loss_and_accuracy(val, val_mon)
        self.history.epoch_train_accuracy.append(train_acc)
        self.history.epoch_val_accuracy.append(val_acc)
        self.log(f"Training accuracy: {train_acc * 100:.2f}% | "
                 f"Validation accuracy: {val_acc * 100:.2f}%")
        self._recorded()
