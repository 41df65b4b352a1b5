"""Interrupt-and-resume equals an uninterrupted run; bad losses keep the last checkpoint."""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

from sentibench.core.errors import SentibenchError
from sentibench.engine.checkpoint import load_checkpoint, read_run_spec, save_checkpoint
from sentibench.engine.training import Engine, TrainConfig
from tests.helpers import synthetic_split


class DropoutClassifier(nn.Module):
    """Uses the global RNG in training (dropout), so resuming must restore it."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(32, 16)
        self.drop = nn.Dropout(0.2)
        self.head = nn.Linear(16, 2)
        self.pad_id = 0

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        h = self.drop(self.embed(input_ids)) * attention_mask.unsqueeze(-1)
        return self.head(h.sum(1) / attention_mask.sum(1, keepdim=True))


def make_engine(**overrides) -> Engine:
    cfg = TrainConfig(**{"learning_rate": 1e-2, "eval_freq": 4, "eval_iter": 2, "device": "cpu",
                         "num_epochs": 2, **overrides})
    return Engine(DropoutClassifier(), cfg, max_length=12, log=lambda line: None)


def interrupt_after(engine: Engine, steps: int) -> None:
    original = engine._step
    calls = {"n": 0}

    def step(*args, **kwargs):
        if calls["n"] == steps:
            raise KeyboardInterrupt
        calls["n"] += 1
        return original(*args, **kwargs)

    engine._step = step


@pytest.mark.parametrize("stop_at", [3, 10, 13])
def test_interrupted_then_resumed_run_equals_uninterrupted(tmp_path, stop_at):
    train, val = synthetic_split(80, 1), synthetic_split(16, 2)
    reference = make_engine()
    expected_history = reference.fit(train, val)

    first = make_engine()
    first.checkpointer = functools.partial(save_checkpoint, tmp_path, {"name": "toy"})
    interrupt_after(first, stop_at)
    with pytest.raises(KeyboardInterrupt):
        first.fit(train, val)
    assert read_run_spec(tmp_path) == {"name": "toy"}

    second = make_engine()
    resume = load_checkpoint(tmp_path, second.model)
    assert resume.state.global_step == stop_at - 1
    history = second.fit(train, val, resume)
    assert history == expected_history
    for a, b in zip(reference.model.parameters(), second.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_periodic_checkpoints_and_non_finite_loss_keeps_the_last_good_one(tmp_path):
    train, val = synthetic_split(80, 1), synthetic_split(16, 2)
    engine = make_engine(save_every=5)
    engine.checkpointer = functools.partial(save_checkpoint, tmp_path, {})
    original = engine._step
    calls = {"n": 0}

    def step(*args):
        calls["n"] += 1
        if calls["n"] == 8:
            with torch.no_grad():
                engine.model.head.weight.fill_(float("inf"))
        return original(*args)

    engine._step = step
    with pytest.raises(SentibenchError, match="non-finite"):
        engine.fit(train, val)
    fresh = make_engine()
    resume = load_checkpoint(tmp_path, fresh.model)
    assert resume.state.global_step == 4  # saved after step 5, not at the failure
    assert torch.isfinite(fresh.model.head.weight).all()


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(SentibenchError, match="no checkpoint to resume"):
        read_run_spec(tmp_path)


@pytest.mark.parametrize("stop_at", [5, 14])
def test_select_best_and_a_schedule_resume_exactly(tmp_path, stop_at):
    """The best weights so far travel in the checkpoint (best.safetensors), and the
    schedule depends on the step alone."""
    settings = {"eval_every": 3, "select_best": "val_loss", "lr_schedule": "cosine",
                "warmup_ratio": 0.2, "learning_rate": 0.2}
    train, val = synthetic_split(80, 1), synthetic_split(16, 2)
    reference = make_engine(**settings)
    expected_history = reference.fit(train, val)
    first = make_engine(**settings)
    first.checkpointer = functools.partial(save_checkpoint, tmp_path, {"name": "toy"})
    interrupt_after(first, stop_at)
    with pytest.raises(KeyboardInterrupt):
        first.fit(train, val)
    second = make_engine(**settings)
    resume = load_checkpoint(tmp_path, second.model)
    assert (resume.best_params is not None) == (stop_at > 3)
    assert second.fit(train, val, resume) == expected_history
    assert second.best.step == reference.best.step
    for a, b in zip(reference.model.parameters(), second.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
