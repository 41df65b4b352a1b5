"""Token ids of a split, tokenized once, and the padded batches the engine feeds a model."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from sentibench.core.errors import SentibenchError
from sentibench.models.truncation import HEAD, Truncation


class TextEncoder(Protocol):
    """What the engine needs from a tokenizer."""

    name: str
    pad_id: int

    def encode_batch(self, texts: Sequence[str], max_length: int | None,
                     truncation: Truncation = HEAD) -> list[list[int]]: ...


@dataclass
class EncodedSplit:
    """Token ids (unpadded, already truncated) and labels of one split."""

    ids: list[list[int]]
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.ids)

    def lengths(self) -> torch.Tensor:
        return torch.tensor([len(x) for x in self.ids], dtype=torch.long)


def encode_split(
    tokenizer: TextEncoder, texts: Sequence[str], labels: Sequence[int], max_length: int | None,
    truncation: Truncation = HEAD,
) -> EncodedSplit:
    """Tokenize once, in batches; empty encodings would break pooling, so refuse them."""
    ids: list[list[int]] = []
    for start in range(0, len(texts), 1024):
        chunk = list(texts[start : start + 1024])
        # the rule is passed only when it is not the default, so a tokenizer that only
        # keeps the first ids (encode_batch(texts, max_length)) still serves
        ids.extend(tokenizer.encode_batch(chunk, max_length) if truncation == HEAD
                   else tokenizer.encode_batch(chunk, max_length, truncation))
    empty = [i for i, x in enumerate(ids) if not x]
    if empty:
        raise SentibenchError(f"row {empty[0]} encodes to zero tokens")
    return EncodedSplit(ids, torch.as_tensor(list(labels), dtype=torch.long))


def collate(
    split: EncodedSplit, indices: Sequence[int], pad_id: int, pad_to: int | None = None,
    multiple_of: int = 1,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-pad a batch to exactly ``pad_to``, or to its own longest row rounded up."""
    rows = [split.ids[i] for i in indices]
    width = pad_to or math.ceil(max(len(r) for r in rows) / multiple_of) * multiple_of
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for row, ids in enumerate(rows):
        input_ids[row, : len(ids)] = torch.as_tensor(ids, dtype=torch.long)
        mask[row, : len(ids)] = 1
    return input_ids, mask, split.labels[list(indices)]


def sorted_batches(split: EncodedSplit, indices: Sequence[int],
                   size: int) -> Iterator[list[int]]:
    """``indices`` sorted by length and cut into batches of ``size``: evaluation pads each
    batch to its own longest row, so similar lengths waste little padding."""
    lengths = torch.tensor([len(split.ids[i]) for i in indices], dtype=torch.long)
    order = [indices[i] for i in torch.argsort(lengths, stable=True).tolist()]
    for start in range(0, len(order), size):
        yield order[start : start + size]


def same_length_groups(split: EncodedSplit, rows: Sequence[int]) -> list[list[int]]:
    """``rows`` grouped by token count (in order of first appearance): batches that need
    no padding at all (``--no_padding``)."""
    groups: dict[int, list[int]] = {}
    for row in rows:
        groups.setdefault(len(split.ids[row]), []).append(row)
    return list(groups.values())


def epoch_order(n: int, batch_size: int, seed: int,
                lengths: torch.Tensor | None = None) -> list[int]:
    """One epoch's rows, shuffled by a generator of our own (evaluation never shifts it),
    whole batches only (``drop_last``, as the reference).

    With ``lengths`` (``--group-by-length``), each window of 50 batches is sorted by length
    before it is cut into batches, and the batches are shuffled: less padding, other mixes.
    """
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=generator).tolist()
    usable = (n // batch_size) * batch_size
    order = order[:usable]
    if lengths is None:
        return order
    window = 50 * batch_size
    grouped = [sorted(order[i:i + window], key=lambda row: -int(lengths[row]))
               for i in range(0, usable, window)]
    flat = [row for chunk in grouped for row in chunk]
    batches = [flat[i:i + batch_size] for i in range(0, usable, batch_size)]
    perm = torch.randperm(len(batches), generator=generator).tolist()
    return [row for b in perm for row in batches[b]]


def length_groups(lengths: Sequence[int], overhead: int) -> list[list[int]]:
    """Cut a batch, sorted by length, into contiguous groups that minimise padded tokens
    plus ``overhead`` tokens per group (the fixed cost of one more forward/backward).

    Returns positions into ``lengths``. Each group is padded only to its own longest row,
    so short rows stop paying for long ones; dynamic programming over the sorted rows.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    best = [0] + [0] * len(order)  # best[j]: cheapest cost of the j shortest rows
    cut = [0] * (len(order) + 1)
    for j in range(1, len(order) + 1):
        longest = lengths[order[j - 1]]
        best[j], cut[j] = min((best[i] + (j - i) * longest + overhead, i) for i in range(j))
    groups: list[list[int]] = []
    j = len(order)
    while j > 0:
        groups.append(order[cut[j] : j])
        j = cut[j]
    return groups[::-1]


# Fewer batches than this are collated in-process even where workers are asked for: starting
# two loader workers took ~0.2 s per pass on an H100 machine with 16 cores (fork, then closing
# every inherited descriptor), against ~1 ms to collate one batch, and the periodic
# evaluation losses (a few batches, 20+ times a run) paid it each time. With this bound the
# engine's MiniLM job there went from 34-39 s to 30-32 s, and GPT-2 124M's from 19.1 to 16.2 s.
WORKER_MIN_BATCHES = 32


class _CollatedBatches(torch.utils.data.Dataset):
    """Item i is batch i, collated (what each loader worker runs)."""

    def __init__(self, split: EncodedSplit, batches: Sequence[Sequence[int]], pad_id: int,
                 pad_to: int | None, multiple_of: int) -> None:
        self.split, self.batches = split, batches
        self.pad_id, self.pad_to, self.multiple_of = pad_id, pad_to, multiple_of

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return collate(self.split, self.batches[i], self.pad_id, self.pad_to, self.multiple_of)


def iter_batches(split: EncodedSplit, batches: Sequence[Sequence[int]], pad_id: int,
                 pad_to: int | None = None, multiple_of: int = 1, workers: int = 0,
                 pin_memory: bool = False) -> Iterator[tuple[torch.Tensor, ...]]:
    """Collated ``batches`` in order; with ``workers``, collated ahead in worker processes,
    and with ``pin_memory`` in page-locked memory, so copies to a GPU overlap compute."""
    if len(batches) < WORKER_MIN_BATCHES:
        workers = 0
    if workers == 0 and not pin_memory:
        for batch in batches:
            yield collate(split, batch, pad_id, pad_to, multiple_of)
        return
    dataset = _CollatedBatches(split, batches, pad_id, pad_to, multiple_of)
    yield from torch.utils.data.DataLoader(dataset, batch_size=None, shuffle=False,
                                           num_workers=workers, pin_memory=pin_memory)
