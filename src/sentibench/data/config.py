"""The data options: which prepared split to read, and how ``prepare`` makes one."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from sentibench.core.errors import SentibenchError
from sentibench.core.options import option, validate
from sentibench.data.download import HEX_DIGITS, OFFICIAL_MD5, OFFICIAL_URL, normalize_digest

DEFAULT_DATA_DIR = Path("data/imdb")
# IMDb's label names, and those of a directory prepared before labels.json existed
DEFAULT_LABEL_NAMES = ("negative", "positive")
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
    class_weights: str = option(
        "none", "balanced: weigh each class's loss by rows / (classes x rows of the class) in "
                "the training split (imbalanced data); none: every row alike",
        choices=("none", "balanced"))
    train_subset: int | None = option(
        None, "train on N labelled rows of train.csv (after --max-train-samples), drawn "
              "stratified by class with --subset-seed; nested: with one seed every smaller "
              "subset lies inside every larger one (learning curves)", above=0)
    per_class: bool = option(
        False, "--train-subset N counts rows per class (N of each class) instead of in all")
    subset_seed: int = option(0, "the seed of the --train-subset draw", minimum=0)

    def __post_init__(self) -> None:
        validate(self)


DATASETS = ("imdb", "sms-spam", "files")  # and hf:NAME[:CONFIG]


def _check_finite_fractions(text: str) -> None:
    """A nan or inf share passes the later "positive, sum to 1" test (every comparison with
    NaN is false), so it is refused here, when the flag is read."""
    for part in text.split(","):
        try:
            number = float(part)
        except ValueError:
            continue  # not a number at all: parse_fractions says what it expects
        if not math.isfinite(number):
            raise SentibenchError(f"--split-fractions {text!r}: three positive fractions "
                                  "that sum to 1 (train, validation, test); got "
                                  f"{part.strip()}")


@dataclass
class PrepareConfig:
    """What ``sentibench prepare`` does; the sizes are the reference's 35k/5k(/10k)."""

    dataset: str = option("imdb", "imdb (the reference's split), sms-spam (the book's ch06 "
                                  "split), files (your own --train/--source files) or "
                                  "hf:NAME[:CONFIG] (a Hugging Face data set; needs "
                                  "sentibench[datasets])")
    source: str | None = option(
        None, f"imdb: archive URL or local .tar.gz (default: env {SOURCE_ENV}, else the "
              "official Stanford URL); sms-spam: the UCI zip or SMSSpamCollection (default: "
              "download); files: one file to cut into train/validation/test")
    data_dir: Path | None = option(None, "where to write the CSVs (default: data/<dataset>)")
    md5: str | None = option(None, "expected md5 of a custom archive")
    sha256: str | None = option(None, "expected sha256 of a custom archive")
    split: str = option("reference", "imdb: reference = pooled 50k double-shuffled "
                                     "35k/5k/10k; official = movie-disjoint 25k train (minus "
                                     "validation) / 25k test", choices=SPLIT_KINDS)
    dedupe: bool = option(False, "imdb: drop exact duplicate review texts before splitting")
    balance: str = option("book", "sms-spam: book = all spam and as many ham (the book's); "
                                  "none = all 5,572 messages, stratified",
                          choices=("book", "none"))
    train: Path | None = option(None, "files: the training file (.csv, .tsv, .jsonl, "
                                      ".parquet)")
    validation: Path | None = option(None, "files: the validation file (default: cut from "
                                           "train)")
    test: Path | None = option(None, "files: the test file (default: cut from train)")
    text_column: str = option("text", "files / hf: the column holding the text")
    label_column: str = option("label", "files / hf: the column holding the label (strings "
                                        "or integers)")
    split_fractions: str = option("0.7,0.1,0.2", "files / hf: train,validation,test shares "
                                                 "for splits that are cut")
    seed: int = option(123, "files / hf: the seed of the cut")
    stratify: bool = option(False, "files / hf: cut each class in the same proportions")
    drop_empty: bool = option(False, "files / hf: skip rows with empty text (default: an "
                                     "error naming the row)")
    force: bool = option(False, "rewrite even if the outputs are current")
    train_size: int = option(35_000, "training rows (reference split)", above=0, cli=False)
    validation_size: int = option(5_000, "validation rows", above=0, cli=False)

    def __post_init__(self) -> None:
        validate(self)
        if self.dataset not in DATASETS and not (self.dataset.startswith("hf:")
                                                 and len(self.dataset) > 3):
            raise SentibenchError(f"--dataset must be one of {', '.join(DATASETS)} or "
                                  f"hf:NAME[:CONFIG], got {self.dataset!r}")
        if self.data_dir is None:
            name = self.dataset.removeprefix("hf:").split(":")[0].replace("/", "-")
            self.data_dir = Path("data") / name
        for algo in HEX_DIGITS:
            setattr(self, algo, normalize_digest(algo, getattr(self, algo)))
        _check_finite_fractions(self.split_fractions)
        if self.dataset != "imdb":
            return
        if not self.source:
            self.source = os.environ.get(SOURCE_ENV) or OFFICIAL_URL
        if self.source == OFFICIAL_URL and self.md5 is None and self.sha256 is None:
            self.md5 = OFFICIAL_MD5
