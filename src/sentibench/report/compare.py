"""Which differences are real: each run's intervals, its paired test against the best run,
and its calibration, from the run directories' saved predictions alone.

The best run is the one with the highest test accuracy; a run is compared with it only on
the same test rows (same count, same labels). Rows whose difference from the best is not
significant at 5 % after Holm's correction across the compared rows are *tied with best*.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sentibench.report import stats
from sentibench.run.results import read_predictions

if TYPE_CHECKING:
    from sentibench.report.rows import Row

ALPHA = 0.05


@dataclass(frozen=True)
class RunStats:
    name: str
    n: int
    accuracy: float
    accuracy_ci: tuple[float, float]
    macro_f1: float
    macro_f1_ci: tuple[float, float]
    log_loss: float
    brier: float
    ece: float
    reliability: list[tuple[float, float, int]]
    diff: float | None = None  # accuracy - best's, on the same rows
    diff_ci: tuple[float, float] | None = None
    p_value: float | None = None  # exact McNemar against the best
    p_holm: float | None = None
    is_best: bool = False

    @property
    def tied(self) -> bool:
        return self.is_best or (self.p_holm is not None and self.p_holm >= ALPHA)


def _one(name: str, labels: np.ndarray, probs: np.ndarray, k: int) -> RunStats:
    predicted = probs.argmax(1)
    correct = int((predicted == labels).sum())
    return RunStats(
        name=name, n=len(labels), accuracy=correct / len(labels) if len(labels) else 0.0,
        accuracy_ci=stats.wilson_interval(correct, len(labels)),
        macro_f1=stats.macro_f1(labels, predicted, k),
        macro_f1_ci=stats.bootstrap_macro_f1(labels, predicted, k),
        log_loss=stats.log_loss(labels, probs), brier=stats.brier(labels, probs),
        ece=stats.expected_calibration_error(labels, probs),
        reliability=stats.reliability(labels, probs))


def run_stats(rows: Sequence[Row]) -> list[RunStats]:
    """Statistics of every finished row that saved its test predictions."""
    loaded = {}
    for row in rows:
        if row.result is None or row.run_dir is None:
            continue
        saved = read_predictions(row.run_dir, row.result.labels)
        if saved is not None and len(saved[0]):
            loaded[row.name] = (*saved, len(row.result.labels))
    out = {name: _one(name, y, p, k) for name, (y, p, k) in loaded.items()}
    if not out:
        return []
    best = max(out.values(), key=lambda s: (s.accuracy, s.name))
    by, bp, _ = loaded[best.name]
    right_best = bp.argmax(1) == by
    compared = {}
    for name, (y, p, _) in loaded.items():
        if name == best.name or len(y) != len(by) or not np.array_equal(y, by):
            continue
        right = p.argmax(1) == y
        compared[name] = (float(right.mean() - right_best.mean()),
                          stats.paired_bootstrap_difference(right, right_best),
                          stats.mcnemar_exact(right, right_best))
    adjusted = dict(zip(compared, stats.holm([c[2] for c in compared.values()]),
                        strict=True))
    result = []
    for name, s in out.items():
        if name == best.name:
            s = RunStats(**{**s.__dict__, "is_best": True, "diff": 0.0})
        elif name in compared:
            diff, ci, p = compared[name]
            s = RunStats(**{**s.__dict__, "diff": diff, "diff_ci": ci, "p_value": p,
                            "p_holm": adjusted[name]})
        result.append(s)
    return result


def _ci(low: float, high: float) -> str:
    return f"[{low * 100:.2f}, {high * 100:.2f}]"


def _stats_line(s: RunStats, top: set[str]) -> str:
    """One run's row; runs with exactly the best accuracy all read "tied for best"."""
    shared = len(top) > 1 and s.name in top
    if s.is_best:
        diff, p, ph = ("baseline" if shared else "best"), "", ""
    elif s.diff is None:
        diff, p, ph = "other test rows", "", ""
    else:
        diff = f"{s.diff * 100:+.2f} {_ci(*s.diff_ci)}"
        p, ph = f"{s.p_value:.3g}", f"{s.p_holm:.3g}"
    if shared:
        tied = "tied for best"
    elif s.is_best:
        tied = "best"
    else:
        tied = "" if s.diff is None else ("tied" if s.tied else "no")
    return (f"| {s.name} | {s.n:,} | {s.accuracy * 100:.2f} {_ci(*s.accuracy_ci)} | "
            f"{s.macro_f1 * 100:.2f} {_ci(*s.macro_f1_ci)} | {diff} | {p} | {ph} | "
            f"{tied} | {s.log_loss:.4f} | {s.brier:.4f} | {s.ece:.4f} |")


def format_stats(all_stats: Sequence[RunStats]) -> list[str]:
    """The Markdown section: intervals, the paired comparison with the best, calibration."""
    if not all_stats:
        return []
    lines = ["", "## Which differences are real", "",
             "Test accuracy with its 95 % Wilson interval; macro-F1 with a 95 % percentile "
             "bootstrap interval (2,000 resamples of the test rows, seed 0); the difference "
             "from the best run's accuracy on the same rows with its paired-bootstrap "
             "interval, the exact McNemar p-value and that p-value Holm-corrected across the "
             "compared runs; **tied** when the corrected p is 0.05 or more; **tied for best** "
             "for every run with exactly the best accuracy (the differences are measured from "
             "the one marked baseline). Calibration: "
             "log-loss, Brier score (summed over classes) and expected calibration error "
             f"({stats.ECE_BINS} equal-width bins).", "",
             "| run | test rows | test acc [95 % CI] | macro-F1 [95 % CI] | Δ acc vs best "
             "[95 % CI] | McNemar p | Holm p | tied with best | log-loss | Brier | ECE |",
             "|:---|---:|---:|---:|---:|---:|---:|:---|---:|---:|---:|"]
    best = next((s for s in all_stats if s.is_best), None)
    top = {s.name for s in all_stats if best is not None and (s.is_best or (
        s.diff is not None and s.accuracy == best.accuracy))}
    for s in all_stats:
        lines.append(_stats_line(s, top))
    return lines
