"""Reading a prepared data directory: the three split CSVs, validated, and their checksums.

Whatever source prepared the directory (``sentibench prepare``), every run reads it
through here, so the same checks and the same one-line errors apply to all of them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from sentibench.core.errors import SentibenchError, first_line
from sentibench.core.fileio import sha256_file
from sentibench.data.config import DEFAULT_LABEL_NAMES, DataArgs

SPLIT_FILES = {"train": "train.csv", "validation": "validation.csv", "test": "test.csv"}
MANIFEST = "manifest.json"
LABELS_FILE = "labels.json"


def dataset_name(data_dir: str | Path) -> str:
    """The data set a directory was prepared from (its manifest's ``dataset``): ``imdb`` for
    directories prepared before the name was recorded, ``custom`` without a manifest."""
    try:
        manifest = json.loads((Path(data_dir) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "custom"
    return str(manifest.get("dataset", "imdb")) if isinstance(manifest, dict) else "custom"


def read_label_names(data_dir: str | Path) -> list[str]:
    """The name of each label id (``labels.json``), in id order."""
    path = Path(data_dir) / LABELS_FILE
    if not path.is_file():
        return list(DEFAULT_LABEL_NAMES)
    try:
        names = json.loads(path.read_text(encoding="utf-8"))["names"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SentibenchError(f"{path}: not a labels file ({type(exc).__name__})") from None
    if (not isinstance(names, list) or len(names) < 2 or len(set(names)) != len(names)
            or not all(isinstance(n, str) and n for n in names)):
        raise SentibenchError(f"{path}: 'names' must list two or more distinct label names")
    return names


def load_split(data_dir: Path, split: str, max_rows: int | None = None,
               num_classes: int = 2) -> pd.DataFrame:
    """One prepared split as ``text`` (str) and ``label`` (int id), validated row by row."""
    if split not in SPLIT_FILES:
        raise SentibenchError(f"unknown split {split!r}; expected train, validation or test")
    path = Path(data_dir) / SPLIT_FILES[split]
    if not path.is_file():
        raise SentibenchError(f"{path}: not found; run `sentibench prepare` first")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False,
                            nrows=max_rows, encoding="utf-8")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise SentibenchError(f"{path}: not a valid split CSV ({first_line(exc)})") from None
    missing = [col for col in ("text", "label") if col not in frame.columns]
    if missing:
        raise SentibenchError(f"{path}: missing column(s) {', '.join(missing)}")
    ids = [str(i) for i in range(num_classes)]
    bad = np.flatnonzero(~frame["label"].isin(ids).to_numpy())
    if bad.size:
        allowed = "0 or 1" if num_classes == 2 else f"an id from 0 to {num_classes - 1}"
        raise SentibenchError(f"{path}: row {bad[0] + 1}: label "
                              f"{frame['label'].iat[bad[0]]!r} is not {allowed}")
    empty = np.flatnonzero((frame["text"].str.strip() == "").to_numpy())
    if empty.size:
        raise SentibenchError(f"{path}: row {empty[0] + 1}: empty text")
    return pd.DataFrame({"text": frame["text"], "label": frame["label"].astype("int64")})


def load_splits(data: DataArgs) -> dict[str, pd.DataFrame]:
    """train/validation/test, truncated to the first N rows as the --max-* flags ask, the
    training rows cut to ``--train-subset`` where asked (validation and test never are)."""
    k = len(read_label_names(data.data_dir))
    train = load_split(data.data_dir, "train", data.max_train_samples, k)
    if data.train_subset is not None:
        rows = subset_rows(train["label"].to_numpy(), data, k)
        train = train.iloc[rows].reset_index(drop=True)
    return {"train": train,
            "validation": load_split(data.data_dir, "validation", data.max_eval_samples, k),
            "test": load_split(data.data_dir, "test", data.max_eval_samples, k)}


def nested_order(labels: np.ndarray, seed: int, num_classes: int) -> list[np.ndarray]:
    """Each class's row positions in a seeded random order (classes in id order, one
    generator): the first N of each are that class's rows of every subset drawn with
    ``seed``, which is what makes the subsets nested."""
    rng = np.random.default_rng(seed)
    return [rng.permutation(np.flatnonzero(labels == c)) for c in range(num_classes)]


def subset_rows(labels: np.ndarray, data: DataArgs, num_classes: int) -> np.ndarray:
    """The training rows (positions in the split as read, ascending) that
    ``--train-subset`` keeps.

    Per class: the first N of each class's seeded order. In all: every row gets the key
    (rank in its class + 0.5) / rows of its class, and the N smallest keys are kept (ties
    by class id), so any N keeps each class in its share of the split (within one row),
    and the rows of a smaller N are always among those of a larger one."""
    size, where = int(data.train_subset or 0), Path(data.data_dir) / SPLIT_FILES["train"]
    orders = nested_order(labels, data.subset_seed, num_classes)
    if data.per_class:
        short = [c for c, order in enumerate(orders) if len(order) < size]
        if short:
            raise SentibenchError(f"--train-subset {size} per class: {where} has only "
                                  f"{len(orders[short[0]])} training rows of label "
                                  f"{short[0]}")
        return np.sort(np.concatenate([order[:size] for order in orders]))
    if size > len(labels):
        raise SentibenchError(f"--train-subset {size}: {where} has only {len(labels)} "
                              "training rows")
    keys = np.concatenate([(np.arange(len(order)) + 0.5) / len(order) for order in orders])
    classes = np.concatenate([np.full(len(order), c) for c, order in enumerate(orders)])
    rows = np.concatenate(orders)
    chosen = np.lexsort((classes, keys))[:size]
    return np.sort(rows[chosen])


def subset_record(data: DataArgs) -> dict | None:
    """What a run records of its ``--train-subset`` draw (None without one): the options,
    rows per class and the positions of the rows kept, read again from train.csv."""
    if data.train_subset is None:
        return None
    k = len(read_label_names(data.data_dir))
    labels = load_split(data.data_dir, "train", data.max_train_samples, k)["label"].to_numpy()
    rows = subset_rows(labels, data, k)
    return {"size": data.train_subset, "per_class": data.per_class, "seed": data.subset_seed,
            "class_counts": np.bincount(labels[rows], minlength=k).tolist(),
            "rows": rows.tolist()}


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


def class_weights(data: DataArgs, train: pd.DataFrame, num_classes: int
                  ) -> list[float] | None:
    """The per-class loss weights that ``--class-weights`` asks for (None: unweighted)."""
    if data.class_weights == "none":
        return None
    from sentibench.core.metrics import balanced_class_weights

    return balanced_class_weights(train["label"].to_numpy(), num_classes)


def data_checksums(data_dir: str | Path) -> dict[str, str]:
    """sha256 of each split CSV by file name, recorded in every run's results."""
    sums = {}
    for name in SPLIT_FILES.values():
        path = Path(data_dir) / name
        if not path.is_file():
            raise SentibenchError(f"{path}: not found; run `sentibench prepare` first")
        sums[name] = sha256_file(path)
    return sums

