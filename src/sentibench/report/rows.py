"""The rows of a bench: its run directories' ``results.json``, ``failures.json`` and the
plan's per-row reference figures and notes (``bench.json``), nothing else.

A row whose ``results.json`` or test predictions cannot be read (truncated, garbage, rows
missing) becomes an *unreadable* row naming the file, instead of ending the report or,
worse, feeding NaN probabilities or half a test set into the statistics.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sentibench.core.errors import SentibenchError
from sentibench.models.registry import MODELS, ReferenceRow
from sentibench.run.results import (
    FAILURES_FILE,
    NOT_ROWS,
    PLAN_FILE,
    PREDICTIONS_FILE,
    RESULTS_FILE,
    RunResult,
    read_predictions,
    read_results,
)

_UNRANKED = 10**6


@dataclass(frozen=True)
class Row:
    """One table row: a finished run, or a row that failed or never finished."""

    name: str
    result: RunResult | None = None
    status: str = "ok"
    dataset: str = "imdb"  # of the bench, for rows without results
    run_dir: Path | None = None
    plan_reference: ReferenceRow | None = None  # the bench plan's figures for this row
    note: str | None = None  # the bench plan's note on this row
    unreadable: str | None = None  # why a file of this run cannot be read, naming it

    @property
    def model(self) -> str:
        return self.result.model if self.result is not None else self.name

    @property
    def data(self) -> str:
        return str(self.result.data.get("dataset", self.dataset)) if self.result else \
            self.dataset

    @property
    def reference(self) -> ReferenceRow | None:
        """The figures a preset gives for exactly this row, else the model's own."""
        if self.plan_reference is not None:
            return self.plan_reference
        spec = MODELS.get(self.model)
        return spec.reference_for(self.data) if spec is not None else None


def correct_on_test(row: Row) -> Any:
    """Whether the row's run got each test row right (a boolean array from its saved
    predictions), or None where it saved none."""
    saved = read_predictions(row.run_dir, row.result.labels, "test")
    return None if saved is None else saved[1].argmax(1) == saved[0]


def one_line(text: object) -> str:
    return " ".join(str(text).split())


def _read_failures(bench_dir: Path) -> dict[str, str]:
    """``failures.json`` if present; a malformed one is an error, not silently ignored."""
    path = bench_dir / FAILURES_FILE
    if not path.is_file():
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SentibenchError(f"{path}: not valid JSON ({one_line(exc)})") from None
    if not isinstance(raw, dict):
        raise SentibenchError(f"{path}: expected an object {{row name: error message}}")
    return {str(name): one_line(msg) for name, msg in raw.items()}


def _sort_key(row: Row) -> tuple[int, str]:
    ref = row.reference
    return (ref.row if ref is not None else _UNRANKED, row.name)


def sort_rows(rows: Iterable[Row]) -> list[Row]:
    """Reference rows first in the reference's order, then the rest by name."""
    return sorted(rows, key=_sort_key)


def _bench_plan(bench: Path) -> dict[str, Any]:
    """bench.json, or {} (a directory of runs collected by hand, or an unreadable plan)."""
    try:
        plan = json.loads((bench / PLAN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return plan if isinstance(plan, dict) else {}


def _planned(plan: dict[str, Any]) -> dict[str, tuple[ReferenceRow | None, str | None]]:
    """Row name (and seed-run name) -> the plan's reference figures and note."""
    out: dict[str, tuple[ReferenceRow | None, str | None]] = {}
    for exp in plan.get("experiments") or []:
        if not isinstance(exp, dict):
            continue
        ref = exp.get("reference")
        try:
            figures = ReferenceRow(**ref) if isinstance(ref, dict) else None
        except TypeError:
            figures = None
        out[str(exp.get("name"))] = (figures, exp.get("note"))
    return out


def load_rows(bench_dir: str | Path) -> list[Row]:
    """Every row of a bench: finished runs, failures, and run dirs left unfinished.

    A run directory with a results.json is shown with its numbers even when failures.json
    also names it (the results are complete; the failure is kept in its status).
    """
    bench = Path(bench_dir)
    if not bench.is_dir():
        raise SentibenchError(f"{bench}: not a directory")
    failures = _read_failures(bench)
    plan = _bench_plan(bench)
    dataset = str(plan.get("dataset", "imdb"))  # older benches: IMDb, all they could run
    planned = _planned(plan)
    rows: dict[str, Row] = {}
    for child in sorted(bench.iterdir()):
        if not child.is_dir() or child.name.startswith(".") or child.name in NOT_ROWS:
            continue
        failed = failures.get(child.name)
        if (child / RESULTS_FILE).is_file():
            rows[child.name] = _finished(child, failed, dataset)
        elif failed is None:
            rows[child.name] = Row(child.name, None, f"unfinished: no {RESULTS_FILE}", dataset)
    for name, msg in failures.items():
        rows.setdefault(name, Row(name, None, f"failed: {msg}", dataset))
    for name, row in rows.items():
        reference, note = planned.get(name, (None, None))
        rows[name] = replace(row, plan_reference=reference, note=note)
    if not any(r.result is not None or r.unreadable for r in rows.values()) and not failures:
        raise SentibenchError(
            f"{bench}: not a bench directory (no <run>/{RESULTS_FILE} and no {FAILURES_FILE})")
    return sort_rows(rows.values())


def _finished(run_dir: Path, failed: str | None, dataset: str) -> Row:
    """A run directory with a results.json: its row, or an unreadable row naming the file."""
    try:
        result = read_results(run_dir)
        _check_predictions(run_dir, result)
    except SentibenchError as exc:
        why = one_line(exc)
        return Row(run_dir.name, None, f"unreadable: {why}", dataset, run_dir, unreadable=why)
    status = "ok" if failed is None else f"ok (failures.json also lists: {failed})"
    return Row(run_dir.name, result, status, dataset, run_dir)


def _check_predictions(run_dir: Path, result: RunResult) -> None:
    """Refuse test predictions the statistics would misread: unparsable, fewer rows than
    the run scored, labels outside the classes, probabilities missing or not numbers."""
    path = run_dir / PREDICTIONS_FILE
    try:
        saved = read_predictions(run_dir, result.labels)
    except (OSError, ValueError, KeyError) as exc:  # pandas' parser errors are ValueErrors
        raise SentibenchError(f"{path}: unreadable predictions ({type(exc).__name__}: "
                              f"{one_line(exc)[:120]})") from None
    if saved is None:
        return
    labels, probs = saved
    rows = result.data.get("rows") if isinstance(result.data, dict) else None
    expected = rows.get("test") if isinstance(rows, dict) else None
    if expected is not None and len(labels) != expected:
        raise SentibenchError(f"{path}: {len(labels)} rows, but results.json scored "
                              f"{expected} test rows (truncated?)")
    classes = range(len(result.labels))
    if not all(isinstance(y, int | float) and float(y).is_integer() and int(y) in classes
               for y in labels.tolist()):
        raise SentibenchError(f"{path}: a label is not a class id 0..{len(classes) - 1}")
    if not all(math.isfinite(p) for p in probs.ravel().tolist()):
        raise SentibenchError(f"{path}: a probability is missing or not a number")


def collect(bench_dir: Path) -> list[RunResult]:
    """The finished runs of a bench, in the reference's row order."""
    return [row.result for row in load_rows(bench_dir) if row.result is not None]
