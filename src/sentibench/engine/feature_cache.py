"""Outputs of a frozen backbone, computed once per row and reused by every later step.

A model that can be cut into a frozen part and a trainable rest exposes
``features(input_ids, attention_mask)`` (the frozen part) and ``classify(features,
attention_mask)`` (the rest), and ``cache_level()`` says what ``features`` returns:

- ``"pooled"``: one vector per row ``[B, E]`` (only the head trains);
- ``"tokens"``: one vector per token ``[B, T, E]`` (e.g. GPT-2's last-block input when only
  the last block, final norm and head train). Rows are stored without their padding.

Rows are kept in one flat float32 tensor on the CPU with offsets, so memory is what the
rows need and nothing more. A split is cached only when it fits in the memory budget; a split
that does not fit runs the whole model as usual (same results, no speed-up).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from sentibench.core.errors import SentibenchError

LEVELS = ("pooled", "tokens")


@dataclass
class CachedRows:
    """Frozen outputs of every row of one split: ``flat[offsets[i]:offsets[i+1]]`` is row i."""

    flat: torch.Tensor  # [sum of row lengths, E]
    offsets: torch.Tensor  # [N + 1]
    per_token: bool

    @property
    def nbytes(self) -> int:
        return self.flat.numel() * self.flat.element_size()

    def gather(self, indices: Sequence[int], device: torch.device
               ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Features of ``indices`` ([B,E], or [B,T,E] right-padded with zeros, and a mask)."""
        idx = torch.as_tensor(list(indices), dtype=torch.long)
        if not self.per_token:
            return self.flat[idx].to(device, non_blocking=True), None
        starts, ends = self.offsets[idx], self.offsets[idx + 1]
        lengths = (ends - starts).tolist()
        width = max(lengths)
        out = self.flat.new_zeros((len(lengths), width, self.flat.shape[1]))  # [B,T,E]
        mask = torch.zeros((len(lengths), width), dtype=torch.long)
        for row, (start, length) in enumerate(zip(starts.tolist(), lengths, strict=True)):
            out[row, :length] = self.flat[start : start + length]
            mask[row, :length] = 1
        return out.to(device, non_blocking=True), mask.to(device, non_blocking=True)


class RowStore:
    """Fills a :class:`CachedRows` batch by batch, in any row order."""

    def __init__(self, row_lengths: Sequence[int], dim: int, per_token: bool) -> None:
        lengths = torch.as_tensor(list(row_lengths), dtype=torch.long)
        self.offsets = torch.zeros(len(lengths) + 1, dtype=torch.long)
        self.offsets[1:] = torch.cumsum(lengths, 0)
        self.flat = torch.empty((int(self.offsets[-1]), dim), dtype=torch.float32)
        self.per_token = per_token

    def put(self, indices: Sequence[int], features: torch.Tensor) -> None:
        """Store ``features`` ([B,E] or [B,T,E]) of ``indices``; padding is dropped."""
        features = features.detach().to("cpu", torch.float32)
        for row, index in enumerate(indices):
            start, end = int(self.offsets[index]), int(self.offsets[index + 1])
            self.flat[start:end] = features[row, : end - start] if self.per_token \
                else features[row]

    def done(self) -> CachedRows:
        return CachedRows(self.flat, self.offsets, self.per_token)


def plan(model: nn.Module, mode: str, log: Callable[[str], None]) -> str | None:
    """The level to cache ``model`` at for ``--feature-cache mode``, or None (no cache)."""
    if mode == "off":
        return None
    if not (hasattr(model, "features") and hasattr(model, "classify")):
        if mode == "on":
            raise SentibenchError("--feature-cache on: this model does not expose features()")
        return None
    level = getattr(model, "cache_level", lambda: "pooled")()
    if level is None:
        if mode == "on":
            raise SentibenchError("--feature-cache on: no frozen part to cache with these "
                                  "trainable layers (GPT-2: last_layer or last_block; "
                                  "encoders: last_layer)")
        return None
    if not bool(getattr(model, "feature_cache_exact", lambda: False)()):
        if mode == "auto":
            return None
        log("feature cache on: the frozen part runs without dropout while caching "
            "(not identical to training it in train mode)")
    return level


class FeatureCache:
    """Cached rows per split, within a memory budget shared by all splits."""

    def __init__(self, level: str, budget_bytes: int, log: Callable[[str], None]) -> None:
        if level not in LEVELS:
            raise ValueError(f"cache level must be one of {LEVELS}, got {level!r}")
        self.level, self.budget, self.log = level, budget_bytes, log
        self._splits: dict[int, tuple[object, CachedRows | None]] = {}

    @property
    def nbytes(self) -> int:
        return sum(rows.nbytes for _, rows in self._splits.values() if rows is not None)

    def cached(self) -> list[CachedRows | None]:
        return [rows for _, rows in self._splits.values()]

    def rows(self, split: object, token_lengths: Callable[[], Sequence[int]],
             outputs: Callable[[], Iterator[tuple[list[int], torch.Tensor]]]
             ) -> CachedRows | None:
        """``split``'s cached rows, filled from ``outputs()`` on first use; None if over budget.

        ``token_lengths()``: each row's length as the model sees it. Both are called only on
        the first use of a split, so a lookup (once per step) costs a dict access.
        """
        entry = self._splits.get(id(split))
        if entry is not None:
            return entry[1]
        store: RowStore | None = None
        stream = outputs()
        try:
            for batch, out in stream:
                if store is None:
                    store = self._store(token_lengths(), out.shape[-1])
                    if store is None:
                        break
                store.put(batch, out)
        finally:
            stream.close()
        rows = store.done() if store is not None else None
        self._splits[id(split)] = (split, rows)  # keeps the split alive, so its id stays unique
        return rows

    def _store(self, token_lengths: Sequence[int], dim: int) -> RowStore | None:
        lengths = list(token_lengths) if self.level == "tokens" else [1] * len(token_lengths)
        need = sum(row_bytes(self.level, dim, n) for n in lengths)
        left = self.budget - self.nbytes
        if need > left:
            self.log(f"feature cache: {len(lengths)} rows need {format_gib(need)}, "
                     f"{format_gib(max(left, 0))} left (--feature-cache-gb); "
                     "running them through the whole model instead")
            return None
        return RowStore(lengths, dim, per_token=self.level == "tokens")


def row_bytes(level: str, dim: int, length: int) -> int:
    """float32 bytes one row needs at ``level``."""
    return 4 * dim * (length if level == "tokens" else 1)


def default_budget_bytes() -> int:
    """Half of the memory available now (Linux ``MemAvailable``), else half of physical RAM."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 // 2
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (AttributeError, ValueError, OSError):
        return 4 * 1024**3


def format_gib(n: int) -> str:
    return f"{n / 1024**3:.2f} GiB"
