"""Token ids of a split, tokenized once, and the padded batches the engine feeds a model."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from .errors import SentibenchError


class TextEncoder(Protocol):
    """What the engine needs from a tokenizer."""

    name: str
    pad_id: int

    def encode_batch(self, texts: Sequence[str], max_length: int | None) -> list[list[int]]: ...


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
    tokenizer: TextEncoder, texts: Sequence[str], labels: Sequence[int], max_length: int | None
) -> EncodedSplit:
    """Tokenize once, in batches; empty encodings would break pooling, so refuse them."""
    ids: list[list[int]] = []
    for start in range(0, len(texts), 1024):
        ids.extend(tokenizer.encode_batch(list(texts[start : start + 1024]), max_length))
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
