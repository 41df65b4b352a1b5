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
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sentibench.core.fileio import atomic_write_text
from sentibench.models.registry import MODELS
from sentibench.report.plots import (
    ACCURACY_PLOT,
    LOSS_PLOT,
    plot_accuracy_vs_time,
    plot_loss_curves,
)
from sentibench.report.rows import Row, load_rows, one_line, sort_rows
from sentibench.run.results import SEED_SUFFIX, RunResult

MARKDOWN_FILE = "results.md"
CSV_FILE = "results.csv"
_NONE = "–"
_COLUMNS = ("model", "params", "trainable", "train acc", "val acc", "test acc", "test F1",
            "train time", "device", "ref. test acc", "ref. time", "status")
_TEXT_COLUMNS = ("model", "device", "status")
_CSV_COLUMNS = ("run", "model", "status", "params", "trainable_params", "train_accuracy",
                "validation_accuracy", "test_accuracy", "test_macro_f1", "train_seconds",
                "total_seconds",
                "device", "device_name", "max_train_samples", "max_eval_samples",
                "ref_test_accuracy", "ref_train_seconds")


def human_count(n: int | None) -> str:
    """124439808 -> '124.4M', as papers and the reference write parameter counts."""
    if n is None:
        return _NONE
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= size:
            return f"{n / size:.1f}{suffix}"
    return str(n)


def human_seconds(seconds: float | None) -> str:
    """Seconds below a minute, minutes (the reference's unit) below two hours, then hours."""
    if seconds is None:
        return _NONE
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.2f} min"
    return f"{seconds / 3600:.2f} h"


def percent(fraction: float) -> str:
    return f"{fraction * 100:.2f}"


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


def format_table(results: Iterable[RunResult | Row],
                 failures: Mapping[str, str] | None = None) -> str:
    """The Markdown results table (for the terminal and for results.md).

    Plain RunResults are named by their ``model``; :func:`load_rows` rows keep their run
    directory names. ``failures`` ({row: message}) adds rows with no numbers.
    """
    rows = _as_rows(results, failures)
    lines = ["| " + " | ".join(_COLUMNS) + " |",
             "|" + "|".join(":---" if c in _TEXT_COLUMNS else "---:" for c in _COLUMNS) + "|"]
    lines += ["| " + " | ".join(_cells(entry) if isinstance(entry, Row) else
                                _group_cells(*entry)) + " |" for entry in _grouped(rows)]
    return "\n".join(lines) + "\n"


_SEED_RUN = re.compile(rf"^(?P<row>.+){re.escape(SEED_SUFFIX)}(?P<seed>-?\d+)$")


def _grouped(rows: Sequence[Row]) -> list[Row | tuple[str, list[Row]]]:
    """The finished runs of one row over several seeds (``<row>-seed<N>``) become one
    entry, in the place of its first run; every other row stays as it is."""
    groups: dict[str, list[Row]] = {}
    for row in rows:
        match = _SEED_RUN.match(row.name)
        if match and row.result is not None:
            groups.setdefault(match["row"], []).append(row)
    out: list[Row | tuple[str, list[Row]]] = []
    for row in rows:
        match = _SEED_RUN.match(row.name)
        members = groups.get(match["row"], []) if match else []
        if len(members) < 2:
            out.append(row)
        elif members[0] is row:
            out.append((match["row"], members))
    return out


def _spread(values: Sequence[float]) -> str:
    """Mean ± sample standard deviation (range), in percent."""
    array = np.asarray(values, dtype=float) * 100
    return (f"{array.mean():.2f} ± {array.std(ddof=1):.2f} "
            f"({array.min():.2f}–{array.max():.2f})")


def _group_cells(name: str, members: list[Row]) -> list[str]:
    results = [m.result for m in members]
    first = results[0]
    f1 = [test_macro_f1(r) for r in results]
    numbers = [human_count(first.params), human_count(first.trainable_params),
               *(_spread([r.accuracy[s] for r in results])
                 for s in ("train", "validation", "test")),
               _spread(f1) if None not in f1 else _NONE,
               human_seconds(float(np.mean([r.train_seconds for r in results]))),
               device_label(first.environment)]
    cells = [f"{name} ({first.model})" if first.model != name else name, *numbers,
             *_reference_cells(members[0]), f"ok, {len(members)} seeds"]
    return [one_line(c).replace("|", "\\|") for c in cells]


_COLUMNS_NOTE = f"""\
Columns: **params** all parameters, **trainable** those updated in training; **train / val /
test acc** accuracy in percent on the train, validation and test splits after training;
**test F1** the macro-F1 on test (the mean over classes of each class's F1); **train time**
wall time of the training loop only (evaluation and loading excluded); **device** where it
ran; **ref. test acc** and **ref. time** the published figures for the same model on the same
data (IMDb: the reference experiment's; SMS spam: the book's ch06, or for an ablation row
the book's figures for that row; blank: none published;
{_NONE}: no time reported; their GPU is not named); **status** `ok`, or why the row has no
numbers."""


def _header(rows: Sequence[Row]) -> str:
    """The data set the rows ran on, its classes and chance level, then the columns."""
    results = [row.result for row in rows if row.result is not None]
    dataset = rows[0].data if rows else "imdb"
    names = results[0].labels if results else ["negative", "positive"]
    what = "IMDb binary sentiment (chance 50 %)" if dataset == "imdb" else \
        f"Data set `{dataset}`, {len(names)} classes ({', '.join(names)})"
    return f"# sentibench results\n\n{what}. {_COLUMNS_NOTE}\n"


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


def format_markdown(rows: Sequence[Row], all_stats: Sequence[Any] | None = None) -> str:
    """The whole results.md: header, table, statistics, notes. Deterministic: no dates, no
    paths. ``all_stats``: :func:`sentibench.report.compare.run_stats` of the rows (computed here
    if not given)."""
    from sentibench.report.compare import format_stats, run_stats

    all_stats = run_stats(rows) if all_stats is None else all_stats
    parts = [_header(rows), format_table(rows).rstrip("\n"), *format_stats(all_stats),
             *_notes(rows)]
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


def build_report(bench_dir: Path) -> list[Path]:
    """Write results.md, results.csv, the plots and report.html into ``bench_dir``; return
    their paths.

    Without any loss history (no neural run) loss_curves.png is not written, and a stale
    one from an earlier build is removed so the directory always matches its results.
    """
    from sentibench.report.compare import run_stats
    from sentibench.report.html_page import build_html

    bench = Path(bench_dir)
    rows = load_rows(bench)
    all_stats = run_stats(rows)
    atomic_write_text(bench / MARKDOWN_FILE, format_markdown(rows, all_stats))
    atomic_write_text(bench / CSV_FILE, format_csv(rows))
    written = [bench / MARKDOWN_FILE, bench / CSV_FILE,
               plot_accuracy_vs_time(rows, bench / ACCURACY_PLOT)]
    loss = plot_loss_curves(rows, bench / LOSS_PLOT)
    if loss is None:
        (bench / LOSS_PLOT).unlink(missing_ok=True)
    else:
        written.append(loss)
    written.append(build_html(bench, rows, all_stats, _header(rows)))
    return written
