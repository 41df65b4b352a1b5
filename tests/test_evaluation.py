"""Evaluation in the engine: rows in the order asked, scored once per set of weights."""

from __future__ import annotations

import torch

from sentibench.engine.batching import collate
from tests.helpers import MeanPoolClassifier, quiet_engine, synthetic_split


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
