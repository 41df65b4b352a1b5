"""engine.graphs: the recorded step's body on static tensors equals the eager step.

The recording itself needs CUDA (the speedtest checks it there, ``graphed_vs_eager``); these
run the same body eagerly (``record=False``) on the CPU: static inputs per shape, the
learning rate and denominator as tensors, ``found_inf``, and the warm-up's restore.
"""

from __future__ import annotations

import contextlib
import copy

import pytest
import torch
from torch import nn

from sentibench.core.errors import SentibenchError
from sentibench.engine.checkpoint import _flatten_optimizer
from sentibench.engine.config import TrainConfig
from sentibench.engine.graphs import GraphedSteps
from sentibench.engine.loss import batch_loss
from sentibench.engine.plan import resolve_plan

CPU = torch.device("cpu")


class Bag(nn.Module):
    """A tiny classifier honouring ``model(input_ids, attention_mask)``, with dropout."""

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.emb, self.lin, self.scale = nn.Embedding(50, 16), nn.Linear(16, 3), scale

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.emb(ids) * mask.unsqueeze(-1)
        return self.lin(h.sum(1) / mask.sum(1, keepdim=True)) * self.scale


def _pair(seed: int = 0, scale: float = 1.0):
    torch.manual_seed(seed)
    eager = Bag(scale)
    graphed = copy.deepcopy(eager)
    opts = [torch.optim.AdamW(m.parameters(), lr=1e-2, weight_decay=0.1, fused=True)
            for m in (eager, graphed)]
    return eager, graphed, opts


def _eager_step(model, optimizer, ids, mask, labels, weights, denominator, clip):
    optimizer.zero_grad(set_to_none=True)
    loss = batch_loss(model(ids, mask).float(), labels, weights, denominator)
    loss.backward()
    if clip is not None:
        nn.utils.clip_grad_norm_(list(model.parameters()), clip)
    optimizer.step()
    return loss.item()


def _batch(width: int, generator: torch.Generator):
    ids = torch.randint(0, 50, (4, width), generator=generator)
    mask = torch.ones(4, width, dtype=torch.long)
    mask[0, width // 2:] = 0
    return ids, mask, torch.randint(0, 3, (4,), generator=generator)


@pytest.mark.parametrize("weights,clip", [(None, None), ((1.0, 2.0, 0.5), 0.05)])
def test_steps_equal_eager_steps(weights, clip):
    """Shapes alternating (two recorded inputs), a decaying rate filled into the tensor,
    class weights and clipping: losses and weights equal the eager loop's, exactly."""
    eager, graphed, (opt_e, opt_g) = _pair()
    w = None if weights is None else torch.tensor(weights)
    steps = GraphedSteps(graphed, opt_g, CPU, contextlib.nullcontext, w, clip, -100,
                         record=False)
    generator = torch.Generator().manual_seed(1)
    want, got = [], []
    for step in range(6):
        ids, mask, labels = _batch(8 if step % 2 else 16, generator)
        lr = 1e-2 * (1 - step / 10)
        opt_e.param_groups[0]["lr"] = lr
        opt_g.param_groups[0]["lr"].fill_(lr)
        denominator = 4.0 if w is None else float(w[labels].sum())
        want.append(_eager_step(eager, opt_e, ids, mask, labels, w, denominator, clip))
        got.append(steps.step(ids, mask, labels, denominator))
        for p, q in zip(eager.parameters(), graphed.parameters(), strict=True):
            assert torch.equal(p, q)
    # each step reports the loss of the one before (the first its own); flush the last
    assert got == [want[0], *want[:-1]]
    assert steps.flush() == want[-1] and steps.flush() is None
    assert sorted(steps.inputs) == [(4, 8), (4, 16)]


def test_warm_up_restores_weights_state_and_rng():
    """A new shape's warm-up runs the step twice; afterwards the first real step is the
    eager first step (fresh AdamW state, same dropout draws from the generator)."""
    eager, graphed, (opt_e, opt_g) = _pair()
    steps = GraphedSteps(graphed, opt_g, CPU, contextlib.nullcontext, None, None, -100,
                         record=False)
    ids, mask, labels = _batch(8, torch.Generator().manual_seed(2))
    torch.manual_seed(5)
    steps.step(ids, mask, labels, 4.0)
    after_graphed = torch.rand(3)
    torch.manual_seed(5)
    _eager_step(eager, opt_e, ids, mask, labels, None, 4.0, None)
    after_eager = torch.rand(3)
    assert torch.equal(after_graphed, after_eager)
    for p, q in zip(eager.parameters(), graphed.parameters(), strict=True):
        assert torch.equal(p, q)
        assert torch.equal(opt_e.state[p]["exp_avg"], opt_g.state[q]["exp_avg"])
        assert float(opt_e.state[p]["step"]) == float(opt_g.state[q]["step"]) == 1.0


def test_non_finite_loss_leaves_weights_and_moments():
    """found_inf: the update of a step whose loss is not finite is skipped entirely."""
    _, graphed, (_, opt_g) = _pair(scale=1.0)
    steps = GraphedSteps(graphed, opt_g, CPU, contextlib.nullcontext, None, None, -100,
                         record=False)
    generator = torch.Generator().manual_seed(3)
    steps.step(*_batch(8, generator), 4.0)
    before = [p.detach().clone() for p in graphed.parameters()]
    moments = [opt_g.state[p]["exp_avg"].clone() for p in graphed.parameters()]
    graphed.scale = float("inf")
    steps.step(*_batch(8, generator), 4.0)
    assert not torch.isfinite(torch.tensor(steps.flush()))
    for p, b, m in zip(graphed.parameters(), before, moments, strict=True):
        assert torch.equal(p, b)
        assert torch.equal(opt_g.state[p]["exp_avg"], m)
        assert float(opt_g.state[p]["step"]) == 1.0


def test_plan_auto_is_off_on_cpu_and_on_is_an_error():
    model = Bag()
    plan = resolve_plan(TrainConfig(device="cpu"), model, CPU, 1, lambda line: None)
    assert plan.cuda_graphs is False
    assert "CUDA graphs off" in plan.describe()
    with pytest.raises(SentibenchError, match="--cuda-graphs on: it needs --device cuda"):
        resolve_plan(TrainConfig(device="cpu", cuda_graphs="on"), model, CPU, 1,
                     lambda line: None)


def test_checkpoint_saves_a_plain_rate():
    """A recorded optimizer's groups (tensor rate, capturable) are saved as plain ones."""
    _, graphed, (_, opt_g) = _pair()
    steps = GraphedSteps(graphed, opt_g, CPU, contextlib.nullcontext, None, None, -100,
                         record=False)
    steps.step(*_batch(8, torch.Generator().manual_seed(4)), 4.0)
    opt_g.param_groups[0]["lr"].fill_(0.25)
    _, meta = _flatten_optimizer(opt_g.state_dict())
    group = meta["param_groups"][0]
    assert group["lr"] == 0.25 and group["capturable"] is False


def _engine_pair(monkeypatch, record: bool, **overrides):
    """An eager engine and one whose plan says CUDA graphs (on the CPU: ``record=False``
    runs the step body eagerly, ``record=True`` fails to record and falls back)."""
    from dataclasses import replace

    from sentibench.engine import graphs
    from tests.helpers import MeanPoolClassifier, quiet_engine

    class Steps(graphs.GraphedSteps):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **{**kwargs, "record": record})

    monkeypatch.setattr(graphs, "GraphedSteps", Steps)
    torch.manual_seed(0)
    eager_model = MeanPoolClassifier()
    graphed_model = copy.deepcopy(eager_model)
    eager, _ = quiet_engine(eager_model, **overrides)
    graphed, lines = quiet_engine(graphed_model, **overrides)
    graphed.plan = replace(graphed.plan, cuda_graphs=True)
    return (eager, eager_model), (graphed, graphed_model), lines


@pytest.mark.parametrize("record", [False, True])
def test_engine_fit_with_graphed_steps_equals_eager_fit(monkeypatch, record):
    """Through Engine.fit (losses logged, warm-up and linear schedule, clipping): the same
    history and weights; where recording fails the run says so and goes on eagerly."""
    from tests.helpers import synthetic_split

    settings = {"lr_schedule": "linear", "warmup_ratio": 0.2, "max_grad_norm": 0.5}
    (eager, a), (graphed, b), lines = _engine_pair(monkeypatch, record, **settings)
    train, val = synthetic_split(80, 1), synthetic_split(16, 2)
    history_a, history_b = eager.fit(train, val), graphed.fit(train, val)
    assert history_a.train_loss == history_b.train_loss
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)
    fell_back = [line for line in lines if line.startswith("CUDA graphs off")]
    assert (graphed.graphed is None) == record == bool(fell_back)


def test_engine_reports_a_non_finite_loss_found_a_step_late(monkeypatch):
    """The replayed steps' losses are read one step late; the last is read at the end of
    training, so a non-finite last step still stops the run with the engine's error."""
    from tests.helpers import synthetic_split

    (_, _), (graphed, model), _ = _engine_pair(monkeypatch, False, max_steps=3)
    calls = {"n": 0}
    forward = model.forward

    def poisoned(ids, mask):
        calls["n"] += 1
        out = forward(ids, mask)
        return out * float("nan") if calls["n"] > 2 + 2 else out  # after the warm-up's 2

    monkeypatch.setattr(model, "forward", poisoned)
    with pytest.raises(SentibenchError, match="non-finite"):
        graphed.fit(synthetic_split(80, 1), synthetic_split(16, 2))
