"""The one training and evaluation loop every neural model uses.

A model only has to honour ``logits = model(input_ids, attention_mask)`` (``[B, T]`` long
tensors in, ``[B, C]`` out) and may set ``model.fixed_padding = True`` when its behaviour
depends on padding to ``max_length`` (the reference's GPT-2 ``last`` position, encoders
without attention mask). The loop reproduces the reference's schedule: AdamW with weight
decay 0.1, loss on ``eval_iter`` batches every ``eval_freq`` optimizer steps, accuracy on
``eval_iter`` batches after each epoch, then full-split accuracy, but it pads each batch
only to its own longest sequence and evaluates in large length-sorted batches.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from sentibench.core.errors import SentibenchError, first_line
from sentibench.core.progress import progress as progress_bar
from sentibench.engine import distributed, fast_dropout, feature_cache, graphs
from sentibench.engine.batching import (
    EncodedSplit,
    collate,
    epoch_order,
    iter_batches,
    length_groups,
    same_length_groups,
)
from sentibench.engine.config import TrainConfig, epoch_end_checked, epochs_for
from sentibench.engine.evaluation import Evaluator
from sentibench.engine.loss import batch_loss, loss_denominator
from sentibench.engine.monitoring import Monitor, monitor_indices
from sentibench.engine.plan import AMP_DTYPES, resolve_device, resolve_plan
from sentibench.engine.selection import Best
from sentibench.engine.state import History, Pace, Resume, TrainState

SPLIT_OVERHEAD_TOKENS = 64  # a micro-batch's fixed cost, in padded tokens (measured on CPU)

Checkpointer = Callable[..., None]  # (model, optimizer, state, history, best weights)


class Engine:
    """Trains and evaluates one classifier on encoded splits.

    Models that can be cut into a frozen part and a trainable rest expose ``features()``,
    ``classify()`` and ``cache_level()`` (see :mod:`sentibench.feature_cache`); the engine then
    runs the frozen part once per row and trains the rest on its cached output, which gives
    the same logits at a fraction of the cost. ``auto`` does this only where
    ``feature_cache_exact()`` holds (no active dropout in the frozen part).
    """

    def __init__(self, model: nn.Module, cfg: TrainConfig, max_length: int,
                 log: Callable[[str], None] = tqdm.write,
                 class_weights: Sequence[float] | None = None) -> None:
        self.cfg = cfg
        device = resolve_device(cfg.device)
        self.dist = distributed.init_from_env(device.type)
        if self.dist.enabled and device.type == "cuda":
            device = torch.device("cuda", self.dist.local_rank)
        self.log = log if self.dist.is_main else (lambda line: None)
        self.plan = resolve_plan(cfg, model, device, self.dist.world_size, self.log)
        self.device = device
        self.model = model.to(device)
        self.eval_forward: nn.Module = torch.compile(model) if cfg.compile else model
        self.forward = self.eval_forward
        if self.dist.enabled and any(p.requires_grad for p in model.parameters()):
            ids = [device.index] if device.type == "cuda" else None
            self.forward = nn.parallel.DistributedDataParallel(self.eval_forward, device_ids=ids)
        self.max_length = max_length
        self.pad_id = int(getattr(model, "pad_id", 0))
        fixed = getattr(model, "fixed_padding", False) and not cfg.no_padding
        self.pad_to = max_length if fixed else None
        widths = graphs.WIDTH_MULTIPLE if self.plan.cuda_graphs else 8  # fewer shapes to record
        self.multiple_of = widths if device.type == "cuda" and not cfg.no_padding else 1
        self.step_rows = cfg.batch_size * cfg.accumulation_steps  # rows per optimizer step
        self.amp_dtype = AMP_DTYPES[self.plan.precision]
        self.class_weights = None if class_weights is None else \
            torch.tensor(list(class_weights), dtype=torch.float32)
        self.history = History()
        self.pace = Pace()  # tokens/s at each logged step (not part of the history)
        self.checkpointer: Checkpointer | None = None
        self.stop_requested = False  # set by a signal handler: stop cleanly after this step
        self.cache: feature_cache.FeatureCache | None = None
        if self.cache_level is not None:
            budget = int(cfg.feature_cache_gb * 1024**3) if cfg.feature_cache_gb is not None \
                else feature_cache.default_budget_bytes()
            self.cache = feature_cache.FeatureCache(self.cache_level, budget, self.log)
        self.evaluator = Evaluator(cfg, self.plan, self.model, self.dist, self.class_weights,
                                   self._split_logits, self._collated)
        self.monitor: Monitor | None = None  # made by each fit
        self.on_evaluation: Callable[[int, float, float], None] | None = None  # --eval-every
        self.on_record: Callable[[History], None] | None = None  # each time the history grows
        self.on_step: Callable[[], None] | None = None  # after every optimizer step
        self.graphed: graphs.GraphedSteps | None = None  # made by each fit (--cuda-graphs)
        self.graph_error: str | None = None  # why a fit's steps could not be recorded
        self.best = Best(cfg.select_best, cfg.early_stopping_patience) \
            if cfg.select_best != "none" else None

    @property
    def cache_level(self) -> str | None:
        return None if self.plan.feature_cache == "off" else self.plan.feature_cache

    @property
    def use_feature_cache(self) -> bool:
        return self.cache is not None

    @torch.no_grad()
    def _frozen_outputs(self, split: EncodedSplit) -> Iterator[tuple[list[int], torch.Tensor]]:
        """(rows, the frozen part's output) over a split, in eval mode and length order."""
        was_training = self.model.training
        self.model.eval()
        try:
            batches = list(self.evaluator.eval_batches(split, range(len(split))))
            for batch in progress_bar(batches, desc="caching features", leave=False,
                              disable=not self.dist.is_main):
                input_ids, mask, _ = self._batch(split, batch)
                with self._autocast():
                    out = self.model.features(input_ids, mask).float()
                yield batch, out
        finally:
            self.model.train(was_training)

    def _cached_rows(self, split: EncodedSplit) -> feature_cache.CachedRows | None:
        if self.cache is None:
            return None
        return self.cache.rows(split, lambda: [self.pad_to or len(ids) for ids in split.ids],
                               lambda: self._frozen_outputs(split))

    def _split_logits(self, split: EncodedSplit, indices: Sequence[int],
                      tensors: tuple[torch.Tensor, ...] | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and labels of some rows (collated ``tensors`` of them, if already made),
        through the feature cache when it holds the split."""
        rows = self._cached_rows(split)
        if rows is not None:
            feats, mask = rows.gather(indices, self.device)
            with self._autocast():
                logits = self.model.classify(feats, mask).float()
            return logits, split.labels[list(indices)].to(self.device)
        input_ids, mask, labels = self._to_device(tensors) if tensors is not None \
            else self._batch(split, indices)
        return self._logits(input_ids, mask), labels

    # -- evaluation (the evaluator's, with this engine's weights) ---------------------
    def predict_logits(self, split: EncodedSplit, indices: Sequence[int] | None = None,
                       progress: str | None = None) -> torch.Tensor:
        """Logits for ``indices`` (default: all rows), in the order given."""
        return self.evaluator.predict_logits(split, indices, progress)

    def loss_and_accuracy(self, split: EncodedSplit, indices: Sequence[int]
                          ) -> tuple[float, float]:
        return self.evaluator.loss_and_accuracy(split, indices)

    def evaluate(self, splits: dict[str, EncodedSplit]) -> dict[str, float]:
        """Full-split accuracy, as the reference prints after training."""
        return self.evaluator.evaluate(splits)

    # -- batches ---------------------------------------------------------------------
    def _batch(self, split: EncodedSplit, indices: Sequence[int]) -> tuple[torch.Tensor, ...]:
        return self._to_device(collate(split, indices, self.pad_id, self.pad_to,
                                       self.multiple_of))

    def _to_device(self, tensors: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        return tuple(t.to(self.device, non_blocking=True) for t in tensors)

    def _collated(self, split: EncodedSplit, batches: Sequence[Sequence[int]]
                  ) -> Iterator[tuple[torch.Tensor, ...] | None]:
        """Collated batches for the normal path; None for each when the cache serves them."""
        if self._cached_rows(split) is not None:
            return itertools.repeat(None, len(batches))
        return iter_batches(split, batches, self.pad_id, self.pad_to, self.multiple_of,
                            self.plan.num_workers, pin_memory=self.plan.pin_memory)

    def _autocast(self, cache: bool = True) -> contextlib.AbstractContextManager:
        """bf16/fp16 autocast, or nothing; a recorded graph casts the weights itself each
        replay (``cache=False``), as autocast's cache would outlive the recording."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype, cache_enabled=cache)

    def _logits(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        forward = self.forward if torch.is_grad_enabled() else self.eval_forward
        with self._autocast():
            return forward(input_ids, mask).float()

    # -- training --------------------------------------------------------------------
    def _optimizer(self) -> torch.optim.Optimizer:
        params = [p for p in self.model.parameters() if p.requires_grad]
        if not params:
            raise SentibenchError("the model has no trainable parameters")
        fused = self.device.type in ("cuda", "cpu")  # one kernel: ~6x faster than the loop
        return torch.optim.AdamW(params, lr=self.cfg.learning_rate,
                                 weight_decay=self.cfg.weight_decay, fused=fused)

    def fit(self, train: EncodedSplit, val: EncodedSplit, resume: Resume | None = None) -> History:
        """Train for ``num_epochs`` (continuing ``resume``); print the reference's lines.

        With a checkpointer set, the end of training is saved (so an interrupted evaluation
        loses nothing), and Ctrl-C / SIGTERM save one before re-raising; a non-finite loss
        does not, so the last good checkpoint is kept.
        """
        cfg = self.cfg
        if len(train) < self.step_rows:
            raise SentibenchError(f"{len(train)} training rows is fewer than one batch of "
                                  f"{self.step_rows} (--batch-size x --accumulation_steps)")
        torch.manual_seed(cfg.seed)
        optimizer = self._optimizer()
        state = TrainState()
        if resume is not None:
            optimizer.load_state_dict(resume.optimizer_state)
            torch.set_rng_state(resume.rng_state)
            state, self.history = resume.state, resume.history
            if self.best is not None:
                self.best.load_state(state.best, resume.best_params)
        self.graph_error = None
        self.graphed = graphs.GraphedSteps(
            self.model, optimizer, self.device, lambda: self._autocast(cache=False),
            self.class_weights, cfg.max_grad_norm, cfg.ignore_index) \
            if self.plan.cuda_graphs else None
        monitor = monitor_indices(cfg, len(train), len(val))
        epochs = self.passes = epochs_for(cfg, len(train) // self.step_rows)
        total = (len(train) // self.step_rows) * epochs
        total = min(total, cfg.max_steps) if cfg.max_steps is not None else total
        self.monitor = Monitor(cfg, self.model, self.history, self.best, self.log,
                               self.loss_and_accuracy, total, self.on_evaluation,
                               self.on_record)
        first_step = state.global_step
        self.model.train()
        try:
            with self._fast_dropout(), progress_bar(
                    total=total, initial=state.global_step + 1, desc="training", unit="step",
                    disable=not self.dist.is_main) as bar:
                while state.epoch < epochs and state.global_step + 1 < total \
                        and not state.stopped:
                    self._run_epoch(optimizer, state, train, val, monitor, total, bar)
            self._flush_graphed()
        except KeyboardInterrupt:
            self._checkpoint(optimizer, state)
            self.log(f"Interrupted at step {state.global_step}; checkpoint saved.")
            raise
        if state.global_step != first_step:  # training's end is a checkpoint too
            self.monitor.restore_best()
            self._checkpoint(optimizer, state)
        return self.history

    def _checkpoint(self, optimizer: torch.optim.Optimizer, state: TrainState) -> None:
        if self.checkpointer is not None and self.dist.is_main:
            if self.best is not None:
                state.best = self.best.to_state()
            best = self.best.params if self.best is not None else None
            self.checkpointer(self.model, optimizer, state, self.history, best)

    def _fast_dropout(self) -> contextlib.AbstractContextManager:
        """CPU dropout masks from a faster sampler while training (not under torch.compile,
        which draws its own)."""
        if not self.plan.fast_dropout:
            return contextlib.nullcontext()
        return fast_dropout.installed(self.model)

    def _run_epoch(self, optimizer: torch.optim.Optimizer, state: TrainState,
                   train: EncodedSplit, val: EncodedSplit,
                   monitor: tuple[list[int], list[int]], total: int, bar: Any) -> None:
        cfg = self.cfg
        lengths = train.lengths() if cfg.group_by_length else None  # O(rows): only if used
        size = self.step_rows
        order = epoch_order(len(train), size, cfg.seed + state.epoch, lengths)
        todo = range(state.next_batch, len(order) // size)
        local = [distributed.local_slice(order[b * size:(b + 1) * size], self.dist, size)
                 for b in todo]
        for batch, micro in zip(todo, self._train_batches(train, local), strict=True):
            if state.global_step + 1 >= total:
                return
            self.monitor.set_learning_rate(optimizer, state.global_step + 1)
            began = time.perf_counter()
            loss = self._step(optimizer, train, micro)
            self.pace.add(sum(len(train.ids[i]) for rows, _ in micro for i in rows),
                          time.perf_counter() - began)
            state.next_batch, state.global_step = batch + 1, state.global_step + 1
            state.seen += size
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}")
            if self.on_step is not None:
                self.on_step()
            if state.global_step % cfg.eval_freq == 0:
                self.pace.mark(state.global_step)
                self.monitor.log_losses(state, train, val, *monitor)
            if cfg.eval_every and (state.global_step + 1) % cfg.eval_every == 0:
                self.monitor.evaluate_and_select(state, val)
            if cfg.save_every and (state.global_step + 1) % cfg.save_every == 0:
                self._checkpoint(optimizer, state)
            if self.stop_requested:
                raise KeyboardInterrupt  # between steps: the checkpoint is consistent
            if state.stopped:
                return
        if epoch_end_checked(state.epoch, self.passes, cfg.num_epochs):
            self.monitor.log_epoch_accuracy(train, val, *monitor)
        state.epoch, state.next_batch = state.epoch + 1, 0

    def _train_batches(self, split: EncodedSplit, local: Sequence[Sequence[int]]
                       ) -> Iterator[list[tuple[list[int], tuple[torch.Tensor, ...] | None]]]:
        """Per training batch, its micro-batches: (rows, collated tensors or None)."""
        plans = [self._micro_batches(split, rows) for rows in local]
        collated = self._collated(split, [group for plan in plans for group in plan])
        for plan in plans:
            yield [(group, next(collated)) for group in plan]

    def _micro_batches(self, split: EncodedSplit, rows: Sequence[int]) -> list[list[int]]:
        """One step's rows in the pieces that run through the model: batches of
        --batch-size (--accumulation_steps of them), each cut further into rows of one
        length (--no_padding) or into length-sorted micro-batches (--split-batches)."""
        size = self.cfg.batch_size
        chunks = [list(rows[i:i + size]) for i in range(0, len(rows), size)]
        if self.cfg.no_padding:
            return [group for chunk in chunks for group in same_length_groups(split, chunk)]
        if not self.plan.split_batches:
            return chunks
        return [[chunk[p] for p in group] for chunk in chunks
                for group in length_groups([len(split.ids[i]) for i in chunk],
                                           SPLIT_OVERHEAD_TOKENS)]

    def _step(self, optimizer: torch.optim.Optimizer, split: EncodedSplit,
              micro: list[tuple[list[int], tuple[torch.Tensor, ...] | None]]) -> float:
        """One optimizer step on one batch; its micro-batches add up the batch-mean loss's
        gradient (no model here couples the rows of a batch), DDP syncing on the last."""
        if self.graphed is not None and len(micro) == 1 and micro[0][1] is not None:
            value = self._graphed_step(split, micro[0])
            if value is not None:
                return value
        optimizer.zero_grad(set_to_none=True)
        weights = None if self.class_weights is None else self.class_weights.to(self.device)
        denominator = loss_denominator([split.labels[i] for rows, _ in micro for i in rows],
                                       self.class_weights, self.cfg.ignore_index)
        total = torch.zeros((), device=self.device)
        ddp = isinstance(self.forward, nn.parallel.DistributedDataParallel)
        for i, (indices, tensors) in enumerate(micro):
            defer = ddp and i < len(micro) - 1
            with self.forward.no_sync() if defer else contextlib.nullcontext():  # type: ignore[operator]
                logits, labels = self._split_logits(split, indices, tensors)
                loss = batch_loss(logits, labels, weights, denominator, self.cfg.ignore_index)
                loss.backward()
            total += loss.detach()
        value = total.item()
        if not math.isfinite(value):  # before the step: the weights stay as they were
            raise _non_finite(value)
        if self.use_feature_cache:
            distributed.average_gradients(optimizer.param_groups[0]["params"], self.dist)
        if self.cfg.max_grad_norm is not None:
            nn.utils.clip_grad_norm_(optimizer.param_groups[0]["params"], self.cfg.max_grad_norm)
        optimizer.step()
        self.evaluator.weights_updated()
        return value

    def _graphed_step(self, split: EncodedSplit,
                      micro: tuple[list[int], tuple[torch.Tensor, ...] | None]) -> float | None:
        """The step as a replayed CUDA graph; None (and eager steps from here on) when this
        model cannot be recorded."""
        assert self.graphed is not None and micro[1] is not None
        indices, (input_ids, mask, labels) = micro
        denominator = loss_denominator([split.labels[i] for i in indices],
                                       self.class_weights, self.cfg.ignore_index)
        try:
            value = self.graphed.step(input_ids, mask, labels, denominator)
        except RuntimeError as error:
            reason = first_line(error)
            self.log(f"CUDA graphs off for the rest of this run (the step could not be "
                     f"recorded: {reason})")
            self.graph_error = reason
            self.graphed = None
            return None
        self.evaluator.weights_updated()
        return _finite(value)  # the step before (found_inf skipped a non-finite one)

    def _flush_graphed(self) -> None:
        """The last replayed step's loss, checked (steps return the one before theirs)."""
        if self.graphed is not None:
            value = self.graphed.flush()
            if value is not None:
                _finite(value)


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise _non_finite(value)
    return value


def _non_finite(value: float) -> SentibenchError:
    return SentibenchError(f"training loss became {value} (non-finite); "
                           "lower --learning-rate or use --precision fp32")
