"""The report's figures: test accuracy against training time, and the loss curves.

Built from a bench's rows alone (see :mod:`sentibench.report.tables`); PNG files are written
without a timestamp, so the same results give the same bytes.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter

from sentibench.core.fileio import atomic_path
from sentibench.report.stats import wilson_interval

if TYPE_CHECKING:
    from sentibench.report.rows import Row

ACCURACY_PLOT = "accuracy_vs_time.png"
LOSS_PLOT = "loss_curves.png"
# Runs that train in ~0 s (the dummy) still need a point on a log axis.
MIN_PLOT_SECONDS = 0.1


def save_figure(fig: Figure, path: Path) -> None:
    """Write ``fig`` as a PNG at ``path`` atomically, without a timestamp."""
    # format is explicit: atomic_path's temporary name ends in .tmp, not .png.
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, metadata={"Software": None},
                    bbox_inches="tight", pad_inches=0.1)


def _draw_run(ax: Any, row: Row) -> list[float]:
    """One run's point and its reference point; returns the x values drawn (the label
    comes later, once the axes' limits say which side of the point has room)."""
    res = row.result
    x, y = max(float(res.train_seconds), MIN_PLOT_SECONDS), res.accuracy["test"] * 100
    ax.scatter([x], [y], marker="o", s=50, color="tab:blue", zorder=3)
    n = (res.data.get("rows") or {}).get("test") if isinstance(res.data, dict) else None
    if n:  # the 95 % Wilson interval of the test accuracy
        low, high = wilson_interval(round(res.accuracy["test"] * n), n)
        below, above = max(0.0, y - low * 100), max(0.0, high * 100 - y)  # float noise
        ax.errorbar([x], [y], yerr=[[below], [above]], color="tab:blue", capsize=3, lw=1,
                    zorder=2)
    ref = row.reference
    if ref is None or ref.train_minutes is None:
        return [x]
    rx, ry = ref.train_minutes * 60, ref.test_accuracy * 100
    # Hollow, so a reference point on top of ours leaves both visible.
    ax.scatter([rx], [ry], marker="^", s=90, facecolors="none", edgecolors="tab:orange",
               linewidths=1.5, zorder=4)
    ax.plot([x, rx], [y, ry], ls=":", lw=1.2, color="grey", zorder=2)
    return [x, rx]


def _log_limits(xs: Sequence[float]) -> tuple[float, float]:
    """Room for labels right of the last point, and at least a decade for one point."""
    if not xs:
        return MIN_PLOT_SECONDS, 1e4
    lo, hi = min(xs), max(xs)
    span = math.log10(hi / lo)
    pad = 1.0 if span < 1 else max(0.3, 0.15 * span)
    return lo / 10**pad, hi * 10**pad


def _label_runs(ax: Any, rows: Sequence[Row]) -> None:
    """Each run's name beside its point, on the side with room, so no label leaves the
    axes: left of points in the right half of the (log) x range, below points near the top.
    """
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    points: dict[tuple[float, float], list[str]] = {}  # one label per drawn point
    for row in rows:
        res = row.result
        x, y = max(float(res.train_seconds), MIN_PLOT_SECONDS), res.accuracy["test"] * 100
        name = row.name if x == res.train_seconds else f"{row.name} (<{MIN_PLOT_SECONDS:g} s)"
        points.setdefault((x, round(y, 9)), []).append(name)
    placed: list[tuple[float, float]] = []  # label anchors so far, in display pixels
    for (x, y), names in sorted(points.items()):
        right = math.log10(x / x0) / math.log10(x1 / x0) > 0.5
        high = (y - y0) / (y1 - y0) > 0.85
        px, py = ax.transData.transform((x, y))
        dy = -6 if high else 5
        # A label near an earlier one moves down a line, so the two never overprint.
        while any(abs(px - qx) < 150 and abs(py + dy - qy) < 14 for qx, qy in placed):
            dy -= 14
        placed.append((px, py + dy))
        ax.annotate("\n".join(names), (x, y), xytext=(-7 if right else 7, dy),
                    textcoords="offset points", fontsize=10, ha="right" if right else "left",
                    va="top" if high else "bottom", annotation_clip=True)


def _legend(fig: Figure, ax: Any, rows: Sequence[Row], classes: int) -> None:
    """Only what is drawn: reference entries only when some row has a reference point."""
    ax.scatter([], [], marker="o", color="tab:blue", label="this bench")
    if any(r.result is not None and r.reference is not None
           and r.reference.train_minutes is not None for r in rows):
        ax.scatter([], [], marker="^", facecolors="none", edgecolors="tab:orange",
                   label="reference (its README)")
        ax.plot([], [], ls=":", color="grey", label="same model: bench to reference")
    ax.axhline(100 / classes, color="grey", lw=0.8, ls="--",
               label=f"chance ({100 / classes:.0f} %)")
    # Outside the axes so it can never hide a point.
    handles = ax.get_legend_handles_labels()[0]
    fig.legend(loc="outside lower center", ncols=min(2, len(handles)), fontsize=10)


def plot_accuracy_vs_time(rows: Sequence[Row], path: Path) -> Path:
    """Test accuracy against training time (log x), ours beside the reference's points."""
    fig = Figure(figsize=(7.5, 5.5), layout="constrained")
    ax = fig.add_subplot()
    finished = [row for row in rows if row.result is not None]
    xs = [x for row in finished for x in _draw_run(ax, row)]
    classes = len(finished[0].result.labels) if finished else 2
    _legend(fig, ax, rows, classes)
    ax.set_xscale("log")
    ax.margins(y=0.08)
    ax.set_autoscalex_on(False)  # limits are ours: autoscaling one point on log x warns
    ax.set_xlim(*_log_limits(xs))
    if not xs:
        ax.text(0.5, 0.6, "no finished runs", transform=ax.transAxes, ha="center", fontsize=14)
        ax.set_ylim(40, 100)
    _label_runs(ax, finished)
    label_accuracy_axes(ax, rows, "training time (s, log scale)", "{:g}",
                        "test accuracy vs training time\n(bars: 95 % Wilson intervals)")
    save_figure(fig, path)
    return path


def label_accuracy_axes(ax: Any, rows: Sequence[Row], xlabel: str, tick: str,
                        title: str) -> None:
    """Test accuracy (%) against a log x axis: tick labels, axis titles, the data set's
    name before ``title``, a grid."""
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: tick.format(v)))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(xlabel, fontsize=11)
    ax.set_ylabel("test accuracy (%)", fontsize=11)
    dataset = rows[0].data if rows else "imdb"
    ax.set_title(f"{'IMDb' if dataset == 'imdb' else dataset}: {title}", fontsize=12)
    ax.grid(True, which="both", alpha=0.3)


def plot_loss_curves(rows: Sequence[Row], path: Path) -> Path | None:
    """One subplot per run with a loss history; None (nothing written) when there is none."""
    curves = [r for r in rows if r.result is not None and r.result.history.get("train_loss")]
    if not curves:
        return None
    ncols = min(3, len(curves))
    nrows = math.ceil(len(curves) / ncols)
    fig = Figure(figsize=(max(7, 5 * ncols), 3.8 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, row in zip(axes, curves, strict=False):
        hist = row.result.history
        train, val = hist.get("train_loss", []), hist.get("val_loss", [])
        steps = hist.get("steps") or list(range(1, len(train) + 1))
        ax.set_xlabel("optimizer step" if hist.get("steps") else "evaluation number")
        ax.plot(steps[:len(train)], train, marker="o", ms=3, label="train loss")
        if val:
            ax.plot(steps[:len(val)], val, marker="s", ms=3, ls="--", label="validation loss")
        ax.set_title(row.name)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if len(set(steps)) == 1:  # one evaluation: an x range of steps, not of fractions
            ax.set_xlim(steps[0] - 1, steps[0] + 1)
        ax.set_ylabel("cross-entropy loss")
        ax.grid(True, alpha=0.3)
        _draw_epoch_accuracy(ax, hist, max(steps) if steps else 1)
    for ax in axes[len(curves):]:
        ax.set_visible(False)
    # Two short lines: one long line is wider than a one-panel figure and gets cut.
    fig.suptitle("Train and validation loss during training (a few batches per point)\n"
                 "and accuracy at each epoch's end", fontsize=11)
    save_figure(fig, path)
    return path


def _draw_epoch_accuracy(ax: Any, hist: dict, last_step: int) -> None:
    """Epoch-end accuracies on a right-hand axis, placed at evenly spread epoch ends."""
    train, val = hist.get("epoch_train_accuracy", []), hist.get("epoch_val_accuracy", [])
    handles, labels = ax.get_legend_handles_labels()
    if train or val:
        right = ax.twinx()
        epochs = max(len(train), len(val))
        ends = [last_step * (i + 1) / epochs for i in range(epochs)]
        for values, style, label in ((train, "^-", "train acc (epoch end)"),
                                     (val, "v--", "validation acc (epoch end)")):
            if values:
                line, = right.plot(ends[:len(values)], [v * 100 for v in values], style,
                                   color="tab:green", ms=5, label=label)
                handles.append(line)
                labels.append(label)
        right.set_ylabel("accuracy (%)")
    ax.legend(handles, labels, fontsize=8)


def png_bytes(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, metadata={"Software": None},
                bbox_inches="tight", pad_inches=0.1)
    return buffer.getvalue()


def row_figure(name: str, names: Sequence[str], confusion: Sequence[Sequence[int]],
               bins: Sequence[tuple[float, float, int]]) -> bytes:
    """One run's test confusion matrix and reliability diagram, as PNG bytes."""
    fig = Figure(figsize=(9, 3.8), layout="constrained")
    left, right = fig.subplots(1, 2)
    matrix = np.asarray(confusion)
    left.imshow(matrix, cmap="Blues")
    for (i, j), value in np.ndenumerate(matrix):
        left.text(j, i, f"{value:,}", ha="center", va="center", fontsize=9,
                  color="white" if value > matrix.max() / 2 else "black")
    left.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
    left.set_yticks(range(len(names)), names, fontsize=8)
    left.set_xlabel("predicted")
    left.set_ylabel("true")
    left.set_title(f"{name}: confusion matrix (test)", fontsize=10)
    right.plot([0, 1], [0, 1], ls=":", color="grey", label="perfect calibration")
    if bins:
        conf, acc, count = zip(*bins, strict=True)
        right.scatter(conf, acc, s=[20 + 200 * c / max(count) for c in count],
                      color="tab:blue", label="bins (size: rows)")
        right.plot(conf, acc, color="tab:blue", lw=1)
    right.set_xlim(0, 1.02)
    right.set_ylim(0, 1.02)
    right.set_xlabel("confidence (top class probability)")
    right.set_ylabel("accuracy")
    right.set_title("reliability (test)", fontsize=10)
    right.legend(fontsize=8, loc="upper left")
    return png_bytes(fig)
