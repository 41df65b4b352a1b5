"""The shared engine, driven by a tiny model that honours the engine's contract."""

from __future__ import annotations

import pytest
import torch

from sentibench.core.errors import SentibenchError
from sentibench.engine import training
from sentibench.engine.training import TrainConfig
from sentibench.models import count_parameters
from tests.helpers import MeanPoolClassifier, quiet_engine, synthetic_split, trained_run


def test_engine_learns_a_separable_task_and_logs_like_the_reference():
    torch.manual_seed(0)
    engine, lines = quiet_engine(MeanPoolClassifier(), num_epochs=2)
    history = engine.fit(synthetic_split(160, 1), synthetic_split(40, 2))
    accuracy = engine.evaluate({"test": synthetic_split(100, 3)})
    assert accuracy["test"] > 0.9
    assert lines[0].startswith("Ep 1 (Step 000000): Train loss ")
    assert any(line.startswith("Ep 2 (Step 000020)") for line in lines)
    assert sum("| Validation accuracy:" in line for line in lines) == 2
    assert history.steps == [0, 5, 10, 15, 20, 25, 30, 35]
    assert history.train_loss[-1] < history.train_loss[0]


def test_training_is_exactly_reproducible_and_seed_dependent():
    def run(seed: int) -> tuple[list[float], torch.Tensor]:
        torch.manual_seed(0)
        model = MeanPoolClassifier()
        engine, _ = quiet_engine(model, seed=seed)
        history = engine.fit(synthetic_split(80, 1), synthetic_split(16, 2))
        return history.train_loss, model.head.weight.detach().clone()

    loss_a, weight_a = run(123)
    loss_b, weight_b = run(123)
    assert loss_a == loss_b
    torch.testing.assert_close(weight_a, weight_b, rtol=0, atol=0)
    _, weight_c = run(7)
    assert not torch.equal(weight_a, weight_c)


def test_dynamic_padding_gives_the_same_predictions_as_fixed_padding():
    torch.manual_seed(0)
    model = MeanPoolClassifier()
    split = synthetic_split(50, 5)
    dynamic, _ = quiet_engine(model, eval_batch_size=7)
    logits_dynamic = dynamic.predict_logits(split)
    model.fixed_padding = True
    fixed, _ = quiet_engine(model, eval_batch_size=7)
    model.seen_widths.clear()
    logits_fixed = fixed.predict_logits(split)
    assert set(model.seen_widths) == {12}
    torch.testing.assert_close(logits_dynamic, logits_fixed, rtol=1e-5, atol=1e-6)


def test_frozen_parameters_stay_bit_identical():
    torch.manual_seed(0)
    model = MeanPoolClassifier()
    model.embed.weight.requires_grad_(False)
    before = model.embed.weight.detach().clone()
    head_before = model.head.weight.detach().clone()
    engine, _ = quiet_engine(model)
    engine.fit(synthetic_split(40, 1), synthetic_split(8, 2))
    assert torch.equal(model.embed.weight, before)
    assert not torch.equal(model.head.weight, head_before)
    assert count_parameters(model) == (32 * 16 + 16 * 2 + 2, 16 * 2 + 2)


def test_non_finite_loss_stops_with_a_clear_error():
    model = MeanPoolClassifier()
    with torch.no_grad():
        model.head.weight.fill_(float("nan"))
    engine, _ = quiet_engine(model)
    with pytest.raises(SentibenchError, match="non-finite"):
        engine.fit(synthetic_split(16, 1), synthetic_split(8, 2))


def test_max_steps_and_too_small_train_split():
    engine, lines = quiet_engine(MeanPoolClassifier(), max_steps=3)
    history = engine.fit(synthetic_split(80, 1), synthetic_split(8, 2))
    assert history.steps == [0]
    engine, _ = quiet_engine(MeanPoolClassifier(), batch_size=8)
    with pytest.raises(SentibenchError, match="fewer than one batch"):
        engine.fit(synthetic_split(5, 1), synthetic_split(8, 2))


@pytest.mark.parametrize("field,value", [("batch_size", 0), ("learning_rate", -1.0),
                                         ("precision", "fp8"), ("device", "tpu"),
                                         ("num_workers", -1), ("feature_cache_gb", -0.5)])
def test_train_config_rejects_bad_values(field, value):
    with pytest.raises(SentibenchError):
        TrainConfig(**{field: value})


class CacheableClassifier(MeanPoolClassifier):
    """Exposes the frozen-backbone protocol: features() + classify()."""

    def __init__(self) -> None:
        super().__init__()
        self.embed.weight.requires_grad_(False)
        self.feature_calls = 0

    def features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        self.feature_calls += 1
        h = self.embed(input_ids) * attention_mask.unsqueeze(-1)
        return h.sum(1) / attention_mask.sum(1, keepdim=True)

    def classify(self, features: torch.Tensor, attention_mask: torch.Tensor | None = None
                 ) -> torch.Tensor:
        return self.head(features)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(input_ids, attention_mask))

    def feature_cache_exact(self) -> bool:
        return True


def test_feature_cache_trains_to_the_same_weights_and_logits():
    train, val, test = synthetic_split(64, 1), synthetic_split(16, 2), synthetic_split(30, 3)
    results = {}
    for mode in ("off", "auto"):
        torch.manual_seed(0)
        model = CacheableClassifier()
        engine, _ = quiet_engine(model, feature_cache=mode, num_epochs=3)
        assert engine.use_feature_cache is (mode == "auto")
        engine.fit(train, val)
        results[mode] = (engine.predict_logits(test), model.head.weight.detach().clone(),
                         model.feature_calls)
    torch.testing.assert_close(results["off"][0], results["auto"][0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(results["off"][1], results["auto"][1], rtol=1e-5, atol=1e-6)
    # cached: one backbone pass per row batch of train, val and test, not one per step
    assert results["auto"][2] < results["off"][2] / 3


def test_feature_cache_on_requires_the_protocol():
    with pytest.raises(SentibenchError, match="does not expose features"):
        quiet_engine(MeanPoolClassifier(), feature_cache="on")


def test_training_with_loader_workers_equals_training_without():
    plain, workers = trained_run(num_workers=0), trained_run(num_workers=2)
    assert torch.equal(plain.test_logits, workers.test_logits)
    assert torch.equal(plain.params["head.weight"], workers.params["head.weight"])
    assert plain.log_lines == workers.log_lines


def test_split_batches_trains_to_the_same_weights_with_less_padding(monkeypatch):
    monkeypatch.setattr(training, "SPLIT_OVERHEAD_TOKENS", 2)  # rows here are 3-12 tokens
    off, on = trained_run(split_batches="off"), trained_run(split_batches="on")
    assert off.engine.plan.split_batches is False and on.engine.plan.split_batches is True
    torch.testing.assert_close(on.test_logits, off.test_logits, rtol=1e-5, atol=1e-6)
    for name, value in off.params.items():
        torch.testing.assert_close(on.params[name], value, rtol=1e-5, atol=1e-6)
    assert on.engine.history.train_loss == pytest.approx(off.engine.history.train_loss,
                                                         rel=1e-5)
    assert (len(off.train_shapes) == 16  # 2 epochs of 8 batches of 8 rows
            and len(on.train_shapes) > 16)
    assert (sum(rows for rows, _ in on.train_shapes)
            == sum(rows for rows, _ in off.train_shapes) == 128)
    padded = {name: sum(r * w for r, w in run.train_shapes)
              for name, run in (("off", off), ("on", on))}
    assert padded["on"] < 0.9 * padded["off"]


def test_split_batches_policy():
    cpu_auto, _ = quiet_engine(MeanPoolClassifier())
    assert cpu_auto.plan.split_batches is True  # auto: on CPU
    fixed, lines = quiet_engine(MeanPoolClassifier(fixed_padding=True), split_batches="on")
    assert fixed.plan.split_batches is False and "no effect" in lines[0]
    assert quiet_engine(MeanPoolClassifier(), split_batches="off")[0].plan.split_batches is False
    with pytest.raises(SentibenchError, match="--split-batches"):
        TrainConfig(split_batches="yes")


def test_cpu_training_uses_the_fused_adamw():
    engine, _ = quiet_engine(MeanPoolClassifier())
    assert engine._optimizer().defaults["fused"] is True


def test_class_weighted_loss_equals_a_hand_computation():
    from sentibench.engine.loss import batch_loss, loss_denominator

    logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [-1.0, 3.0, 0.0],
                           [0.0, 0.0, 0.0]])
    labels = torch.tensor([0, 2, 1, 2])
    weights = torch.tensor([0.5, 2.0, 1.5])
    log_p = torch.log_softmax(logits, -1)
    hand = -sum(weights[y] * log_p[i, y] for i, y in enumerate(labels.tolist()))
    hand /= weights[labels].sum()
    denominator = loss_denominator(labels.tolist(), weights)
    torch.testing.assert_close(batch_loss(logits, labels, weights, denominator), hand)
    # micro-batches of the same batch add up to it (the denominator is the whole batch's)
    parts = batch_loss(logits[:3], labels[:3], weights, denominator) + \
        batch_loss(logits[3:], labels[3:], weights, denominator)
    torch.testing.assert_close(parts, hand)
    # unweighted: the plain batch mean
    torch.testing.assert_close(batch_loss(logits, labels, None, loss_denominator(labels, None)),
                               torch.nn.functional.cross_entropy(logits, labels))


def test_balanced_class_weights_follow_the_training_label_counts(tmp_path):
    import json

    import pandas as pd

    from sentibench.cli import main
    from sentibench.core.metrics import balanced_class_weights

    data = tmp_path / "data"
    data.mkdir()
    counts = {"train": (30, 10), "validation": (6, 4), "test": (6, 4)}
    for split, (neg, pos) in counts.items():
        rows = [(f"dull {i}", 0) for i in range(neg)] + [(f"fine {i}", 1) for i in range(pos)]
        pd.DataFrame(rows, columns=["text", "label"]).to_csv(data / f"{split}.csv", index=False)
    assert balanced_class_weights([0] * 30 + [1] * 10, 2) == [40 / 60, 40 / 20]
    assert main(["train-logreg", "--data-dir", str(data), "--class-weights", "balanced",
                 "--out", str(tmp_path / "lr")]) == 0
    recorded = json.loads((tmp_path / "lr" / "results.json").read_text())["config"]
    assert recorded["class_weights"] == [40 / 60, 40 / 20]
    assert recorded["data"]["class_weights"] == "balanced"
    assert "class_weight={0: 0.666" in recorded["pipeline"]["clf"]


def test_accumulated_batches_train_exactly_as_one_batch_of_the_same_rows():
    one = trained_run(batch_size=8, split_batches="off")
    accumulated = trained_run(batch_size=2, accumulation_steps=4, split_batches="off")
    assert accumulated.engine.history.steps == one.engine.history.steps
    assert {rows for rows, _ in accumulated.train_shapes} == {2}  # the memory of one batch
    assert len(accumulated.train_shapes) == 4 * len(one.train_shapes) == 64
    for name, value in one.params.items():
        torch.testing.assert_close(accumulated.params[name], value, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(accumulated.test_logits, one.test_logits, rtol=1e-5, atol=1e-6)
    with pytest.raises(SentibenchError, match=r"fewer than one batch of 16 \(--batch-size x"):
        quiet_engine(MeanPoolClassifier(), batch_size=4, accumulation_steps=4)[0].fit(
            synthetic_split(12, 1), synthetic_split(8, 2))


def test_no_padding_feeds_every_row_at_its_own_length():
    padded = trained_run(split_batches="off")
    unpadded = trained_run(no_padding=True)
    train = synthetic_split(64, 1)
    # every training forward holds rows of one length: the tokens fed are the rows' own
    fed = sum(rows * width for rows, width in unpadded.train_shapes)
    assert fed == 2 * sum(len(ids) for ids in train.ids)
    assert sum(rows for rows, _ in unpadded.train_shapes) == 128
    for name, value in padded.params.items():  # the mean-pool model ignores padding
        torch.testing.assert_close(unpadded.params[name], value, rtol=1e-5, atol=1e-6)
    engine, _ = quiet_engine(MeanPoolClassifier(fixed_padding=True), no_padding=True)
    assert engine.pad_to is None and engine.multiple_of == 1
    test = synthetic_split(30, 3)
    batches = list(engine.evaluator.eval_batches(test, range(len(test))))
    assert all(len({len(test.ids[i]) for i in batch}) == 1 for batch in batches)
    assert sorted(i for batch in batches for i in batch) == list(range(30))


def test_ignore_index_leaves_those_rows_out_of_the_loss():
    from sentibench.engine.loss import batch_loss, loss_denominator

    logits = torch.tensor([[2.0, 0.5], [0.1, 0.2], [-1.0, 3.0], [0.3, 0.0]])
    labels = torch.tensor([0, 1, 1, 0])
    kept = labels != 1
    for weights in (None, torch.tensor([0.5, 2.0])):
        loss = batch_loss(logits, labels, weights, loss_denominator(labels, weights, 1), 1)
        hand = torch.nn.functional.cross_entropy(logits[kept], labels[kept], weight=weights)
        torch.testing.assert_close(loss, hand)
    # the book's --ignore_index 50256 changes nothing: no class index equals it
    torch.testing.assert_close(
        batch_loss(logits, labels, None, loss_denominator(labels, None, 50256), 50256),
        torch.nn.functional.cross_entropy(logits, labels))
    all_ignored = torch.tensor([1, 1, 1, 1])
    assert batch_loss(logits, all_ignored, None, loss_denominator(all_ignored, None, 1),
                      1).item() == 0.0
    book = trained_run(ignore_index=50256, split_batches="off")
    plain = trained_run(split_batches="off")
    for name, value in plain.params.items():
        assert torch.equal(book.params[name], value)
