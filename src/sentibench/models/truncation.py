"""Which tokens of a long text a model sees: ``head`` (the first ones, the reference's),
``tail`` (the last ones) or ``head+tail`` (the first ``head_tokens`` and the rest of the
budget from the end; Sun et al. 2019 found it best for IMDb). Special tokens are not part
of the budget's choice: tokenizers add them around the kept ids. Pure Python, light."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

TRUNCATIONS = ("head", "tail", "head+tail")


@dataclass(frozen=True)
class Truncation:
    kind: str = "head"
    head_tokens: int | None = None  # head+tail: tokens from the start (default: a quarter)

    def keep(self, ids: Sequence[int], budget: int) -> list[int]:
        """At most ``budget`` of ``ids``, chosen by ``kind``."""
        ids = list(ids)
        if len(ids) <= budget:
            return ids
        if self.kind == "head":
            return ids[:budget]
        if self.kind == "tail":
            return ids[len(ids) - budget:]
        head = min(budget, self.head_tokens if self.head_tokens is not None else budget // 4)
        return ids[:head] + ids[len(ids) - (budget - head):] if budget > head else ids[:head]

    @property
    def key(self) -> str:
        """What a token cache must be keyed by besides the length."""
        return self.kind if self.kind == "head" else f"{self.kind}:{self.head_tokens}"


HEAD = Truncation()
