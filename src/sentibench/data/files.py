"""Your own labelled texts: CSV, TSV, JSON Lines or Parquet files, split or to be split.

``--train FILE [--validation FILE] [--test FILE]`` uses your splits (a missing validation
or test split is cut from train with ``--split-fractions``); ``--source FILE`` is one file
cut into all three. Labels may be strings or integers; they are numbered in sorted order
(integers numerically, strings as text), and ``labels.json`` keeps the name of each id.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from pathlib import Path

import pandas as pd

from sentibench.core.errors import SentibenchError, first_line
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


def _json_lines(text: str, path: Path) -> pd.DataFrame:
    records = []
    for number, line in enumerate(text.split("\n"), 1):
        if line.strip():
            try:
                record = json.loads(line)
            except ValueError as exc:
                raise SentibenchError(f"{path}: line {number}: not a JSON record "
                                      f"({exc.msg})") from None
            if not isinstance(record, dict):
                raise SentibenchError(f"{path}: line {number}: a JSON "
                                      f"{type(record).__name__}, not an object of fields")
            records.append(record)
    return pd.DataFrame(records)


def _delimited(text: str, path: Path, sep: str) -> pd.DataFrame:
    """CSV / TSV as strings, every record with exactly the header's fields: pandas would
    take an extra field as an index column and shift the text (an unquoted comma)."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, strict=True)
    rows: list[list[str]] = []
    header: list[str] | None = None
    start = 1
    try:
        while True:
            start = reader.line_num + 1
            record = next(reader)
            if not record:
                continue  # a blank line
            if header is None:
                header = _header(record, path)
            elif len(record) != len(header):
                raise SentibenchError(
                    f"{path}: line {start}: {len(record)} fields where the header has "
                    f"{len(header)} (a {'tab' if sep == chr(9) else 'comma'} inside a text "
                    "must be quoted)")
            else:
                rows.append(record)
    except StopIteration:
        pass
    except csv.Error as exc:
        raise SentibenchError(f"{path}: line {start}: {exc} (a quote opened here is never "
                              "closed)" if "end of data" in str(exc) else
                              f"{path}: line {start}: {exc}") from None
    if header is None:
        raise SentibenchError(f"{path}: no header line")
    return pd.DataFrame(rows, columns=header, dtype=object)


def _header(record: list[str], path: Path) -> list[str]:
    names = [name.strip() for name in record]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise SentibenchError(f"{path}: the header names column {twice[0]!r} twice")
    return names


def read_table(path: Path) -> pd.DataFrame:
    """A file as a table, by its extension; one-line errors for bad files."""
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
            frame = pd.read_parquet(path)
            if frame.columns.duplicated().any():
                name = frame.columns[frame.columns.duplicated()][0]
                raise SentibenchError(f"{path}: column {name!r} occurs twice")
            return frame
        text = _decoded(path)
        if kind == "jsonl":
            return _json_lines(text, path)
        return _delimited(text, path, "\t" if kind == "tsv" else ",")
    except SentibenchError:
        raise
    except (ValueError, pd.errors.ParserError, ImportError) as exc:
        raise SentibenchError(f"{path}: cannot read as {kind} ({first_line(exc)})") from None


MISSING_LABELS = {"", "nan", "na", "n/a", "<na>", "null", "none"}  # read as "no label"


def _missing(value: object) -> bool:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return True
    return isinstance(value, str) and value.strip().lower() in MISSING_LABELS


def _texts(values: pd.Series, path: Path | str) -> list[str | None]:
    """Each text, or None where there is none; anything but a string is an error (a list
    or an object would otherwise become its Python repr)."""
    out: list[str | None] = []
    for row, value in enumerate(values.tolist(), 1):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            out.append(None)
        elif not isinstance(value, str):
            shown = repr(value)
            shown = shown if len(shown) <= 40 else shown[:37] + "..."
            raise SentibenchError(f"{path}: row {row}: the text is a "
                                  f"{type(value).__name__} ({shown}), not a string")
        else:
            out.append(value if value.strip() else None)
    return out


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def label_strings(values: list[object]) -> list[str]:
    """Labels as names: a column numeric throughout is compared as numbers (1, 1.0 and
    "1" are one class, named "1"); otherwise each label's text, stripped."""
    numbers = [_number(v) for v in values]
    if values and all(n is not None for n in numbers):
        return [str(int(n)) if n.is_integer() else repr(n) for n in numbers]  # type: ignore
    return [str(v).strip() for v in values]


def columns(frame: pd.DataFrame, path: Path | str, cfg: PrepareConfig) -> pd.DataFrame:
    """The text and label columns (``raw``: labels as names), checked row by row."""
    for flag, column in (("--text-column", cfg.text_column),
                         ("--label-column", cfg.label_column)):
        if column not in frame.columns:
            raise SentibenchError(f"{path}: no column {column!r} ({flag}); columns: "
                                  f"{', '.join(map(str, frame.columns))}")
    texts = _texts(frame[cfg.text_column], path)
    labels = frame[cfg.label_column].tolist()
    keep = []
    for row, (text, label) in enumerate(zip(texts, labels, strict=True), 1):
        if text is not None and not _missing(label):
            keep.append(row - 1)
        elif not cfg.drop_empty:
            spelled = label.strip() if isinstance(label, str) else ""
            what = "empty text" if text is None else "no label" if not spelled \
                else f"no label ({spelled!r} means a missing value)"
            raise SentibenchError(f"{path}: row {row}: {what} (--drop-empty skips such rows)")
    return pd.DataFrame({"text": [texts[i] for i in keep],
                         "raw": label_strings([labels[i] for i in keep])})


def label_names(values: list[str]) -> list[str]:
    """Sorted label names: numerically when every label is a number, else as text."""
    unique = set(values)
    if all(_number(v) is not None for v in unique):
        return sorted(unique, key=lambda v: (float(v), v))
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
