"""The last block at the first token only: found by a check, exact in logits and gradients."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sentibench.models import first_token
from tests.helpers import ENCODER_LOW_ID, ENCODER_VOCAB, tiny_classifier


def padded_batch(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Three rows of 9 tokens, the last two padded from positions 6 and 3."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(ENCODER_LOW_ID, ENCODER_VOCAB, (3, 9), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    mask[2, 3:] = 0
    return ids.masked_fill(mask == 0, 0), mask


def gradients(model: nn.Module, loss: torch.Tensor) -> dict[str, torch.Tensor]:
    model.zero_grad()
    loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("arch,found", [("bert", "bert.encoder.layer.1"),
                                        ("roberta", "roberta.encoder.layer.1"),
                                        ("distilbert", None), ("deberta-v2", None),
                                        ("modernbert", None)])  # modernbert: mean pooling
def test_the_shortcut_is_found_where_the_head_reads_the_first_token(arch, found):
    assert tiny_classifier(arch).first_token_block == found


@pytest.mark.parametrize("arch", ["bert", "roberta"])
@pytest.mark.parametrize("use_mask", [True, False])
def test_logits_and_gradients_equal_those_of_the_whole_block(arch, use_mask):
    model = tiny_classifier(arch, use_attention_mask=use_mask).eval()  # eval: no dropout
    ids, mask = padded_batch()
    short = model(ids, mask)
    whole = model.whole_forward(ids, mask)
    torch.testing.assert_close(short, whole, rtol=1e-5, atol=1e-6)
    assert not torch.equal(whole[0], whole[1])  # the rows differ: a real comparison
    expected = gradients(model, whole.logsumexp(-1).sum() - whole[:, 0].sum())
    got = gradients(model, model(ids, mask).logsumexp(-1).sum() - model(ids, mask)[:, 0].sum())
    assert expected.keys() == got.keys() and len(got) == len(list(model.parameters()))
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-4, atol=1e-6, msg=name)


def test_the_last_block_computes_one_position_during_forward_only():
    model = tiny_classifier("bert").eval()
    block = model.hf_model.get_submodule(model.first_token_block)
    shapes: list[tuple[int, ...]] = []
    block.register_forward_hook(lambda module, args, out: shapes.append(tuple(out.shape)))
    ids, mask = padded_batch()
    keys = set(model.state_dict())
    model(ids, mask)
    assert shapes == [(3, 1, 32)]
    assert "forward" not in block.__dict__ and set(model.state_dict()) == keys
    model.features(ids, mask)  # the feature cache stores every position
    assert shapes[-1] == (3, 9, 32)


def test_a_head_that_pools_every_token_keeps_the_whole_block():
    class MeanPooler(nn.Module):
        def __init__(self, dense: nn.Linear) -> None:
            super().__init__()
            self.dense = dense

        def forward(self, hidden: torch.Tensor) -> torch.Tensor:
            return torch.tanh(self.dense(hidden.mean(dim=1)))

    model = tiny_classifier("bert")
    hf = model.hf_model
    hf.bert.pooler = MeanPooler(hf.bert.pooler.dense)
    assert model._find_first_token_block() is None


def test_the_check_leaves_the_random_state_and_the_training_mode_alone():
    model = tiny_classifier("bert").train()
    state = torch.random.get_rng_state()
    assert model._find_first_token_block() == "bert.encoder.layer.1"
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(m.training for m in model.modules())


def test_anything_but_a_plain_encoder_call_runs_the_whole_block(monkeypatch):
    model = tiny_classifier("bert").eval()
    block = model.hf_model.get_submodule(model.first_token_block)
    hidden = torch.randn(2, 5, 32)
    whole = block(hidden)  # [B, T, E]
    calls: list[tuple] = []
    monkeypatch.setattr(type(block), "forward",
                        lambda self, *args, **kwargs: calls.append((args, kwargs)) or whole)
    for args, kwargs in [((torch.ones(2, 5),), {}), ((None, hidden), {}),
                         ((None,), {"past_key_values": object()})]:
        assert first_token.first_token_forward(block, hidden, *args, **kwargs) is whole
    assert len(calls) == 3
    torch.testing.assert_close(first_token.first_token_forward(block, hidden), whole[:, :1])
    assert len(calls) == 3


def test_training_mode_with_fast_dropout_attention_gives_first_token_logits():
    from sentibench.engine import fast_dropout

    model = tiny_classifier("bert").train()
    ids, mask = padded_batch()
    with fast_dropout.installed(model):
        torch.manual_seed(0)
        logits = model(ids, mask)
    assert logits.shape == (3, 2) and torch.isfinite(logits).all()
    logits.sum().backward()
    block = model.hf_model.get_submodule(model.first_token_block)
    assert block.attention.self.query.weight.grad.abs().sum() > 0
