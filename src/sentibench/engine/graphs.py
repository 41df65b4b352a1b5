"""Training steps recorded once as CUDA graphs and replayed: one launch per step.

At the reference's batch of 8 a GPU finishes a step's kernels faster than Python issues
them (GPT-2 124M on an H100: 25 ms per step, about 7 ms of it the GPU's own work). A CUDA
graph records every kernel of one whole step (zeroing the gradients, the forward pass
under autocast, the loss, the backward pass, clipping, AdamW) once per batch shape and
replays it with one launch. A replay runs the recorded kernels on the recorded addresses,
so everything that changes from step to step lives in tensors the graph reads:

- the batch, copied into static input tensors of its shape (widths are padded to a
  multiple of :data:`WIDTH_MULTIPLE`, so a run records a handful of shapes);
- the loss's denominator (rows, or the sum of their class weights);
- the learning rate, a one-element tensor in the optimizer's parameter group that the
  schedule fills (AdamW then runs with ``capturable=True``);
- ``found_inf``, which fused AdamW reads: a non-finite loss sets it, and the update is
  skipped, weights and moments untouched, as the eager loop leaves them by not stepping.

Nothing that must outlive a replay is allocated while recording (inputs, loss, rate,
optimizer state and weights all exist before), so every shape's graph shares one memory
pool. The loss is copied to the host without waiting and read one step later, so the CPU
queues step k+1 while the GPU runs step k.

Recording needs the optimizer's state (AdamW creates it at its first step) and cuBLAS's
workspaces, so each new shape's first batch runs eagerly twice on a side stream first;
weights, moments, gradients and the random generators are then put back exactly as they
were, so the run is the same run whatever shapes it records. A model that cannot be
recorded (a kernel that synchronises with the host, say) is reported and trained eagerly.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from sentibench.engine.loss import batch_loss

WIDTH_MULTIPLE = 32  # padded widths 32, 64, ... : at most max_length / 32 recorded shapes
WARMUP_STEPS = 2  # eager runs of a new shape's first batch before it is recorded


@dataclass
class _Inputs:
    """The tensors one recorded shape reads its batch from."""

    input_ids: torch.Tensor
    mask: torch.Tensor
    labels: torch.Tensor


def prepare_optimizer(optimizer: torch.optim.Optimizer, found_inf: torch.Tensor) -> None:
    """Make a fused AdamW recordable: a tensor learning rate (the schedule fills it),
    capturable steps, and ``found_inf`` read by every step."""
    # CUDA's fused kernel reads a float32 rate; the CPU's (tests) reads any, and a double
    # there gives exactly the eager step's update
    dtype = torch.float32 if found_inf.device.type == "cuda" else torch.float64
    for group in optimizer.param_groups:
        group["capturable"] = True
        if not isinstance(group["lr"], torch.Tensor):
            group["lr"] = torch.tensor(float(group["lr"]), dtype=dtype, device=found_inf.device)
    optimizer.found_inf = found_inf  # type: ignore[attr-defined]  # what GradScaler sets


class GraphedSteps:
    """Optimizer steps of one model as replayed CUDA graphs, one per batch shape.

    ``record=False`` runs the same step body eagerly on the same static tensors instead
    of recording it (CPU tests of everything around the graphs: static inputs, the
    learning-rate and denominator tensors, ``found_inf``, the warm-up's restore).
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer,
                 device: torch.device, autocast: Callable[[], contextlib.AbstractContextManager],
                 class_weights: torch.Tensor | None, max_grad_norm: float | None,
                 ignore_index: int, record: bool = True) -> None:
        self.model, self.optimizer, self.device = model, optimizer, device
        self.autocast = autocast
        self.weights = None if class_weights is None else class_weights.to(device)
        self.max_grad_norm, self.ignore_index = max_grad_norm, ignore_index
        self.record = record
        self.params = [p for group in optimizer.param_groups for p in group["params"]]
        self.denominator = torch.ones((), device=device)
        self.loss = torch.zeros((), device=device)  # the last step's loss
        self.found_inf = torch.zeros((), device=device)
        self.inputs: dict[tuple[int, ...], _Inputs] = {}
        self.graphs: dict[tuple[int, ...], torch.cuda.CUDAGraph | None] = {}
        self.pool: tuple[int, int] | None = None  # one memory pool for every shape
        cuda = device.type == "cuda"
        # each step's loss lands in one of two page-locked slots; it is read a step later
        self.host = torch.zeros(2, pin_memory=cuda)
        self.events = [torch.cuda.Event() for _ in range(2)] if cuda else []
        self.steps = 0
        self.pending: int | None = None  # the slot of the last step, not read yet
        prepare_optimizer(optimizer, self.found_inf)

    def step(self, input_ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor,
             denominator: float) -> float:
        """Queue one optimizer step on a collated batch and return the loss of the step
        before it (of this one, for the first): waiting for the step just queued would
        leave the GPU idle while Python prepares the next. A new shape is warmed up and
        recorded first (the step itself then replays it). :meth:`flush` reads the last."""
        key = tuple(input_ids.shape)
        inputs = self.inputs.get(key)
        if inputs is None:
            inputs = self.inputs[key] = _Inputs(
                torch.empty_like(input_ids, device=self.device),
                torch.empty_like(mask, device=self.device),
                torch.empty_like(labels, device=self.device))
        inputs.input_ids.copy_(input_ids, non_blocking=True)
        inputs.mask.copy_(mask, non_blocking=True)
        inputs.labels.copy_(labels, non_blocking=True)
        self.denominator.fill_(denominator)
        if key not in self.graphs:
            self._warm_up(inputs)
            self.graphs[key] = self._record(inputs) if self.record else None
        graph = self.graphs[key]
        if graph is None:
            self._body(inputs)
        else:
            graph.replay()
        slot = self.steps % 2
        self.steps += 1
        self.host[slot].copy_(self.loss, non_blocking=True)
        if self.events:
            self.events[slot].record()
        previous, self.pending = self.pending, slot
        return self._read(slot if previous is None else previous)  # the first: its own

    def flush(self) -> float | None:
        """The last queued step's loss (waiting for it), or None when it was read."""
        if self.pending is None:
            return None
        slot, self.pending = self.pending, None
        return self._read(slot)

    def _read(self, slot: int) -> float:
        if self.events:
            self.events[slot].synchronize()
        return float(self.host[slot])

    def _body(self, inputs: _Inputs) -> None:
        """Everything one step does, on the static tensors only (what is recorded). The
        gradients are dropped first (no kernel), so the backward pass writes fresh ones
        into the graph's memory, as the eager step's does."""
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast():
            logits = self.model(inputs.input_ids, inputs.mask).float()
        loss = batch_loss(logits, inputs.labels, self.weights, self.denominator,
                          self.ignore_index)
        loss.backward()
        self.found_inf.copy_(torch.logical_not(torch.isfinite(loss)).float())
        if self.max_grad_norm is not None:
            nn.utils.clip_grad_norm_(self.params, self.max_grad_norm, foreach=True)
        self.optimizer.step()
        self.loss.copy_(loss.detach())

    def _warm_up(self, inputs: _Inputs) -> None:
        """Run the step eagerly (creating AdamW's state and cuBLAS's workspaces), then put
        weights, optimizer state and random generators back as they were."""
        with _restored(self.params, self.optimizer, self.device):
            with self._side_stream():
                for _ in range(WARMUP_STEPS):
                    self._body(inputs)

    @contextlib.contextmanager
    def _side_stream(self) -> Iterator[None]:
        if self.device.type != "cuda":
            yield
            return
        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):
            yield
        torch.cuda.current_stream(self.device).wait_stream(stream)

    def _record(self, inputs: _Inputs) -> torch.cuda.CUDAGraph:
        graph = torch.cuda.CUDAGraph()
        # thread_local: the loader's pin-memory thread may allocate while this records
        with torch.cuda.graph(graph, pool=self.pool, capture_error_mode="thread_local"):
            self._body(inputs)
        self.pool = graph.pool()
        # The recorded gradients live in the shared pool, where other shapes' graphs may
        # reuse their memory between replays: nothing outside a replay may read them.
        self.optimizer.zero_grad(set_to_none=True)
        return graph


@contextlib.contextmanager
def _restored(params: list[nn.Parameter], optimizer: torch.optim.Optimizer,
              device: torch.device) -> Iterator[None]:
    """Weights, AdamW's state (absent state comes back as a fresh one: zero moments, step
    0), ``found_inf`` and the random generators as they were on entry, copied back in
    place so that every address a graph records stays valid."""
    weights = [p.detach().clone() for p in params]
    state = {id(p): {k: v.clone() for k, v in optimizer.state[p].items()
                     if isinstance(v, torch.Tensor)}
             for p in params if p in optimizer.state}
    cpu_rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    try:
        yield
    finally:
        with torch.no_grad():
            for p, saved in zip(params, weights, strict=True):
                p.copy_(saved)
                now = optimizer.state.get(p, {})
                before = state.get(id(p), {})
                for key, value in now.items():
                    if not isinstance(value, torch.Tensor):
                        continue
                    if key in before:
                        value.copy_(before[key])
                    else:
                        value.zero_()
            found_inf = getattr(optimizer, "found_inf", None)
            if found_inf is not None:
                found_inf.zero_()
        torch.set_rng_state(cpu_rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state(cuda_rng, device)
