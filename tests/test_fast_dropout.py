"""Faster CPU dropout masks: the same distribution, reproducible, and swapped in only while
the engine trains."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sentibench.engine import fast_dropout
from sentibench.engine.training import Engine, TrainConfig
from tests.helpers import random_split, snapshot, tiny_classifier


def test_multiplier_is_bernoulli_with_the_asked_probability():
    torch.manual_seed(0)
    mask = (fast_dropout.multiplier((1000, 1000), 0.1) > 0)
    assert mask.shape == (1000, 1000)
    values = fast_dropout.multiplier((100,), 0.1).unique().tolist()
    assert values == pytest.approx([0.0, 1 / 0.9])
    assert abs(mask.float().mean().item() - 0.9) < 5 * (0.9 * 0.1 / 1e6) ** 0.5
    # no structure: neighbouring elements are independent
    both = (mask[:, 1:] & mask[:, :-1]).float().mean().item()
    assert abs(both - 0.81) < 5 * (0.81 * 0.19 / 999_000) ** 0.5
    assert not torch.equal(mask, fast_dropout.multiplier((1000, 1000), 0.1) > 0)  # fresh draws
    torch.manual_seed(0)
    assert torch.equal(mask, fast_dropout.multiplier((1000, 1000), 0.1) > 0)  # torch's seed


def test_a_mask_of_many_chunks_depends_on_the_seed_alone():
    shape = (3, fast_dropout.CHUNK + 5)  # three full chunks and a short one
    threads = torch.get_num_threads()
    masks = []
    try:
        for count in (1, 2, 3):
            torch.set_num_threads(count)
            torch.manual_seed(4)
            masks.append(fast_dropout.multiplier(shape, 0.3))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(masks[0], masks[1]) and torch.equal(masks[0], masks[2])
    flat = masks[0].flatten() > 0
    chunks = flat[:3 * fast_dropout.CHUNK].view(3, -1)
    assert not torch.equal(chunks[0], chunks[1])  # each chunk has its own stream
    assert abs(flat.float().mean().item() - 0.7) < 5 * (0.7 * 0.3 / flat.numel()) ** 0.5


def test_fast_dropout_module_matches_nn_dropout_semantics():
    x = torch.randn(64, 100)
    layer = fast_dropout.FastDropout(0.25)
    y = layer(x)
    kept = y != 0
    torch.testing.assert_close(y[kept], x[kept] / 0.75)
    assert 0.6 < kept.float().mean().item() < 0.9
    assert torch.equal(layer.eval()(x), x)
    grad = torch.ones_like(x, requires_grad=True)
    torch.manual_seed(3)
    (layer.train()(x * grad)).sum().backward()
    torch.manual_seed(3)
    expected = fast_dropout.multiplier(x.shape, 0.25) * x
    torch.testing.assert_close(grad.grad, expected)


@pytest.mark.parametrize("shape", [(3, 5), (2, fast_dropout.CHUNK + 7)])
def test_dropped_is_the_product_with_the_multiplier_bit_for_bit(shape):
    x = torch.randn(shape)
    torch.manual_seed(9)
    product = fast_dropout.dropped(x, 0.3)
    torch.manual_seed(9)
    assert torch.equal(product, x * fast_dropout.multiplier(shape, 0.3))
    doubles = x.double()  # not float32: torch's own product
    torch.manual_seed(9)
    product = fast_dropout.dropped(doubles, 0.3)
    torch.manual_seed(9)
    assert torch.equal(product, doubles * fast_dropout.multiplier(shape, 0.3))


def _qkv(padded: bool):
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(2, 3, 6, 4, generator=g) for _ in range(3))
    mask = torch.ones(2, 1, 6, 6, dtype=torch.bool)
    if padded:
        mask[1, :, :, 4:] = False  # row 1: the last two keys are padding
    return q, k, v, mask


def _reference_attention(q, k, v, mask, keep):
    """autograd's own chain: what DroppedAttention must equal, gradients included."""
    scores = q @ k.transpose(-1, -2)
    if mask is not None and mask.dtype == torch.bool:
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    elif mask is not None:
        scores = scores + mask
    return (scores.softmax(-1) * keep) @ v


def test_hf_attention_is_softmax_attention_with_the_drawn_mask():
    q, k, v, mask = _qkv(padded=True)
    module = nn.Module()
    torch.manual_seed(5)
    out, _ = fast_dropout.hf_attention(module, q, k, v, mask, dropout=0.2, scaling=0.5)
    torch.manual_seed(5)
    expected = _reference_attention(q * 0.5, k, v, mask, fast_dropout.multiplier((2, 3, 6, 6), 0.2))
    torch.testing.assert_close(out, expected.transpose(1, 2))
    # padding keys carry no weight: changing their values changes nothing
    v2 = v.clone()
    v2[1, :, 4:] += 100.0
    torch.manual_seed(5)
    out2, _ = fast_dropout.hf_attention(module, q, k, v2, mask, dropout=0.2, scaling=0.5)
    torch.testing.assert_close(out2, out)


@pytest.mark.parametrize("mask_kind", ["none", "bool", "additive", "first_query"])
def test_dropped_attention_gradients_equal_autograds(mask_kind):
    q, k, v, mask = _qkv(padded=True)
    if mask_kind == "none":
        mask = None
    elif mask_kind == "additive":
        mask = torch.zeros(mask.shape).masked_fill(~mask, -1e4)
    elif mask_kind == "first_query":  # the first-token block: one query per row
        q, mask = q[:, :, :1], mask[:, :, :1]
    grads = []
    for fused in (True, False):
        leaves = [t.transpose(1, 2).clone().requires_grad_() for t in (q, k, v)]  # [B, T, H, D]
        inputs = [t.transpose(1, 2) for t in leaves]  # [B, H, T, D] views, as transformers has
        torch.manual_seed(3)
        if fused:
            out = fast_dropout.DroppedAttention.apply(*inputs, mask, 0.3, 0.5)
        else:
            out = _reference_attention(inputs[0] * 0.5, *inputs[1:], mask,
                                       fast_dropout.multiplier((2, 3, q.shape[2], 6), 0.3))
        (out * torch.linspace(-1, 1, out.numel()).view(out.shape)).sum().backward()
        grads.append([out.detach()] + [t.grad for t in leaves])
    for fused, reference in zip(*grads, strict=True):
        torch.testing.assert_close(fused, reference)
    if mask is not None and mask.dtype == torch.bool:  # no gradient reaches a padding key
        assert torch.equal(grads[0][2][1, 4:], torch.zeros_like(grads[0][2][1, 4:]))


def test_dropped_attention_with_only_values_trained_gives_their_gradient():
    q, k, v, mask = _qkv(padded=True)
    fused, reference = v.clone().requires_grad_(), v.clone().requires_grad_()
    torch.manual_seed(4)
    fast_dropout.DroppedAttention.apply(q, k, fused, mask, 0.3).sum().backward()
    torch.manual_seed(4)
    keep = fast_dropout.multiplier((2, 3, 6, 6), 0.3)
    _reference_attention(q, k, reference, mask, keep).sum().backward()
    torch.testing.assert_close(fused.grad, reference.grad)


@pytest.mark.parametrize("padded", [False, True])
def test_hf_attention_without_dropout_is_sdpa(padded):
    q, k, v, mask = _qkv(padded)
    out, _ = fast_dropout.hf_attention(nn.Module(), q, k, v, mask, dropout=0.0)
    expected = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(out, expected.transpose(1, 2))


@pytest.mark.parametrize("arch", ["bert", "roberta", "distilbert", "modernbert", "deberta-v2"])
def test_installed_swaps_for_the_block_only_and_keeps_eval_logits(arch):
    model = tiny_classifier(arch)
    ids = torch.randint(5, 60, (3, 10))
    mask = torch.ones_like(ids)
    mask[0, 7:] = 0
    before = model.eval()(ids, mask)
    kinds = {name: type(m) for name, m in model.named_modules()}
    impl = model.hf_model.config._attn_implementation
    with fast_dropout.installed(model) as switched:
        assert switched > 0
        assert not any(type(m) is nn.Dropout and m.p > 0 for m in model.modules())
        torch.testing.assert_close(model(ids, mask), before)  # eval: no dropout either way
        model.train()
        assert all(m.training for m in model.modules())
        model(ids, mask).sum().backward()  # the training path runs and has gradients
    assert {name: type(m) for name, m in model.named_modules()} == kinds
    assert model.hf_model.config._attn_implementation == impl
    assert model.training  # the mode set inside the block is kept
    torch.testing.assert_close(model.eval()(ids, mask), before)


def test_installed_switches_everything_back_when_its_set_up_fails(monkeypatch):
    model = tiny_classifier("bert")
    kinds = {name: type(m) for name, m in model.named_modules()}

    def broken() -> None:
        raise RuntimeError("registration failed")

    monkeypatch.setattr(fast_dropout, "_register_hf_attention", broken)
    with pytest.raises(RuntimeError, match="registration failed"):
        with fast_dropout.installed(model):
            pass
    assert {name: type(m) for name, m in model.named_modules()} == kinds
    assert model.hf_model.config._attn_implementation == "sdpa"


def _train_bert(fast: str, seed: int = 0):
    model = tiny_classifier("bert", seed=seed)
    cfg = TrainConfig(learning_rate=1e-2, batch_size=4, eval_freq=3, eval_iter=2, device="cpu",
                      fast_dropout=fast, num_epochs=2)
    engine = Engine(model, cfg, max_length=16, log=lambda line: None)
    engine.fit(random_split(48, 1), random_split(8, 2))
    return engine.predict_logits(random_split(10, 3)), snapshot(model), engine.history


def test_engine_training_with_fast_dropout_is_reproducible_and_learns():
    first, again, plain = _train_bert("auto"), _train_bert("auto"), _train_bert("off")
    torch.testing.assert_close(first[0], again[0], rtol=0, atol=0)
    for name, value in first[1].items():
        assert torch.equal(again[1][name], value)
    assert not torch.equal(first[0], plain[0])  # other masks, so other (equally valid) weights
    for run in (first, plain):
        assert run[2].train_loss[-1] < run[2].train_loss[0]
    # after training the model is the plain Hugging Face model again
    model = tiny_classifier("bert")
    engine = Engine(model, TrainConfig(device="cpu", batch_size=4), max_length=16,
                    log=lambda line: None)
    engine.fit(random_split(8, 1), random_split(4, 2))
    assert model.hf_model.config._attn_implementation == "sdpa"
    assert any(type(m) is nn.Dropout for m in model.modules())
