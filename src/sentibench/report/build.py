"""Writing every report file of a bench: results.md, results.csv, the plots, report.html.

The top of the report package: it imports tables, plots and the HTML page, and nothing in
the package imports it, so the modules below it never need an import inside a function
to dodge a cycle.
"""

from __future__ import annotations

from pathlib import Path

from sentibench.core.errors import SentibenchError
from sentibench.core.fileio import atomic_write_text
from sentibench.report.compare import run_stats
from sentibench.report.curves import CURVE_PLOT, headline_rows, plot_learning_curve
from sentibench.report.html_page import build_html
from sentibench.report.plots import (
    ACCURACY_PLOT,
    LOSS_PLOT,
    plot_accuracy_vs_time,
    plot_loss_curves,
)
from sentibench.report.rows import load_rows
from sentibench.report.tables import CSV_FILE, MARKDOWN_FILE, format_csv, format_markdown


def build_report(bench_dir: Path) -> list[Path]:
    """Write results.md, results.csv, the plots and report.html into ``bench_dir``; return
    their paths.

    Without any loss history (no neural run) loss_curves.png is not written, and a stale
    one from an earlier build is removed so the directory always matches its results.

    A run whose results.json or test predictions cannot be read is shown as an unreadable
    row naming the file, the report of the other rows is written, and then this raises
    (exit status 2) naming that file: a report that lacks a row through damage is not a
    success a script should take for complete, while a row that failed to run (listed in
    failures.json) is part of a complete report and leaves the status 0.
    """
    bench = Path(bench_dir)
    rows = load_rows(bench)
    headline = headline_rows(rows)  # a sweep's smaller sizes are the learning curve's
    all_stats = run_stats(headline)
    atomic_write_text(bench / MARKDOWN_FILE, format_markdown(rows, all_stats))
    atomic_write_text(bench / CSV_FILE, format_csv(rows))
    written = [bench / MARKDOWN_FILE, bench / CSV_FILE,
               plot_accuracy_vs_time(headline, bench / ACCURACY_PLOT)]
    loss = plot_loss_curves(headline, bench / LOSS_PLOT)
    if loss is None:
        (bench / LOSS_PLOT).unlink(missing_ok=True)
    else:
        written.append(loss)
    curve = plot_learning_curve(rows, bench / CURVE_PLOT)
    if curve is None:
        (bench / CURVE_PLOT).unlink(missing_ok=True)
    else:
        written.append(curve)
    written.append(build_html(bench, rows, all_stats))
    damaged = [row.unreadable for row in rows if row.unreadable]
    if damaged:
        more = f" (and {len(damaged) - 1} more unreadable runs)" if len(damaged) > 1 else ""
        raise SentibenchError(f"{damaged[0]}{more}; wrote the report of the other rows, this "
                              f"one marked unreadable: {', '.join(p.name for p in written)}")
    return written
