"""The data options: which prepared split to read, and how ``prepare`` makes one."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..options import option, validate
from .download import HEX_DIGITS, OFFICIAL_MD5, OFFICIAL_URL, normalize_digest

DEFAULT_DATA_DIR = Path("data/imdb")
SOURCE_ENV = "SENTIBENCH_IMDB_SOURCE"
SPLIT_KINDS = ("reference", "official")


@dataclass
class DataArgs:
    """Which prepared split to read, and HF-style debugging limits on its size."""

    data_dir: Path = option(DEFAULT_DATA_DIR,
                            "folder with train.csv, validation.csv, test.csv")
    max_train_samples: int | None = option(
        None, "use only the first N rows of train.csv (debugging / quick runs)", above=0)
    max_eval_samples: int | None = option(
        None, "use only the first N rows of validation.csv and of test.csv", above=0)

    def __post_init__(self) -> None:
        validate(self)


@dataclass
class PrepareConfig:
    """What ``sentibench prepare`` does; the sizes are the reference's 35k/5k(/10k)."""

    source: str | None = option(
        None, f"archive URL or local .tar.gz (default: env {SOURCE_ENV}, else the official "
              "Stanford URL)")
    data_dir: Path = option(DEFAULT_DATA_DIR, "where to write the CSVs")
    md5: str | None = option(None, "expected md5 of a custom archive")
    sha256: str | None = option(None, "expected sha256 of a custom archive")
    split: str = option("reference", "reference: pooled 50k double-shuffled 35k/5k/10k; "
                                     "official: movie-disjoint 25k train (minus validation) / "
                                     "25k test", choices=SPLIT_KINDS)
    dedupe: bool = option(False, "drop exact duplicate review texts before splitting")
    force: bool = option(False, "rewrite even if the outputs are current")
    train_size: int = option(35_000, "training rows (reference split)", above=0, cli=False)
    validation_size: int = option(5_000, "validation rows", above=0, cli=False)

    def __post_init__(self) -> None:
        validate(self)
        for algo in HEX_DIGITS:
            setattr(self, algo, normalize_digest(algo, getattr(self, algo)))
        if not self.source:
            self.source = os.environ.get(SOURCE_ENV) or OFFICIAL_URL
        if self.source == OFFICIAL_URL and self.md5 is None and self.sha256 is None:
            self.md5 = OFFICIAL_MD5
