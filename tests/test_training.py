"""The shared engine, driven by a tiny model that honours the engine's contract."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sentibench.engine import training
from sentibench.engine.batching import (
    EncodedSplit,
    collate,
    encode_split,
    epoch_order,
    iter_batches,
    length_groups,
)
from sentibench.engine.training import Engine, TrainConfig
from sentibench.errors import SentibenchError
from sentibench.models import count_parameters


class MeanPoolClassifier(nn.Module):
    """Embedding + masked mean + linear: padding-invariant when the mask is honoured."""

    def __init__(self, vocab: int = 32, dim: int = 16, fixed_padding: bool = False) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.head = nn.Linear(dim, 2)
        self.pad_id = 0
        self.fixed_padding = fixed_padding
        self.seen_widths: list[int] = []
        self.train_shapes: list[tuple[int, int]] = []  # [rows, width] of training forwards

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        self.seen_widths.append(input_ids.shape[1])
        if self.training:
            self.train_shapes.append(tuple(input_ids.shape))
        h = self.embed(input_ids) * attention_mask.unsqueeze(-1)
        return self.head(h.sum(1) / attention_mask.sum(1, keepdim=True))


def synthetic_split(n: int, seed: int) -> EncodedSplit:
    """Label 1 reviews use tokens 10-19, label 0 tokens 20-29; lengths vary 3-12."""
    g = torch.Generator().manual_seed(seed)
    ids, labels = [], []
    for _ in range(n):
        label = int(torch.randint(0, 2, (1,), generator=g))
        length = int(torch.randint(3, 13, (1,), generator=g))
        low = 10 if label else 20
        ids.append(torch.randint(low, low + 10, (length,), generator=g).tolist())
        labels.append(label)
    return EncodedSplit(ids, torch.tensor(labels))


def quiet_engine(model: nn.Module, **overrides) -> tuple[Engine, list[str]]:
    lines: list[str] = []
    cfg = TrainConfig(**{"learning_rate": 1e-2, "eval_freq": 5, "eval_iter": 2,
                         "device": "cpu", **overrides})
    return Engine(model, cfg, max_length=12, log=lines.append), lines


def test_collate_pads_to_longest_row_or_fixed_length():
    split = EncodedSplit([[5, 6, 7], [8]], torch.tensor([1, 0]))
    ids, mask, labels = collate(split, [0, 1], pad_id=99)
    assert ids.tolist() == [[5, 6, 7], [8, 99, 99]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    assert labels.tolist() == [1, 0]
    ids, mask, _ = collate(split, [1], pad_id=99, pad_to=4)
    assert ids.tolist() == [[8, 99, 99, 99]] and mask.tolist() == [[1, 0, 0, 0]]
    ids, _, _ = collate(split, [0, 1], pad_id=0, multiple_of=8)
    assert ids.shape == (2, 8)
    ids, _, _ = collate(split, [0, 1], pad_id=0, pad_to=5, multiple_of=8)
    assert ids.shape == (2, 5)  # a fixed length is the reference's: never rounded up


def test_encode_split_truncates_and_rejects_empty_rows():
    class Chars:
        name, pad_id = "chars", 0

        def encode_batch(self, texts, max_length):
            return [[ord(c) for c in t][:max_length] for t in texts]

    split = encode_split(Chars(), ["abcdef", "xy"], [1, 0], max_length=4)
    assert split.ids == [[97, 98, 99, 100], [120, 121]]
    with pytest.raises(SentibenchError, match="row 1"):
        encode_split(Chars(), ["ok", ""], [1, 0], max_length=4)


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


def test_predict_logits_returns_rows_in_the_requested_order():
    torch.manual_seed(0)
    model = MeanPoolClassifier()
    split = synthetic_split(30, 6)
    engine, _ = quiet_engine(model, eval_batch_size=4)
    order = [7, 3, 29, 0, 11]
    batched = engine.predict_logits(split, order)
    with torch.no_grad():
        for row, index in enumerate(order):
            ids, mask, _ = collate(split, [index], pad_id=0)
            torch.testing.assert_close(batched[row], model(ids, mask)[0])


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


def test_group_by_length_keeps_the_rows_and_cuts_padding():
    split = synthetic_split(200, 5)
    lengths = split.lengths()
    a, b = epoch_order(200, 4, 123), epoch_order(200, 4, 123, lengths)
    assert sorted(a) == sorted(b) and len(b) == 200
    assert b == epoch_order(200, 4, 123, lengths)  # deterministic
    assert b != epoch_order(200, 4, 124, lengths)

    def padded_tokens(order: list[int]) -> int:
        return sum(4 * int(lengths[order[i:i + 4]].max()) for i in range(0, len(order), 4))

    assert padded_tokens(b) < 0.9 * padded_tokens(a)


def test_worker_processes_collate_the_same_batches_in_order():
    split = synthetic_split(40, 7)
    batches = [[3, 1, 4], [15, 9], [2, 6, 5, 35], [8]]
    plain = list(iter_batches(split, batches, pad_id=0, multiple_of=4))
    workers = list(iter_batches(split, batches, pad_id=0, multiple_of=4, workers=2))
    assert len(plain) == len(workers) == 4
    for a, b in zip(plain, workers, strict=True):
        for x, y in zip(a, b, strict=True):
            assert torch.equal(x, y)
    assert plain[1][0].shape[1] % 4 == 0


def trained_run(**cfg):
    """Two epochs on 64 synthetic rows from seed 0: (engine, test logits, weights, log lines,
    [rows, width] of every training forward)."""
    train, val, test = synthetic_split(64, 1), synthetic_split(16, 2), synthetic_split(30, 3)
    torch.manual_seed(0)
    model = MeanPoolClassifier()
    engine, lines = quiet_engine(model, **{"num_epochs": 2, **cfg})
    engine.fit(train, val)
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    return engine, engine.predict_logits(test), params, lines, model.train_shapes


def test_training_with_loader_workers_equals_training_without():
    plain, workers = trained_run(num_workers=0), trained_run(num_workers=2)
    assert torch.equal(plain[1], workers[1])
    assert torch.equal(plain[2]["head.weight"], workers[2]["head.weight"])
    assert plain[3] == workers[3]


def _brute_force_cost(lengths: list[int], overhead: int) -> int:
    """Cheapest contiguous cut of the sorted lengths, by trying every cut."""
    ordered = sorted(lengths)
    best = None
    for mask in range(2 ** (len(ordered) - 1)):
        cost, start = 0, 0
        for end in range(1, len(ordered) + 1):
            if end == len(ordered) or mask >> (end - 1) & 1:
                cost += (end - start) * ordered[end - 1] + overhead
                start = end
        best = cost if best is None else min(best, cost)
    return best


@pytest.mark.parametrize("overhead", [0, 8, 64, 10_000])
def test_length_groups_partition_the_batch_at_least_cost(overhead):
    g = torch.Generator().manual_seed(overhead)
    for _ in range(20):
        lengths = torch.randint(1, 257, (8,), generator=g).tolist()
        groups = length_groups(lengths, overhead)
        assert sorted(p for group in groups for p in group) == list(range(8))
        flat = [lengths[p] for group in groups for p in group]
        assert flat == sorted(lengths)  # contiguous runs of the length order
        cost = sum(len(group) * max(lengths[p] for p in group) + overhead for group in groups)
        assert cost == _brute_force_cost(lengths, overhead)
    assert len(length_groups([5, 200, 7, 256], 10_000)) == 1
    assert length_groups([256, 3, 256, 3], 0) == [[1, 3], [0, 2]]


def test_split_batches_trains_to_the_same_weights_with_less_padding(monkeypatch):
    monkeypatch.setattr(training, "SPLIT_OVERHEAD_TOKENS", 2)  # rows here are 3-12 tokens
    off, on = trained_run(split_batches="off"), trained_run(split_batches="on")
    assert off[0].plan.split_batches is False and on[0].plan.split_batches is True
    torch.testing.assert_close(on[1], off[1], rtol=1e-5, atol=1e-6)
    for name, value in off[2].items():
        torch.testing.assert_close(on[2][name], value, rtol=1e-5, atol=1e-6)
    assert on[0].history.train_loss == pytest.approx(off[0].history.train_loss, rel=1e-5)
    assert len(off[4]) == 16 and len(on[4]) > 16  # 2 epochs of 8 batches of 8 rows
    assert sum(rows for rows, _ in on[4]) == sum(rows for rows, _ in off[4]) == 128
    padded = {name: sum(r * w for r, w in run[4]) for name, run in (("off", off), ("on", on))}
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


def test_evaluation_scores_each_row_once_per_set_of_weights():
    model = MeanPoolClassifier()
    engine, _ = quiet_engine(model, split_batches="off")
    split = synthetic_split(30, 3)
    first = engine.predict_logits(split, [4, 2, 4, 9])
    calls = len(model.seen_widths)
    again = engine.predict_logits(split, [9, 4])
    assert len(model.seen_widths) == calls  # served from the memo
    assert torch.equal(again, first[[3, 0]]) and torch.equal(first[0], first[2])
    whole = engine.predict_logits(split)
    assert torch.equal(whole[[4, 2, 9]], first[[0, 1, 3]])
    model.load_state_dict({k: v + 0.5 for k, v in model.state_dict().items()})
    moved = engine.predict_logits(split, [4])
    assert len(model.seen_widths) > calls and not torch.equal(moved[0], first[0])
    engine.fit(synthetic_split(16, 1), synthetic_split(8, 2))  # fused steps: no version bump
    fresh, _ = quiet_engine(model)
    assert torch.equal(engine.predict_logits(split), fresh.predict_logits(split))
