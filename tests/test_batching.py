"""Batching: padding rows into batches, encoding texts, epoch order and length groups."""

from __future__ import annotations

import pytest
import torch

from sentibench.core.errors import SentibenchError
from sentibench.engine.batching import (
    WORKER_MIN_BATCHES,
    EncodedSplit,
    collate,
    encode_split,
    epoch_order,
    iter_batches,
    length_groups,
)
from tests.helpers import synthetic_split


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
    batches = [[3, 1, 4], [15, 9], [2, 6, 5, 35], [8]] * (WORKER_MIN_BATCHES // 4 + 1)
    plain = list(iter_batches(split, batches, pad_id=0, multiple_of=4))
    workers = list(iter_batches(split, batches, pad_id=0, multiple_of=4, workers=2))
    assert len(plain) == len(workers) == len(batches)
    for a, b in zip(plain, workers, strict=True):
        for x, y in zip(a, b, strict=True):
            assert torch.equal(x, y)
    assert plain[1][0].shape[1] % 4 == 0


def test_a_short_pass_starts_no_worker_processes(monkeypatch):
    """Worker start-up costs more than collating a few batches in-process."""
    started = []
    real = torch.utils.data.DataLoader

    def recording(*args, **kwargs):
        started.append(kwargs["num_workers"])
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.utils.data, "DataLoader", recording)
    split = synthetic_split(40, 7)
    short = [[i] for i in range(WORKER_MIN_BATCHES - 1)]
    list(iter_batches(split, short, pad_id=0, workers=2, pin_memory=True))
    list(iter_batches(split, short + [[0]], pad_id=0, workers=2, pin_memory=True))
    assert started == [0, 2]


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
