"""Learning-rate schedules, gradient clipping, --eval-every / --select-best and early
stopping."""

from __future__ import annotations

import math

import pytest
import torch

from sentibench.core.errors import SentibenchError
from sentibench.engine.config import TrainConfig
from sentibench.engine.schedule import lr_factor, warmup_steps
from tests.helpers import MeanPoolClassifier, quiet_engine, synthetic_split


@pytest.mark.parametrize("schedule", ["constant", "linear", "cosine"])
def test_learning_rates_follow_the_formula(schedule):
    total, warmup = 100, warmup_steps(100, 0.1)
    assert warmup == 10
    for step in (0, 5, 9):
        assert lr_factor(step, total, warmup, schedule) == pytest.approx(step / 10)
    for step in (10, 40, 99):
        progress = (step - 10) / 90
        expected = {"constant": 1.0, "linear": 1 - progress,
                    "cosine": 0.5 * (1 + math.cos(math.pi * progress))}[schedule]
        assert lr_factor(step, total, warmup, schedule) == pytest.approx(expected)
    assert lr_factor(0, total, 0, schedule) == 1.0  # no warm-up: the full rate at once


def _train(**cfg):
    train, val = synthetic_split(64, 1), synthetic_split(24, 2)
    torch.manual_seed(0)
    model = MeanPoolClassifier()
    engine, lines = quiet_engine(model, **{"num_epochs": 3, **cfg})
    engine.fit(train, val)
    return engine, lines, {n: p.detach().clone() for n, p in model.named_parameters()}


def test_the_engine_sets_the_scheduled_rate_at_every_step():
    engine, _, _ = _train(lr_schedule="linear", warmup_ratio=0.25, eval_freq=1)
    total = 24  # 3 epochs of 8 batches
    expected = [1e-2 * lr_factor(s, total, 6, "linear") for s in range(total)]
    assert engine.history.learning_rate == pytest.approx(expected)


def test_select_best_restores_the_weights_of_the_best_evaluation():
    engine, lines, params = _train(learning_rate=0.3, eval_every=2,
                                   select_best="val_loss")
    losses = engine.history.eval_val_loss
    best = engine.history.eval_steps[losses.index(min(losses))]
    assert best < 23, "the test needs the best evaluation before the last step"
    assert any(line.startswith(f"Restored the weights of step {best}") for line in lines)
    _, _, same = _train(learning_rate=0.3, max_steps=best + 1)  # stop right there
    for name, value in same.items():
        torch.testing.assert_close(params[name], value)


def test_early_stopping_stops_after_the_patience_runs_out():
    engine, lines, _ = _train(learning_rate=1e-12, eval_every=3, select_best="val_accuracy",
                              early_stopping_patience=2)
    # the first evaluation is the best; the next two do not improve on it: stop at step 8
    assert engine.history.eval_steps == [2, 5, 8]
    assert "Early stopping: 2 evaluations without improvement" in lines


def test_clipping_bounds_the_update():
    _, _, free = _train(learning_rate=0.5, max_steps=1, fast_dropout="off")
    _, _, clipped = _train(learning_rate=0.5, max_steps=1, max_grad_norm=1e-6)
    torch.manual_seed(0)
    start = dict(MeanPoolClassifier().named_parameters())
    moved = {k: (clipped[k] - start[k]).abs().max().item() for k in start}
    assert max(moved.values()) > 0
    assert any(not torch.equal(free[k], clipped[k]) for k in free)


@pytest.mark.parametrize("kwargs,message", [
    ({"select_best": "val_loss"}, "--select-best needs --eval-every"),
    ({"early_stopping_patience": 2, "eval_every": 5}, "needs --select-best"),
    ({"warmup_ratio": 1.0}, "--warmup-ratio must be below 1"),
    ({"lr_schedule": "step"}, "--lr-schedule must be one of constant, linear, cosine"),
])
def test_bad_combinations_are_refused(kwargs, message):
    with pytest.raises(SentibenchError, match=message):
        TrainConfig(**kwargs)
