"""The report's tuning section (``bench --tune``): for each tuned row, what the search
found and whether it helped beyond noise.

Per row: the study (trials, metric, the best trial), the default and the tuned settings,
validation and test accuracy of both with Wilson intervals, and the exact McNemar p-value
of tuned against default on the same test rows; then the trial history (each trial's
objective and the best so far). Read from the run directories and the studies' summaries
alone, like the rest of the report.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sentibench.report.rows import Row, correct_on_test
from sentibench.report.stats import mcnemar_exact, wilson_interval
from sentibench.run.results import (
    DEFAULT_SUFFIX,
    STUDY_SUMMARY_FILE,
    TUNING_DIR,
)


def _studies(bench: Path) -> list[dict[str, Any]]:
    paths = sorted((bench / TUNING_DIR).glob(f"*/{STUDY_SUMMARY_FILE}"))
    return [json.loads(p.read_text(encoding="utf-8")) for p in paths]


def _cell(row: Row, split: str) -> str:
    acc = float(row.result.accuracy[split])
    n = int((row.result.data.get("rows") or {}).get(split, 0))  # rows the run scored
    if not n:
        return f"{acc * 100:.2f}"
    low, high = wilson_interval(round(acc * n), n)
    return f"{acc * 100:.2f} [{low * 100:.2f}, {high * 100:.2f}]"


def _pair_lines(tuned: Row, default: Row, study: dict[str, Any]) -> list[str]:
    a, b = correct_on_test(tuned), correct_on_test(default)
    p = "–" if a is None or b is None or len(a) != len(b) else f"{mcnemar_exact(a, b):.3g}"
    names = [spec.split("=")[0] for spec in study["space"]]
    best = (study.get("best") or {}).get("params", {})
    shown = [", ".join(f"{k}={_fmt(best.get(k))}" for k in names),
             ", ".join(f"{k}={_fmt(study['settings'].get(k, 'default'))}" for k in names)]
    return [f"| {tuned.name} (tuned) | {shown[0]} | {_cell(tuned, 'validation')} | "
            f"{_cell(tuned, 'test')} | {p} |",
            f"| {default.name} | {shown[1]} | {_cell(default, 'validation')} | "
            f"{_cell(default, 'test')} | |"]


def _fmt(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _history(study: dict[str, Any]) -> str:
    best, out = None, []
    sign = 1 if study["direction"] == "maximize" else -1
    for t in study["trials"]:
        if t["value"] is None:
            out.append(f"{t['number']}: {t['state'].lower()}")
            continue
        best = t["value"] if best is None or sign * t["value"] > sign * best else best
        out.append(f"{t['number']}: {t['value']:.4f} (best {best:.4f})"
                   + (" collapsed" if t.get("collapsed") else ""))
    return "; ".join(out)


def tuning_lines(rows: Sequence[Row]) -> list[str]:
    """Markdown lines of the tuning section (none when the bench tuned nothing)."""
    with_dirs = [r for r in rows if r.run_dir is not None]
    studies = _studies(with_dirs[0].run_dir.parent) if with_dirs else []
    if not studies:
        return []
    by_name = {r.name: r for r in rows if r.result is not None}
    out = ["", "## Tuning", "",
           "Every row was tuned the same way on the validation split (test labels take no part) "
           "and also run at its untuned settings; p: exact McNemar test of tuned against "
           "untuned on the same test rows. Accuracies in percent with 95 % Wilson intervals."]
    for study in studies:
        best = study.get("best") or {}
        out += ["", f"### {study['row']}", "",
                f"{len(study['trials'])} trials, {study['metric']} ({study['direction']}); best "
                f"trial {best.get('number', '–')}. Trials: {_history(study)}.", "",
                "| run | settings | val acc | test acc | p vs untuned |",
                "|:---|:---|---:|---:|---:|"]
        for name, tuned in sorted(by_name.items()):
            if name == study["row"] or name.startswith(study["row"] + "-seed"):
                twin = name.replace(study["row"], study["row"] + DEFAULT_SUFFIX, 1)
                if twin in by_name:
                    out += _pair_lines(tuned, by_name[twin], study)
    return out
