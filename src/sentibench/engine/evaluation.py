"""Scoring splits with the weights in training: length-sorted batches under
``inference_mode``, and rows already scored with the current weights taken from a memo.
The :class:`~sentibench.engine.training.Engine` owns one :class:`Evaluator`.

Unlike ``predict``, evaluation keeps torch's own threads on each batch: scoring batches on
one-thread worker threads (``inference.scored_ahead``) was measured here and gained nothing
(MiniLM, 256 tokens, 800 reviews in batches of 8: 19.2 / 19.9 s against 19.5 / 20.0 s)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from sentibench.core.progress import progress as progress_bar
from sentibench.engine import distributed
from sentibench.engine.batching import EncodedSplit, same_length_groups, sorted_batches

if TYPE_CHECKING:
    from sentibench.engine.config import TrainConfig
    from sentibench.engine.plan import Plan


@dataclass
class LogitsMemo:
    """Evaluation logits of a split's rows under one set of weights (eval mode is
    deterministic, so scoring a row twice would give the same numbers)."""

    split: EncodedSplit  # held, so that its id() is not reused while the memo lives
    table: torch.Tensor  # [rows, C]
    have: torch.Tensor  # [rows] bool


class Evaluator:
    """Logits, loss and accuracy of rows of a split, with the engine's current weights.

    ``logits_of(split, rows, tensors)`` gives (logits, labels) of some rows, through the
    feature cache where it holds them; ``collated(split, batches)`` the collated tensors
    of batches (or None each when the cache serves them). The engine calls
    :meth:`weights_updated` after each optimizer step, which empties the memo.
    """

    def __init__(self, cfg: TrainConfig, plan: Plan, model: nn.Module,
                 dist: distributed.DistInfo, class_weights: torch.Tensor | None,
                 logits_of: Callable[..., tuple[torch.Tensor, torch.Tensor]],
                 collated: Callable[..., Iterator[tuple[torch.Tensor, ...] | None]]) -> None:
        self.cfg, self.plan, self.model, self.dist = cfg, plan, model, dist
        self.class_weights = class_weights
        self._logits_of, self._collated = logits_of, collated
        self._memo: tuple[tuple, dict[int, LogitsMemo]] = ((), {})
        self._updates = 0

    def weights_updated(self) -> None:
        """Our optimizer stepped (fused AdamW leaves the version counters alone)."""
        self._updates += 1

    def eval_batches(self, split: EncodedSplit, indices: Sequence[int]) -> Iterator[list[int]]:
        batches = sorted_batches(split, indices, self.plan.eval_batch_size)
        if not self.cfg.no_padding:
            return batches
        return (group for batch in batches for group in same_length_groups(split, batch))

    def _memo_for(self, split: EncodedSplit) -> LogitsMemo | None:
        """The split's memo, emptied whenever any weight changed: by our optimizer steps
        (fused AdamW leaves version counters alone) or in place elsewhere (the counters)."""
        version = (self._updates, *((id(p), p._version) for p in self.model.parameters()))
        if version != self._memo[0]:
            self._memo = (version, {})
        return self._memo[1].get(id(split))

    @torch.inference_mode()
    def predict_logits(self, split: EncodedSplit, indices: Sequence[int] | None = None,
                       progress: str | None = None) -> torch.Tensor:
        """Logits for ``indices`` (default: all rows), returned in the order given.

        Rows already scored with the current weights are not run again (the full evaluation
        after the last epoch re-reads the rows its epoch-end accuracy has just scored).
        Under torchrun each rank computes a shard of the rest; every rank gets all rows.
        """
        rows = torch.arange(len(split)) if indices is None \
            else torch.as_tensor(list(indices), dtype=torch.long)
        memo = self._memo_for(split)
        todo = rows.unique() if memo is None else rows[~memo.have[rows]].unique()
        if len(todo):
            fresh = self._compute_logits(split, todo.tolist(), progress)
            if memo is None:
                memo = LogitsMemo(split, torch.empty((len(split), fresh.shape[1])),
                                  torch.zeros(len(split), dtype=torch.bool))
                self._memo[1][id(split)] = memo
            memo.table[todo], memo.have[todo] = fresh, True
        return memo.table[rows] if memo is not None else torch.empty((0, 0))

    def _compute_logits(self, split: EncodedSplit, indices: list[int],
                        progress: str | None) -> torch.Tensor:
        positions = distributed.shard(range(len(indices)), self.dist)
        local = [indices[i] for i in positions]
        was_training = self.model.training
        self.model.eval()
        out = torch.empty((len(local), 0))
        where = {idx: pos for pos, idx in enumerate(local)}
        batches = list(self.eval_batches(split, local))
        hide = progress is None or not self.dist.is_main
        stream = zip(batches, self._collated(split, batches), strict=True)
        try:
            for batch, tensors in progress_bar(stream, total=len(batches), desc=progress,
                                               disable=hide, leave=False):
                logits = self._logits_of(split, batch, tensors)[0].cpu()
                if out.shape[1] == 0:
                    out = torch.empty((len(local), logits.shape[1]))
                out[[where[i] for i in batch]] = logits
        finally:
            self.model.train(was_training)
        return distributed.gather_rows(out, positions, len(indices), self.dist)

    def loss_and_accuracy(self, split: EncodedSplit, indices: Sequence[int]) -> tuple[float, float]:
        logits = self.predict_logits(split, indices)
        labels = split.labels[list(indices)]
        loss = nn.functional.cross_entropy(logits, labels, weight=self.class_weights,
                                           ignore_index=self.cfg.ignore_index).item()
        return loss, (logits.argmax(-1) == labels).float().mean().item()

    def evaluate(self, splits: dict[str, EncodedSplit]) -> dict[str, float]:
        """Full-split accuracy, as the reference prints after training."""
        out = {}
        for name, split in splits.items():
            logits = self.predict_logits(split, progress=f"eval {name}")
            out[name] = (logits.argmax(-1) == split.labels).float().mean().item()
        return out
