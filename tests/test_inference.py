"""Scoring saved models (predict) and evaluation keep the model's mode, and agree."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from sentibench.core.errors import SentibenchError
from sentibench.engine.batching import EncodedSplit
from sentibench.engine.inference import (
    CPU_PREDICT_BATCH,
    class_probabilities,
    full_range_activations,
    predict_logits,
    quantize_int8,
    rechecked,
    scored_ahead,
)
from tests.helpers import (
    MeanPoolClassifier,
    quiet_engine,
    random_split,
    synthetic_split,
    tiny_classifier,
    trained_run,
)


class Exploding(MeanPoolClassifier):
    """Fails on its third evaluation batch."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if not self.training and self.calls == 3:
            raise RuntimeError("boom")
        return super().forward(input_ids, attention_mask)


def test_prediction_scores_like_the_engine_in_the_splits_order():
    run = trained_run()
    test = synthetic_split(30, 3)
    model = run.engine.model
    model.train()
    logits = predict_logits(model, test, max_length=12, batch_size=7)
    torch.testing.assert_close(logits, run.test_logits)
    assert model.training  # the caller's mode is kept


def test_an_error_during_evaluation_restores_training_mode():
    """Before, the engine switched the model to eval mode without try/finally."""
    model = Exploding()
    engine, _ = quiet_engine(model, eval_batch_size=4)
    model.train()
    with pytest.raises(RuntimeError, match="boom"):
        engine.predict_logits(synthetic_split(30, 3))
    assert model.training
    other = Exploding()
    other.train()
    with pytest.raises(RuntimeError, match="boom"):
        predict_logits(other, synthetic_split(30, 3), max_length=12, batch_size=4)
    assert other.training


class _Tokens:
    """A tokenizer for MeanPoolClassifier: 'good' -> 10, 'bad' -> 20, other words -> 5."""

    name, pad_id = "words", 0

    def encode_batch(self, texts, max_length):
        table = {"good": 10, "bad": 20}
        return [[table.get(w, 5) for w in t.split()][:max_length] for t in texts]


def test_class_probabilities_are_a_softmax_of_the_logits():
    torch.manual_seed(0)
    model = MeanPoolClassifier()
    texts = ["good good film", "bad", "a good and bad film indeed"]
    probs = class_probabilities(model, _Tokens(), texts, max_length=4)
    assert probs.shape == (3, 2)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-6)
    one = class_probabilities(model, _Tokens(), texts[2:], max_length=4)
    np.testing.assert_allclose(probs[2:], one, rtol=1e-6)  # batching does not change a row


def test_cpu_batches_on_worker_threads_equal_each_text_scored_alone():
    model = tiny_classifier("bert")
    split = random_split(40, 5, low=3, high=30)
    threads = torch.get_num_threads()
    together = predict_logits(model, split, max_length=32)  # batches of CPU_PREDICT_BATCH
    assert torch.get_num_threads() == threads  # the intra-op threads are given back
    alone = torch.cat([predict_logits(model, EncodedSplit([ids], split.labels[i:i + 1]),
                                      max_length=32) for i, ids in enumerate(split.ids)])
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-5)
    assert len(split) > CPU_PREDICT_BATCH


def test_int8_quantization_replaces_linear_layers_and_keeps_probabilities_close():
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    model = tiny_classifier("bert")
    split = random_split(40, 6, low=3, high=30)
    quantized = quantize_int8(model)
    linear = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert sum(isinstance(m, DynamicLinear) for m in quantized.modules()) == len(linear)
    assert not any(isinstance(m, DynamicLinear) for m in model.modules())  # a copy
    fp32 = torch.softmax(predict_logits(model, split, max_length=32), -1)
    int8 = torch.softmax(predict_logits(quantized, split, max_length=32), -1)
    assert not torch.equal(fp32, int8)
    torch.testing.assert_close(int8, fp32, rtol=0, atol=0.02)


@pytest.mark.skipif(not full_range_activations(), reason="this CPU has no VNNI: int8 "
                    "activations keep torch's 7-bit range")
def test_int8_activations_use_all_eight_bits_where_the_cpu_has_vnni():
    model = tiny_classifier("bert").eval()
    quantized = quantize_int8(model)
    layer = quantized.hf_model.bert.encoder.layer[0].intermediate.dense
    assert type(layer).__name__ == "FullRangeLinear"
    x = torch.randn(64, 32) * torch.linspace(0.1, 8, 32)  # channels of unequal range
    packed = layer._packed_params._packed_params
    expected = torch.ops.quantized.linear_dynamic(x, packed, reduce_range=False)
    torch.testing.assert_close(layer(x), expected, rtol=0, atol=0)
    exact = model.hf_model.bert.encoder.layer[0].intermediate.dense(x).detach()
    seven_bits = torch.ops.quantized.linear_dynamic(x, packed, reduce_range=True)
    assert (layer(x) - exact).abs().mean() < 0.75 * (seven_bits - exact).abs().mean()


def test_rechecked_rescores_only_rows_whose_top_two_classes_are_close(capsys):
    binary = np.array([[0.52, 0.48], [0.9, 0.1]])
    three = np.array([[0.3, 0.25, 0.45], [0.1, 0.8, 0.1]])  # top-two margins 0.15 and 0.7
    asked: list[list[int]] = []

    def rescore(rows: list[int]) -> np.ndarray:
        asked.append(rows)
        return np.full((len(rows), 3), 7.0)[:, :width]

    width = 2
    np.testing.assert_array_equal(rechecked(binary, rescore, 0.1), [[7, 7], [0.9, 0.1]])
    width = 3
    np.testing.assert_array_equal(rechecked(three, rescore, 0.2), [[7, 7, 7], [0.1, 0.8, 0.1]])
    assert asked == [[0], [0]]
    np.testing.assert_array_equal(rechecked(binary, rescore, 0), binary)
    assert asked == [[0], [0]]  # margin 0: nothing is re-scored
    np.testing.assert_array_equal(binary[0], [0.52, 0.48])  # the input is not modified
    assert capsys.readouterr().err.splitlines() == [
        "--int8-recheck: 1 of 2 texts (50.0%) had their top two classes within 0.1; scored "
        "again in float32",
        "--int8-recheck: 1 of 2 texts (50.0%) had their top two classes within 0.2; scored "
        "again in float32"]


def test_a_model_without_linear_layers_cannot_be_quantized():
    with pytest.raises(SentibenchError, match="has no Linear layer"):
        quantize_int8(torch.nn.Sequential(torch.nn.Embedding(4, 2)))


@pytest.fixture
def two_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


def test_an_error_in_a_worker_reaches_the_caller_and_restores_the_threads(two_threads):
    def score(item: int) -> int:
        if item == 5:
            raise ValueError("row 5")
        return item

    with pytest.raises(ValueError, match="row 5"):
        with scored_ahead(score, range(20), parallel=True) as scored:
            list(scored)
    assert torch.get_num_threads() == 2


def test_scoring_ahead_keeps_order_and_holds_few_items_at_once(two_threads):
    pulled: list[int] = []

    class Items(list):
        """Notes each item as the scorer takes it."""

        def __iter__(self):
            for item in super().__iter__():
                pulled.append(item)
                yield item

    with scored_ahead(lambda i: (i, threading.get_ident()), Items(range(50)), True) as scored:
        first = next(scored)
        assert len(pulled) <= 4  # 2 workers x 2 ahead, not all 50 batches
        rest = list(scored)
    assert [i for i, _ in [first, *rest]] == list(range(50))
    assert threading.get_ident() not in {ident for _, ident in [first, *rest]}
    with scored_ahead(lambda i: threading.get_ident(), range(3), False) as scored:
        assert set(scored) == {threading.get_ident()}  # not parallel: in the caller's thread
