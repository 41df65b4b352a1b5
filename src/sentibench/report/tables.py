"""Tables and plots for a bench directory, built from its ``results.json`` files alone.

A bench directory holds one run directory per experiment (``BENCH_DIR/<row>/results.json``)
and optionally ``failures.json`` ({row: one-line error}). Reports are pure functions of
those files: nothing here reads the clock, so rebuilding gives byte-identical Markdown and
CSV. Rows follow the reference's table order, and every row shows the reference's own test
accuracy and training time beside ours so the gap is visible at a glance.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from sentibench.models.registry import MODELS
from sentibench.report.compare import RunStats, format_stats, run_stats
from sentibench.report.curves import curve_lines, headline_rows
from sentibench.report.rows import Row, load_rows, one_line, sort_rows
from sentibench.report.seeds import grouped, spread
from sentibench.report.tuning import tuning_lines
from sentibench.report.units import NONE, human_count, human_seconds, percent
from sentibench.report.verdict import mean_test_accuracy, ordered_stats, rank_key, verdict
from sentibench.run.results import RunResult

MARKDOWN_FILE = "results.md"
CSV_FILE = "results.csv"
_NONE = NONE
__all__ = ["human_count", "human_seconds", "percent", "load_rows", "format_table",
           "format_markdown", "format_csv", "intro"]
_COLUMNS = ("model", "params", "trainable", "train acc", "val acc", "test acc", "test F1",
            "train time", "device", "ref. test acc", "ref. time", "status")
_TEXT_COLUMNS = ("model", "device", "status")
_CSV_COLUMNS = ("run", "model", "status", "params", "trainable_params", "train_accuracy",
                "validation_accuracy", "test_accuracy", "test_macro_f1", "train_seconds",
                "total_seconds",
                "device", "device_name", "max_train_samples", "max_eval_samples",
                "ref_test_accuracy", "ref_train_seconds")


def device_label(env: Mapping[str, Any]) -> str:
    device = str(env.get("device") or "")
    name = env.get("device_name")
    return f"{device} ({name})" if name else device


def data_slice(result: RunResult) -> tuple[int | None, int | None]:
    """(max_train_samples, max_eval_samples) wherever the run recorded them."""
    for source in (result.config.get("data"), result.config):
        if isinstance(source, Mapping) and (
                source.get("max_train_samples") is not None
                or source.get("max_eval_samples") is not None):
            return source.get("max_train_samples"), source.get("max_eval_samples")
    return None, None


def _reference_cells(row: Row) -> list[str]:
    """Blank for models the reference never ran; '–' where it ran them without a time."""
    ref = row.reference
    if ref is None:
        return ["", ""]
    time = human_seconds(ref.train_minutes * 60) if ref.train_minutes is not None else _NONE
    return [percent(ref.test_accuracy), time]


def test_macro_f1(res: RunResult) -> float | None:
    """Test macro-F1 (results written before metrics were recorded have none)."""
    return res.metrics.get("test", {}).get("macro_f1") if res.metrics else None


def _macro_f1_cell(res: RunResult) -> str:
    value = test_macro_f1(res)
    return percent(value) if value is not None else _NONE


def _name_cell(row: Row) -> str:
    return row.name if row.model == row.name else f"{row.name} ({row.model})"


def _cells(row: Row) -> list[str]:
    res = row.result
    if res is None:
        numbers = [""] * 8
    else:
        acc = res.accuracy
        numbers = [human_count(res.params), human_count(res.trainable_params),
                   percent(acc["train"]), percent(acc["validation"]), percent(acc["test"]),
                   _macro_f1_cell(res), human_seconds(res.train_seconds),
                   device_label(res.environment)]
    cells = [_name_cell(row), *numbers, *_reference_cells(row), row.status]
    return [one_line(c).replace("|", "\\|") for c in cells]


def _as_rows(results: Iterable[RunResult | Row], failures: Mapping[str, str] | None) -> list[Row]:
    rows = [r if isinstance(r, Row) else Row(r.model, r) for r in results]
    names = {r.name for r in rows}
    rows += [Row(n, None, f"failed: {one_line(m)}") for n, m in (failures or {}).items()
             if n not in names]
    return sort_rows(rows)


def _entry_key(entry: Row | tuple[str, list[Row]]) -> tuple[int, float, float, str]:
    """A row ranks by its test accuracy, a seeded row by its mean over seeds."""
    if isinstance(entry, Row):
        return rank_key(entry)
    name, members = entry
    seconds = float(np.mean([m.result.train_seconds for m in members]))
    return (0, -mean_test_accuracy(members), seconds, name)


def format_table(results: Iterable[RunResult | Row],
                 failures: Mapping[str, str] | None = None) -> str:
    """The Markdown results table (for the terminal and for results.md), best test
    accuracy first, rows without numbers last.

    Plain RunResults are named by their ``model``; :func:`load_rows` rows keep their run
    directory names. ``failures`` ({row: message}) adds rows with no numbers.
    """
    rows = _as_rows(results, failures)
    lines = ["| " + " | ".join(_COLUMNS) + " |",
             "|" + "|".join(":---" if c in _TEXT_COLUMNS else "---:" for c in _COLUMNS) + "|"]
    entries = sorted(grouped(rows), key=_entry_key)
    lines += ["| " + " | ".join(_cells(entry) if isinstance(entry, Row) else
                                _group_cells(*entry)) + " |" for entry in entries]
    return "\n".join(lines) + "\n"


def _group_cells(name: str, members: list[Row]) -> list[str]:
    results = [m.result for m in members]
    first = results[0]
    f1 = [test_macro_f1(r) for r in results]
    numbers = [human_count(first.params), human_count(first.trainable_params),
               *(spread([r.accuracy[s] for r in results])
                 for s in ("train", "validation", "test")),
               spread(f1) if None not in f1 else _NONE,
               human_seconds(float(np.mean([r.train_seconds for r in results]))),
               device_label(first.environment)]
    cells = [f"{name} ({first.model})" if first.model != name else name, *numbers,
             *_reference_cells(members[0]), f"ok, {len(members)} seeds"]
    return [one_line(c).replace("|", "\\|") for c in cells]


_COLUMNS_NOTE = """\
Columns: **params** all parameters, **trainable** those updated in training; **train / val /
test acc** accuracy in percent on the train, validation and test splits after training;
**test F1** the macro-F1 on test (the mean over classes of each class's F1); **train time**
wall time of the training loop only (evaluation and loading excluded); **device** where it
ran; {reference} **status** `ok`, or why the row has no numbers. Rows run from the best test
accuracy down (the cheaper to train first among equals); a row run over several seeds shows
mean ± standard deviation (min–max) over its seeds."""
_REFERENCE_NOTES = {
    "imdb": "**ref. test acc** and **ref. time** the reference experiment's published figures "
            f"for the same model on IMDb (blank: not in the reference; {NONE}: no time "
            "reported; its GPU is not named);",
    "sms-spam": "**ref. test acc** and **ref. time** the book's published figures (its "
                "chapter 6) for the same model on this split, or for an ablation row the "
                f"book's figures for that row (blank: none published; {NONE}: no time "
                "reported);",
}
_NO_REFERENCE = "**ref. test acc** and **ref. time** stay blank: nothing is published for " \
                "this data set;"


def dataset_of(rows: Sequence[Row]) -> str:
    return rows[0].data if rows else "imdb"


def intro(rows: Sequence[Row]) -> tuple[str, str]:
    """(what the data set is, what the columns mean), in Markdown: the data set decides
    which published figures the reference columns hold, so the text depends on it."""
    results = [row.result for row in rows if row.result is not None]
    dataset = dataset_of(rows)
    labels = results[0].labels if results else ["negative", "positive"]
    what = "IMDb binary sentiment (chance 50 %)." if dataset == "imdb" else \
        f"Data set `{dataset}`, {len(labels)} classes ({', '.join(labels)})."
    reference = _REFERENCE_NOTES.get(dataset, _NO_REFERENCE)
    return what, _COLUMNS_NOTE.format(reference=reference)


def _slice_note(row: Row) -> str | None:
    """A caveat for runs limited by max_train_samples / max_eval_samples, else None."""
    train_n, eval_n = data_slice(row.result) if row.result is not None else (None, None)
    if train_n is None and eval_n is None:
        return None
    counts = row.result.data.get("rows") if isinstance(row.result.data, Mapping) else None
    used = ", ".join(f"{k} {v}" for k, v in counts.items()) if isinstance(counts, Mapping) else ""
    return (f"- `{row.name}` ran on a data slice: max_train_samples={train_n}, "
            f"max_eval_samples={eval_n}" + (f" (rows used: {used})" if used else "")
            + "; its accuracies are not comparable with full-split numbers.")


def _notes(rows: Sequence[Row]) -> list[str]:
    """Data-slice caveats and what each model is, so the table cannot be misread."""
    slices = [note for note in map(_slice_note, rows) if note is not None]
    out = ["", "## Data slices", "", *slices] if slices else []
    out += ["", "## Models", ""]
    for row in rows:
        spec = MODELS.get(row.model)
        what = spec.summary if spec is not None else "custom model (not in the registry)"
        extra = "".join(f"; {part}" for part in (row.note, _published(row)) if part)
        out.append(f"- `{row.name}`: {one_line(what + extra)}")
    return out


def _published(row: Row) -> str | None:
    """A preset's own published figures for the row, train and validation included."""
    ref = row.plan_reference
    if ref is None or ref.train_accuracy is None or ref.validation_accuracy is None:
        return None
    return (f"published (row {ref.row}): train {percent(ref.train_accuracy)}, validation "
            f"{percent(ref.validation_accuracy)}, test {percent(ref.test_accuracy)}")


def format_markdown(rows: Sequence[Row], all_stats: Sequence[RunStats] | None = None) -> str:
    """The whole results.md: verdict, data set, table, statistics, notes. Deterministic: no
    dates, no paths. ``all_stats``: :func:`sentibench.report.compare.run_stats` of the rows
    (computed here if not given)."""
    all_stats = run_stats(headline_rows(rows)) if all_stats is None else all_stats
    what, columns = intro(rows)
    parts = ["# sentibench results\n", verdict(rows, all_stats) + "\n", f"{what} {columns}\n",
             format_table(rows).rstrip("\n"),
             *format_stats(ordered_stats(all_stats, rows)), *tuning_lines(rows),
             *curve_lines(rows), *_notes(rows)]
    return "\n".join(parts) + "\n"


def _csv_record(row: Row) -> list[Any]:
    ref, res = row.reference, row.result
    ref_acc = ref.test_accuracy if ref else None
    ref_s = round(ref.train_minutes * 60, 3) if ref and ref.train_minutes is not None else None
    values: list[Any] = [None] * 12
    if res is not None:
        train_n, eval_n = data_slice(res)
        acc = res.accuracy
        values = [res.params, res.trainable_params, float(acc["train"]),
                  float(acc["validation"]), float(acc["test"]), test_macro_f1(res),
                  float(res.train_seconds),
                  float(res.total_seconds), res.environment.get("device"),
                  res.environment.get("device_name"), train_n, eval_n]
    return [row.name, row.model, row.status, *values, ref_acc, ref_s]  # csv: None -> ''


def format_csv(rows: Sequence[Row]) -> str:
    """Machine-readable twin of the table: accuracies as fractions, times in seconds."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(_CSV_COLUMNS)
    writer.writerows(_csv_record(row) for row in rows)
    return buffer.getvalue()
