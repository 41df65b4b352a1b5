"""Your own labelled texts: CSV, TSV, JSON Lines or Parquet files, split or to be split.

``--train FILE [--validation FILE] [--test FILE]`` uses your splits (a missing validation
or test split is cut from train with ``--split-fractions``); ``--source FILE`` is one file
cut into all three. Labels may be strings or integers; they are numbered in sorted order
(integers numerically, strings as text), and ``labels.json`` keeps the name of each id.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pandas as pd

from sentibench.core.errors import SentibenchError
from sentibench.data.config import PrepareConfig
from sentibench.data.download import file_digests
from sentibench.data.prepared import (
    check_parts,
    cut,
    new_manifest,
    report,
    stratified_split,
    write_prepared,
)

READERS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".parquet": "parquet"}


def _decoded(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise SentibenchError(f"{path}: line {line}: not valid UTF-8 (byte "
                              f"{raw[exc.start]:#04x})") from None


def _json_lines(text: str, path: Path) -> list[dict]:
    records = []
    for number, line in enumerate(text.split("\n"), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except ValueError as exc:
                raise SentibenchError(f"{path}: line {number}: not a JSON record "
                                      f"({exc.msg})") from None
    return records


def read_table(path: Path) -> pd.DataFrame:
    """A file as a table of strings, by its extension; one-line errors for bad files."""
    kind = READERS.get(path.suffix.lower())
    if kind is None:
        raise SentibenchError(f"{path}: unknown file type {path.suffix!r}; use one of "
                              f"{', '.join(READERS)}")
    if not path.is_file():
        raise SentibenchError(f"{path}: not found")
    if path.stat().st_size == 0:
        raise SentibenchError(f"{path}: empty file")
    try:
        if kind == "parquet":
            return pd.read_parquet(path)
        text = _decoded(path)
        if kind == "jsonl":
            return pd.DataFrame(_json_lines(text, path))
        return pd.read_csv(io.StringIO(text), sep="\t" if kind == "tsv" else ",", dtype=str,
                           keep_default_na=False, na_filter=False)
    except SentibenchError:
        raise
    except (ValueError, pd.errors.ParserError, ImportError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SentibenchError(f"{path}: cannot read as {kind} ({reason})") from None


def columns(frame: pd.DataFrame, path: Path | str, cfg: PrepareConfig) -> pd.DataFrame:
    """The text and label columns (``raw``: labels as text), checked row by row."""
    for flag, column in (("--text-column", cfg.text_column),
                         ("--label-column", cfg.label_column)):
        if column not in frame.columns:
            raise SentibenchError(f"{path}: no column {column!r} ({flag}); columns: "
                                  f"{', '.join(map(str, frame.columns))}")
    text = frame[cfg.text_column]
    empty = text.isna() | (text.astype(str).str.strip() == "")
    if empty.any() and not cfg.drop_empty:
        row = int(empty.to_numpy().nonzero()[0][0]) + 1
        raise SentibenchError(f"{path}: row {row}: empty text (--drop-empty skips such rows)")
    labels = frame[cfg.label_column]
    unlabelled = (labels.isna() | (labels.astype(str).str.strip() == "")) & ~empty
    if unlabelled.any():  # rows that --drop-empty skips need no label
        row = int(unlabelled.to_numpy().nonzero()[0][0]) + 1
        raise SentibenchError(f"{path}: row {row}: no label")
    keep = ~empty
    return pd.DataFrame({"text": text[keep].astype(str).to_numpy(),
                         "raw": labels[keep].astype(str).str.strip().to_numpy()})


def label_names(values: list[str]) -> list[str]:
    """Sorted label names: numerically when every label is an integer, else as text."""
    unique = set(values)
    if all(v.lstrip("-").isdigit() for v in unique):
        return sorted(unique, key=lambda v: (int(v), v))  # "01" and "1" stay distinct
    return sorted(unique)


def parse_fractions(text: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise SentibenchError(f"--split-fractions {text!r}: expected three numbers such as "
                              "0.7,0.1,0.2") from None
    if len(parts) != 3 or min(parts) <= 0 or abs(sum(parts) - 1) > 1e-6:
        raise SentibenchError(f"--split-fractions {text!r}: three positive fractions that "
                              "sum to 1 (train, validation, test)")
    return parts  # type: ignore[return-value]


def _cut(frame: pd.DataFrame, fractions: tuple[float, float, float], seed: int,
         stratify: bool) -> dict[str, pd.DataFrame]:
    if stratify:
        return stratified_split(frame, fractions[:2], seed, column="raw")
    return cut(frame.sample(frac=1, random_state=seed).reset_index(drop=True), fractions)


def _inputs(cfg: PrepareConfig) -> dict[str, Path]:
    if cfg.source and cfg.train:
        raise SentibenchError("give either --source FILE (cut into three splits) or --train "
                              "FILE [--validation FILE] [--test FILE], not both")
    if not (cfg.source or cfg.train):
        raise SentibenchError("--dataset files needs --train FILE (and optionally "
                              "--validation / --test) or --source FILE")
    given = {"train": cfg.train, "validation": cfg.validation, "test": cfg.test}
    if cfg.source:
        given = {"all": Path(cfg.source)}
    return {split: Path(p).expanduser() for split, p in given.items() if p is not None}


def _split(tables: dict[str, pd.DataFrame], cfg: PrepareConfig) -> dict[str, pd.DataFrame]:
    """Use the given splits; cut what is missing from the training (or only) file."""
    fractions = parse_fractions(cfg.split_fractions)
    if "all" in tables or set(tables) == {"train"}:
        return _cut(tables.get("all", tables.get("train")), fractions, cfg.seed, cfg.stratify)
    missing = [s for s in ("validation", "test") if s not in tables]
    if not missing:
        return {s: tables[s] for s in ("train", "validation", "test")}
    (absent,) = missing  # cut it off train, in its share of train + it
    share = fractions[1 if absent == "validation" else 2]
    share /= fractions[0] + share
    cut = _cut(tables["train"], (1 - share, share, 0.0), cfg.seed, cfg.stratify)
    given = "test" if absent == "validation" else "validation"
    parts = {"train": cut["train"], given: tables[given],
             absent: pd.concat([cut["validation"], cut["test"]]).reset_index(drop=True)}
    return {s: parts[s] for s in ("train", "validation", "test")}  # the summary's order


def prepare_files(cfg: PrepareConfig) -> dict:
    started = time.perf_counter()
    inputs = _inputs(cfg)
    tables = {split: columns(read_table(path), path, cfg) for split, path in inputs.items()}
    source_id = {split: file_digests(path)["sha256"] for split, path in inputs.items()}
    return finish(cfg, "files", tables, ", ".join(str(p) for p in inputs.values()), source_id,
                  started, inputs={s: str(p) for s, p in inputs.items()})


def finish(cfg: PrepareConfig, dataset: str, tables: dict[str, pd.DataFrame], where: str,
           source_id: dict, started: float, names: list[str] | None = None,
           **extra: object) -> dict:
    """Number the labels, complete the splits, check and write them (any table source)."""
    names = names or label_names([v for t in tables.values() for v in t["raw"]])
    ids = {name: i for i, name in enumerate(names)}
    parts = {split: pd.DataFrame({"text": part["text"].to_numpy(),
                                  "label": part["raw"].map(ids).to_numpy()})
             for split, part in _split(tables, cfg).items()}
    check_parts(parts, names, where)
    options = {k: getattr(cfg, k) for k in ("text_column", "label_column", "split_fractions",
                                            "seed", "stratify", "drop_empty")}
    manifest = new_manifest(dataset, where, source_id, options, parts, **extra)
    write_prepared(cfg.data_dir, parts, names, manifest)
    report(cfg.data_dir, f"{len(names)} classes from {where}", parts, names, started)
    return manifest
