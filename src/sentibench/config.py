"""Argument dataclasses shared by every command: data selection, run output, training."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
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


PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda", "mps")
FEATURE_CACHE = ("auto", "on", "off")
SPLIT_BATCHES = ("auto", "on", "off")
FAST_DROPOUT = ("auto", "off")


@dataclass
class TrainConfig:
    """Optimisation and evaluation settings; defaults are the reference's."""

    num_epochs: int = 1
    batch_size: int = 8
    learning_rate: float = 5e-5
    weight_decay: float = 0.1
    eval_freq: int = 50
    eval_iter: int = 20
    eval_batch_size: int | None = None  # None: 64 on CUDA, the training batch size on CPU
    seed: int = 123
    device: str = "auto"
    precision: str = "auto"
    compile: bool = False
    max_steps: int | None = None
    feature_cache: str = "auto"
    feature_cache_gb: float | None = None  # None: half of the memory available at start
    save_every: int | None = None
    group_by_length: bool = False
    split_batches: str = "auto"  # length-sorted micro-batches per step; auto: on CPU only
    fast_dropout: str = "auto"  # faster CPU dropout masks, same distribution (fast_dropout.py)
    num_workers: int | None = None  # collate in worker processes; None: 2 on CUDA, else 0

    def __post_init__(self) -> None:
        for name in ("num_epochs", "batch_size", "eval_freq", "eval_iter", "eval_batch_size"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise SentibenchError(f"--{name.replace('_', '-')} must be positive")
        if not self.learning_rate > 0:
            raise SentibenchError(f"--learning-rate must be positive, got {self.learning_rate}")
        if self.num_workers is not None and self.num_workers < 0:
            raise SentibenchError("--num-workers must be zero or more")
        if self.feature_cache_gb is not None and not self.feature_cache_gb >= 0:
            raise SentibenchError("--feature-cache-gb must be zero or more")
        if self.feature_cache not in FEATURE_CACHE:
            raise SentibenchError(f"--feature-cache must be one of {', '.join(FEATURE_CACHE)}")
        if self.split_batches not in SPLIT_BATCHES:
            raise SentibenchError(f"--split-batches must be one of {', '.join(SPLIT_BATCHES)}")
        if self.fast_dropout not in FAST_DROPOUT:
            raise SentibenchError(f"--fast-dropout must be one of {', '.join(FAST_DROPOUT)}")
        if self.precision not in PRECISIONS:
            raise SentibenchError(f"--precision must be one of {', '.join(PRECISIONS)}")
        if self.device not in DEVICES and not self.device.startswith("cuda:"):
            raise SentibenchError(f"--device must be one of {', '.join(DEVICES)} or cuda:N")

    def to_dict(self) -> dict:
        return asdict(self)
