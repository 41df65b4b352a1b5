"""Argument dataclasses shared by every command (data selection and run output)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .errors import SentibenchError

DEFAULT_DATA_DIR = Path("data/imdb")


@dataclass
class DataArgs:
    """Which prepared split to read, and HF-style debugging limits on its size."""

    data_dir: Path = DEFAULT_DATA_DIR
    max_train_samples: int | None = None
    max_eval_samples: int | None = None

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)
        for name in ("max_train_samples", "max_eval_samples"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                flag = "--" + name.replace("_", "-")
                raise SentibenchError(f"{flag} must be a positive integer, got {value}")


@dataclass
class RunArgs:
    """Where a run writes its artefacts and how it was invoked."""

    out: Path | None = None
    command: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.out is not None:
            self.out = Path(self.out)
