"""Feature caching: cached runs train and predict exactly as uncached ones."""

from __future__ import annotations

import pytest
import torch

from sentibench.core.errors import SentibenchError
from sentibench.engine.feature_cache import RowStore, row_bytes
from sentibench.models.gpt2 import GPT2
from sentibench.models.gpt2_classifier import GPT2Classifier
from tests.helpers import quiet_engine, synthetic_split, tiny_gpt2_config


@pytest.mark.parametrize(("mode", "drop_rate", "level", "exact"), [
    ("last_layer", 0.0, "pooled", True), ("last_block", 0.0, "tokens", True),
    ("all", 0.0, None, False), ("last_layer", 0.1, "pooled", False),
    ("last_block", 0.1, "tokens", False)])
def test_gpt2_cache_level_and_exactness(mode, drop_rate, level, exact):
    model = GPT2Classifier(GPT2(tiny_gpt2_config(drop_rate=drop_rate)), num_classes=2, seed=0)
    model.set_trainable(mode)
    assert model.cache_level() == level
    assert model.feature_cache_exact() is exact


def test_row_store_round_trip_drops_padding():
    store = RowStore([2, 3, 1], dim=4, per_token=True)
    batch = torch.arange(2 * 3 * 4, dtype=torch.float32).view(2, 3, 4)  # rows 2 and 0
    store.put([2, 0], batch)
    store.put([1], torch.full((1, 3, 4), 7.0))
    rows = store.done()
    assert rows.nbytes == 6 * 4 * 4 == sum(row_bytes("tokens", 4, n) for n in (2, 3, 1))
    feats, mask = rows.gather([0, 2], torch.device("cpu"))
    assert feats.shape == (2, 2, 4) and mask.tolist() == [[1, 1], [1, 0]]
    torch.testing.assert_close(feats[0], batch[1, :2])
    torch.testing.assert_close(feats[1, 0], batch[0, 0])
    assert feats[1, 1].abs().sum() == 0  # padding is zeros, masked out


def _gpt2_run(trainable: str, pooling: str, average: bool, mode: str, **cfg):
    train, val, test = synthetic_split(48, 1), synthetic_split(16, 2), synthetic_split(20, 3)
    torch.manual_seed(0)
    model = GPT2Classifier(GPT2(tiny_gpt2_config()), num_classes=2, pooling=pooling,
                           average=average, pad_id=63, seed=0)
    model.set_trainable(trainable)
    cfg.setdefault("split_batches", "off")  # same batch shapes on both sides: same float noise
    engine, lines = quiet_engine(model, num_epochs=2, feature_cache=mode, **cfg)
    engine.fit(train, val)
    trained = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    return engine, lines, engine.predict_logits(test), trained, engine.history.to_dict()


def _without_key_part(qkv_bias: torch.Tensor) -> torch.Tensor:
    q, _, v = qkv_bias.chunk(3)
    return torch.cat([q, v])


@pytest.mark.parametrize("trainable", ["last_layer", "last_block"])
@pytest.mark.parametrize(("pooling", "average"), [
    ("last", False), ("last_padded", False), ("first", False), ("last", True)])
def test_cached_gpt2_trains_to_the_same_weights_and_logits(trainable, pooling, average):
    off = _gpt2_run(trainable, pooling, average, "off")
    auto = _gpt2_run(trainable, pooling, average, "auto")
    assert off[0].cache_level is None
    assert auto[0].cache_level == ("pooled" if trainable == "last_layer" else "tokens")
    assert auto[0].cache.cached() and None not in auto[0].cache.cached()
    torch.testing.assert_close(auto[2], off[2], rtol=1e-5, atol=1e-5)
    assert auto[3].keys() == off[3].keys()
    for name in off[3]:
        a, b = auto[3][name], off[3][name]
        if name.endswith("attn.qkv.bias"):  # the key bias cannot change any softmax, so its
            a, b = _without_key_part(a), _without_key_part(b)  # exact gradient is 0 and Adam
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)  # turns float noise into steps
    assert auto[4]["train_loss"] == pytest.approx(off[4]["train_loss"], rel=1e-5, abs=1e-6)
    assert auto[4]["val_loss"] == pytest.approx(off[4]["val_loss"], rel=1e-5, abs=1e-6)


def test_cache_over_budget_falls_back_to_the_whole_model():
    off = _gpt2_run("last_block", "last", False, "off")
    tight = _gpt2_run("last_block", "last", False, "auto", feature_cache_gb=0.0)
    engine, lines = tight[0], tight[1]
    assert engine.cache_level == "tokens"
    assert engine.cache.cached() and set(engine.cache.cached()) == {None}
    assert any("running them through the whole model" in line for line in lines)
    torch.testing.assert_close(tight[2], off[2], rtol=1e-6, atol=1e-6)


def test_cache_on_needs_a_frozen_part():
    model = GPT2Classifier(GPT2(tiny_gpt2_config()), num_classes=2, seed=0)
    model.set_trainable("all")
    with pytest.raises(SentibenchError, match="no frozen part to cache"):
        quiet_engine(model, feature_cache="on")
    _, lines = quiet_engine(model, feature_cache="auto")
    assert not lines


def test_cache_on_with_dropout_says_it_is_not_identical():
    model = GPT2Classifier(GPT2(tiny_gpt2_config(drop_rate=0.1)), num_classes=2, seed=0)
    model.set_trainable("last_layer")
    assert quiet_engine(model, feature_cache="auto")[0].cache_level is None
    engine, lines = quiet_engine(model, feature_cache="on")
    assert engine.cache_level == "pooled"
    assert any("without dropout" in line for line in lines)
