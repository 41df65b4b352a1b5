"""The one training and evaluation loop every neural model uses, and its helpers.

``config`` declares the training options; ``plan`` resolves their ``auto`` values;
``training`` holds :class:`Engine`; ``batching``, ``feature_cache``, ``fast_dropout``,
``distributed``, ``checkpoint`` and ``state`` serve it; ``inference`` scores saved models.
Importing this package is light: ``Engine`` and torch load on first use.
"""

from __future__ import annotations

from typing import Any

from sentibench.engine.config import TrainConfig

__all__ = ["Engine", "TrainConfig"]


def __getattr__(name: str) -> Any:
    if name == "Engine":
        from sentibench.engine.training import Engine

        return Engine
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
