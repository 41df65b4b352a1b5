"""Evaluation in the engine: rows in the order asked, scored once per set of weights, and
on the CPU in one-thread worker threads with the arithmetic of one-thread scoring."""

from __future__ import annotations

import threading

import pytest
import torch

from sentibench.engine.batching import collate
from sentibench.engine.inference import scored_ahead
from tests.helpers import MeanPoolClassifier, quiet_engine, synthetic_split


@pytest.fixture
def two_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


class ThreadRecorder(MeanPoolClassifier):
    """Notes the thread and torch's thread count of every evaluation forward."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[int, int]] = []

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if not self.training:
            self.seen.append((threading.get_ident(), torch.get_num_threads()))
        return super().forward(input_ids, attention_mask)


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


def test_cpu_evaluation_runs_one_thread_workers_with_one_thread_arithmetic(two_threads):
    torch.manual_seed(0)
    model = ThreadRecorder()
    engine, _ = quiet_engine(model, eval_batch_size=4, split_batches="off")
    split = synthetic_split(40, 3)
    logits = engine.predict_logits(split)
    assert len(model.seen) == 10
    assert {count for _, count in model.seen} == {1}  # one intra-op thread per batch
    assert threading.get_ident() not in {ident for ident, _ in model.seen}
    assert torch.get_num_threads() == 2  # restored
    torch.set_num_threads(1)
    with torch.no_grad():  # the same batches, one at a time on one thread
        for batch in engine._eval_batches(split, range(40)):
            ids, mask, _ = collate(split, batch, pad_id=0)
            assert torch.equal(logits[batch], model(ids, mask))


def test_an_error_in_a_worker_reaches_the_caller_and_restores_the_threads(two_threads):
    def score(item: int) -> int:
        if item == 5:
            raise ValueError("row 5")
        return item

    with pytest.raises(ValueError, match="row 5"):
        with scored_ahead(score, range(20), 20, parallel=True) as scored:
            list(scored)
    assert torch.get_num_threads() == 2


def test_scoring_ahead_keeps_order_and_holds_few_items_at_once(two_threads):
    pulled: list[int] = []

    def items():
        for i in range(50):
            pulled.append(i)
            yield i

    with scored_ahead(lambda i: (i, threading.get_ident()), items(), 50, True) as scored:
        first = next(scored)
        assert len(pulled) <= 4  # 2 workers x 2 ahead, not all 50 collated batches
        rest = list(scored)
    assert [i for i, _ in [first, *rest]] == list(range(50))
    assert threading.get_ident() not in {ident for _, ident in [first, *rest]}
    with scored_ahead(lambda i: threading.get_ident(), range(3), 3, False) as scored:
        assert set(scored) == {threading.get_ident()}  # not parallel: in the caller's thread


def test_a_head_on_cached_features_is_scored_in_the_callers_thread(two_threads):
    """An encoder's classify() swaps its backbone for the call: two threads at once once
    left a stand-in backbone in the model."""
    from sentibench.engine.training import Engine, TrainConfig
    from sentibench.models import encoders
    from tests.helpers import random_split, tiny_classifier

    model = tiny_classifier("bert")
    encoders.set_trainable(model, "last_layer")
    backbone = model.hf_model.bert
    threads: list[int] = []
    classify = model.classify

    def recording(*args, **kwargs):
        threads.append(threading.get_ident())
        return classify(*args, **kwargs)

    model.classify = recording
    cfg = TrainConfig(batch_size=4, eval_batch_size=2, device="cpu", feature_cache="on")
    engine = Engine(model, cfg, max_length=16, log=lambda line: None)
    engine.predict_logits(random_split(20, 3))
    assert len(threads) == 10 and set(threads) == {threading.get_ident()}
    assert model.hf_model.bert is backbone
