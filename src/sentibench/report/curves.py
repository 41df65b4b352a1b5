"""The learning curve of a ``bench --train-sizes`` sweep: test accuracy against labelled
examples, and from which size each transformer row beats the bag-of-words rows.

Read from the run directories alone: a run's size is the ``train_subset`` its results.json
records (its training rows are the x value), its row is its name less the size and seed
suffixes (:mod:`sentibench.bench.sizes` names them). Per (row, size): the mean test
accuracy over seeds, their range (the band), and the 95 % Wilson interval of the mean on
the test rows one run scores (the bars). The crossover of a transformer row is the
smallest size at which it is ahead of the best bag-of-words row at that size and the
exact McNemar test on their paired test predictions (seed by seed: the same seed drew the
same training subset for both) is significant after Holm's correction over the sizes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from sentibench.models.registry import FAMILIES
from sentibench.report.plots import label_accuracy_axes, save_figure
from sentibench.report.rows import Row, correct_on_test
from sentibench.report.stats import holm, mcnemar_exact, wilson_interval
from sentibench.run.results import SEED_SUFFIX

CURVE_PLOT = "learning_curve.png"
ALPHA = 0.05
_SIZED = re.compile(rf"^(?P<row>.+)-(?P<size>n\d+(?:pc)?|all)(?:{re.escape(SEED_SUFFIX)}"
                    rf"(?P<seed>-?\d+))?$")


@dataclass
class Point:
    """One row at one training size: its runs (one per seed)."""

    row: str
    size: str  # n64, n8pc, all
    examples: int  # training rows the runs read
    runs: dict[int | None, Row] = field(default_factory=dict)  # seed -> run

    @property
    def accuracies(self) -> np.ndarray:
        return np.array([float(r.result.accuracy["test"]) for r in self.runs.values()])

    @property
    def test_rows(self) -> int:
        return int(next(iter(self.runs.values())).result.data["rows"]["test"])

    def wilson(self) -> tuple[float, float]:
        n = self.test_rows
        return wilson_interval(round(float(self.accuracies.mean()) * n), n)


def sweep_points(rows: Sequence[Row]) -> dict[str, list[Point]]:
    """Row name (alphabetical) -> its points by training size (ascending), from the
    finished sized runs."""
    points: dict[tuple[str, str], Point] = {}
    for run in rows:
        match = _SIZED.match(run.name)
        if run.result is None or match is None or run.run_dir is None:
            continue
        key = (match["row"], match["size"])
        examples = int(run.result.data.get("rows", {}).get("train", 0))
        point = points.setdefault(key, Point(key[0], key[1], examples))
        seed = int(match["seed"]) if match["seed"] is not None else None
        point.runs[seed] = run
    curves: dict[str, list[Point]] = {}
    for point in points.values():
        curves.setdefault(point.row, []).append(point)
    return {row: sorted(curves[row], key=lambda p: p.examples)  # by name: the same colours
            for row in sorted(curves)}                        # and order in every report


def headline_rows(rows: Sequence[Row]) -> list[Row]:
    """The rows the verdict and the significance table compare. In a sweep, each row at its
    largest training size (all its seeds): the smaller sizes are the learning curve's
    question, and ranking 60 sized runs against each other would answer none. Runs that are
    not part of a sweep, or not finished, are always kept."""
    curves = sweep_points(rows)
    sized = {id(run) for pts in curves.values() for p in pts for run in p.runs.values()}
    largest = {id(run) for pts in curves.values() for run in pts[-1].runs.values()}
    return [r for r in rows if id(r) not in sized or id(r) in largest]


def headline_scope(rows: Sequence[Row]) -> str:
    """The verdict's first clause in a sweep (which size it speaks of), else nothing."""
    curves = sweep_points(rows)
    if not curves:
        return ""
    sizes = sorted({pts[-1].size for pts in curves.values()})
    return (f"at each row's largest training size ({', '.join(sizes)}; the learning curve "
            "compares the smaller ones)")


def _bag_of_words(points: list[Point]) -> bool:
    family = FAMILIES.get(next(iter(points[0].runs.values())).result.kind)
    return family is not None and family.bag_of_words


def _paired_p(a: Point, b: Point) -> float | None:
    """Exact McNemar p of two points on their test rows, stacked over the seeds both ran."""
    seeds = [s for s in a.runs if s in b.runs]
    if not seeds:
        return None
    right_a = [correct_on_test(a.runs[s]) for s in seeds]
    right_b = [correct_on_test(b.runs[s]) for s in seeds]
    if any(x is None or y is None or len(x) != len(y) or not len(x)
           for x, y in zip(right_a, right_b, strict=True)):
        return None
    return mcnemar_exact(np.concatenate(right_a), np.concatenate(right_b))


@dataclass
class Crossover:
    """Where a transformer row overtakes the best bag-of-words row, size by size."""

    row: str
    size: str | None  # the smallest size where it is ahead beyond noise; None: nowhere
    tests: list[tuple[str, str, float, float | None]]  # size, opponent, diff, Holm p

    def standing(self) -> str:
        """Sizes grouped by the outcome: ahead / level / behind beyond noise. A row first
        ahead at 16 examples may fall behind at 1,024, so the first win alone misleads."""
        groups: dict[str, list[str]] = {}
        for size, _, diff, p in self.tests:
            kind = "level" if p is None or p >= ALPHA else "ahead" if diff > 0 else "behind"
            groups.setdefault(kind, []).append(size)
        return "; ".join(f"{kind} at {', '.join(groups[kind])}"
                         for kind in ("ahead", "level", "behind") if kind in groups)


def crossovers(curves: dict[str, list[Point]]) -> list[Crossover]:
    """For each transformer row: the best bag-of-words row at each size (highest mean test
    accuracy), the paired test against it, Holm over the sizes, the first significant win."""
    bow = {row: pts for row, pts in curves.items() if _bag_of_words(pts)}
    out = []
    for row, pts in curves.items():
        if row in bow or not bow:
            continue
        tests, raw = [], []
        for point in pts:
            rivals = [p for r in bow.values() for p in r if p.size == point.size]
            if not rivals:
                continue
            best = max(rivals, key=lambda p: p.accuracies.mean())
            diff = float(point.accuracies.mean() - best.accuracies.mean())
            tests.append((point.size, best.row, diff))
            raw.append(_paired_p(point, best))
        known = [p for p in raw if p is not None]
        adjusted = iter(holm(known))
        holm_p = [next(adjusted) if p is not None else None for p in raw]
        done = [(s, o, d, p) for (s, o, d), p in zip(tests, holm_p, strict=True)]
        first = next((s for s, _, d, p in done if d > 0 and p is not None and p < ALPHA), None)
        out.append(Crossover(row, first, done))
    return out


def _cell(point: Point | None) -> str:
    if point is None:
        return "–"
    acc = point.accuracies * 100
    if len(acc) == 1:
        low, high = point.wilson()
        return f"{acc[0]:.2f} [{low * 100:.1f}, {high * 100:.1f}]"
    return f"{acc.mean():.2f} ± {acc.std(ddof=1):.2f}"


def curve_lines(rows: Sequence[Row]) -> list[str]:
    """The report's learning-curve section (Markdown), or nothing without sized runs."""
    curves = sweep_points(rows)
    if not curves:
        return []
    sizes = sorted({(p.examples, p.size) for pts in curves.values() for p in pts})
    order = list(dict.fromkeys(size for _, size in sizes))
    examples = {size: n for n, size in sizes}
    seeds = max(len(p.runs) for pts in curves.values() for p in pts)
    out = ["", "## Learning curve", "",
           f"Test accuracy (%) by labelled training examples, {seeds} draw(s) per size: "
           + ("mean ± standard deviation over seeds" if seeds > 1 else
              "one run, [95 % Wilson interval]") + f". Plot: `{CURVE_PLOT}`.", "",
           "| row | " + " | ".join(f"{s} ({examples[s]:,})" for s in order) + " |",
           "|---|" + "---:|" * len(order)]
    for row, pts in curves.items():
        by_size = {p.size: p for p in pts}
        out.append(f"| {row} | " + " | ".join(_cell(by_size.get(s)) for s in order) + " |")
    found = crossovers(curves)
    if found:
        out += ["", "Where each transformer row beats the best bag-of-words row at the same "
                    "size beyond noise (exact McNemar on paired test predictions, "
                    f"Holm-corrected over the sizes, p < {ALPHA}):", ""]
        for cross in found:
            where = f"first ahead at {cross.size}" if cross.size else \
                "not ahead within the sizes tried"
            detail = "; ".join(f"{s}: {d * 100:+.2f} vs {o}"
                               + (f", p={p:.3g}" if p is not None else "")
                               for s, o, d, p in cross.tests)
            out.append(f"- `{cross.row}`: {where}; {cross.standing()} ({detail})")
    return out


def spread_ticks(values: Iterable[int], min_ratio: float = 1.25) -> list[int]:
    """The sizes to label on a log axis, largest first kept, leaving out any within
    ``min_ratio`` of a kept one: 512 per class (1,024) beside "all" (1,045) would print one
    label over the other."""
    kept: list[int] = []
    for value in sorted(set(values), reverse=True):
        if not kept or kept[-1] / value >= min_ratio:
            kept.append(value)
    return sorted(kept)


def plot_learning_curve(rows: Sequence[Row], path: Path) -> Path | None:
    """Test accuracy against labelled examples (log x): a line per row through the seed
    means, the seeds' range shaded, Wilson bars; None (nothing written) without a sweep."""
    curves = sweep_points(rows)
    if not curves:
        return None
    fig = Figure(figsize=(7.5, 5.5), layout="constrained")
    ax = fig.add_subplot()
    for row, pts in curves.items():
        xs = np.array([max(p.examples, 1) for p in pts])
        means = np.array([p.accuracies.mean() for p in pts]) * 100
        bars = np.array([p.wilson() for p in pts]).T * 100
        line = ax.errorbar(xs, means, yerr=[means - bars[0], bars[1] - means], marker="o",
                           capsize=3, label=row)
        ax.fill_between(xs, [p.accuracies.min() * 100 for p in pts],
                        [p.accuracies.max() * 100 for p in pts],
                        color=line[0].get_color(), alpha=0.15, linewidth=0)
    ax.set_xscale("log")
    ax.set_xticks(spread_ticks({max(p.examples, 1) for pts in curves.values() for p in pts}))
    label_accuracy_axes(ax, rows, "labelled training examples (log scale)", "{:,.0f}",
                        "learning curves\n(bands: range over seeds; bars: 95 % Wilson "
                        "interval of the mean)")
    ax.legend(fontsize=9, loc="best")
    save_figure(fig, path)
    return path
