"""Reading a prepared data directory: the three split CSVs, validated, and their checksums.

Whatever source prepared the directory (``sentibench prepare``), every run reads it
through here, so the same checks and the same one-line errors apply to all of them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import SentibenchError
from ..fileio import sha256_file
from .config import DataArgs

SPLIT_FILES = {"train": "train.csv", "validation": "validation.csv", "test": "test.csv"}
MANIFEST = "manifest.json"


def load_split(data_dir: Path, split: str, max_rows: int | None = None) -> pd.DataFrame:
    """One prepared split as ``text`` (str) and ``label`` (0/1 int), validated row by row."""
    if split not in SPLIT_FILES:
        raise SentibenchError(f"unknown split {split!r}; expected train, validation or test")
    path = Path(data_dir) / SPLIT_FILES[split]
    if not path.is_file():
        raise SentibenchError(f"{path}: not found; run `sentibench prepare` first")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False,
                            nrows=max_rows, encoding="utf-8")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SentibenchError(f"{path}: not a valid split CSV ({reason})") from None
    missing = [col for col in ("text", "label") if col not in frame.columns]
    if missing:
        raise SentibenchError(f"{path}: missing column(s) {', '.join(missing)}")
    bad = np.flatnonzero(~frame["label"].isin(["0", "1"]).to_numpy())
    if bad.size:
        raise SentibenchError(f"{path}: row {bad[0] + 1}: label "
                              f"{frame['label'].iat[bad[0]]!r} is not 0 or 1")
    empty = np.flatnonzero((frame["text"].str.strip() == "").to_numpy())
    if empty.size:
        raise SentibenchError(f"{path}: row {empty[0] + 1}: empty text")
    return pd.DataFrame({"text": frame["text"], "label": frame["label"].astype("int64")})


def load_splits(data: DataArgs) -> dict[str, pd.DataFrame]:
    """train/validation/test, truncated to the first N rows as the --max-* flags ask."""
    return {"train": load_split(data.data_dir, "train", data.max_train_samples),
            "validation": load_split(data.data_dir, "validation", data.max_eval_samples),
            "test": load_split(data.data_dir, "test", data.max_eval_samples)}


def check_trainable(frames: dict[str, pd.DataFrame], data: DataArgs,
                    batch_size: int | None = None) -> None:
    """Refuse, before any model is built, splits that no run can learn from or score."""
    for split, frame in frames.items():
        if frame.empty:
            raise SentibenchError(f"{Path(data.data_dir) / SPLIT_FILES[split]}: no rows "
                                  "(header only); run `sentibench prepare` again")
    train = frames["train"]
    where = Path(data.data_dir) / SPLIT_FILES["train"]
    if train["label"].nunique() < 2:
        raise SentibenchError(f"{where}: every training row has label "
                              f"{train['label'].iat[0]}; a classifier needs two classes")
    if batch_size is not None and len(train) < batch_size:
        raise SentibenchError(f"{where}: {len(train)} training rows is fewer than one batch "
                              f"of {batch_size} (--batch-size, --max-train-samples)")


def data_checksums(data_dir: str | Path) -> dict[str, str]:
    """sha256 of each split CSV by file name, recorded in every run's results."""
    sums = {}
    for name in SPLIT_FILES.values():
        path = Path(data_dir) / name
        if not path.is_file():
            raise SentibenchError(f"{path}: not found; run `sentibench prepare` first")
        sums[name] = sha256_file(path)
    return sums

