"""--trainable_layers lora: adapter sizes, a frozen base, merged equals unmerged, and a saved
LoRA run that reloads and predicts the same."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from sentibench.cli import main
from sentibench.models import count_parameters
from sentibench.models.gpt2 import GPT2
from sentibench.models.gpt2_classifier import GPT2Classifier
from sentibench.models.lora import apply_lora, merge_lora
from sentibench.run.results import read_results
from sentibench.serve.predict import predict_proba
from tests.helpers import (
    FIRST_WORD_VOCAB,
    first_word_csvs,
    quiet_engine,
    synthetic_split,
    tiny_gpt2_config,
    write_tiny_encoder_dir,
)


def _lora_gpt2(rank: int = 4, alpha: float = 8.0, suffixes: tuple[str, ...] = ()):
    torch.manual_seed(0)
    model = GPT2Classifier(GPT2(tiny_gpt2_config()), num_classes=2, pad_id=0)
    model.set_trainable("lora")
    linear = {name: m for name, m in model.named_modules() if isinstance(m, nn.Linear)}
    targets = apply_lora(model, rank, alpha, suffixes)
    return model, {name: linear[name] for name in targets}


def test_trainable_count_is_rank_times_in_plus_out_per_layer_plus_the_head():
    model, adapted = _lora_gpt2(rank=4)
    head = sum(p.numel() for p in model.head.parameters())
    expected = sum(4 * (m.in_features + m.out_features) for m in adapted.values()) + head
    assert count_parameters(model)[1] == expected
    assert len(adapted) == 4 * 2  # qkv, attention proj, fc, mlp proj in each of 2 blocks
    only_qkv = _lora_gpt2(rank=2, suffixes=("qkv",))[1]
    assert sorted(only_qkv) == ["gpt.blocks.0.attn.qkv", "gpt.blocks.1.attn.qkv"]


def test_training_moves_only_adapters_and_head_and_merging_keeps_the_logits():
    model, _ = _lora_gpt2()
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    engine, _ = quiet_engine(model, num_epochs=2, learning_rate=5e-2)
    train = synthetic_split(64, 1)
    engine.fit(train, synthetic_split(16, 2))
    for name, p in model.named_parameters():
        if name in frozen:
            assert torch.equal(p.detach(), frozen[name]), name
    assert any(p.abs().sum() > 0 for n, p in model.named_parameters() if "lora_B" in n)
    before = engine.predict_logits(train)
    assert merge_lora(model) == 8
    assert not any("lora_" in n for n, _ in model.named_parameters())
    model.eval()
    from sentibench.engine.inference import predict_logits

    torch.testing.assert_close(predict_logits(model, train, 12, batch_size=8), before,
                               rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_a_saved_lora_run_reloads_and_predicts_the_same(tmp_path):
    data = first_word_csvs(tmp_path / "data", (160, 40, 40), ("good", "bad"), 5)
    model = write_tiny_encoder_dir(tmp_path / "enc", "bert", FIRST_WORD_VOCAB)
    out = tmp_path / "run"  # 4 epochs: validation is at 100 % by the second; at this rate
    # Adam's steps blow up once the loss is near 0 (a spike near step 105 of 6 epochs)
    assert main(["train-hf", "--model", str(model), "--trainable_layers", "lora",
                 "--lora-rank", "4", "--num_epochs", "4", "--learning_rate", "5e-3",
                 "--data-dir", str(data), "--out", str(out), "--device", "cpu"]) == 0
    result = read_results(out)
    assert result.accuracy["test"] > 0.9
    assert 0 < result.trainable_params < result.params / 2
    assert result.config["lora_layers"] > 0
    saved = pd.read_csv(out / "test_predictions.csv")  # scored before the merge
    texts = pd.read_csv(data / "test.csv")["text"].tolist()
    np.testing.assert_allclose(predict_proba(out, texts)[:, 1], saved["prob_positive"],
                               atol=2e-5)
    from transformers import pipeline

    labelled = pipeline("text-classification", model=str(out), device="cpu")(texts[:8])
    assert [row["label"] for row in labelled] == \
        ["positive" if p > 0.5 else "negative" for p in saved["prob_positive"][:8]]
