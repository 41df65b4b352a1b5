"""The learning curve of a sweep, from its run directories alone: points per (row, size),
the table, the plot, and the crossover computed from the saved test predictions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sentibench.report.build import build_report
from sentibench.report.curves import (
    CURVE_PLOT,
    crossovers,
    curve_lines,
    headline_rows,
    spread_ticks,
    sweep_points,
)
from sentibench.report.rows import load_rows
from sentibench.report.stats import holm, mcnemar_exact
from sentibench.run.results import RunResult, write_predictions, write_results

TEST_ROWS = 400
TRUTH = np.arange(TEST_ROWS) % 2


def _run(bench: Path, name: str, kind: str, wrong: np.ndarray, train_rows: int) -> None:
    """A finished run whose test predictions are wrong exactly on the rows ``wrong``."""
    predicted = TRUTH.copy()
    predicted[wrong] = 1 - predicted[wrong]
    probs = np.eye(2)[predicted] * 0.8 + 0.1
    run_dir = bench / name
    run_dir.mkdir(parents=True)
    write_predictions(run_dir, TRUTH, probs, ["negative", "positive"])
    accuracy = 1 - len(wrong) / TEST_ROWS
    write_results(run_dir, RunResult(
        model=name.split("-n")[0], kind=kind, command=[],
        accuracy={"train": 1.0, "validation": accuracy, "test": accuracy},
        train_seconds=1.0, total_seconds=1.0, config={}, environment={},
        data={"dataset": "imdb", "rows": {"train": train_rows, "validation": 10,
                                          "test": TEST_ROWS}}))


def _wrong(start: int, count: int) -> np.ndarray:
    return np.arange(start, start + count)


@pytest.fixture
def sweep(tmp_path) -> Path:
    """logreg at 16 / 64 examples: 100 then 60 test rows wrong. The encoder: as wrong as
    logreg at 16 (a different 100 rows), 20 wrong at 64 (p ~ 1e-6 against logreg's 60:
    the crossover is n32pc). The dummy: half wrong. Two seeds, the same errors in both."""
    bench = tmp_path / "bench"
    for seed in (1, 2):
        for size, train, bow, enc in (("n8pc", 16, 100, 100), ("n32pc", 64, 60, 20)):
            _run(bench, f"logreg-{size}-seed{seed}", "sklearn", _wrong(0, bow), train)
            _run(bench, f"minilm-{size}-seed{seed}", "hf", _wrong(200, enc), train)
            _run(bench, f"dummy-{size}-seed{seed}", "sklearn", _wrong(0, 200), train)
    return bench


def test_points_group_seeds_by_row_and_size(sweep):
    curves = sweep_points(load_rows(sweep))
    assert list(curves) == ["dummy", "logreg", "minilm"]
    assert [(p.size, p.examples, sorted(p.runs)) for p in curves["minilm"]] == \
        [("n8pc", 16, [1, 2]), ("n32pc", 64, [1, 2])]
    assert curves["logreg"][1].accuracies.tolist() == [0.85, 0.85]


def test_the_crossover_is_known_from_the_predictions(sweep):
    (cross,) = crossovers(sweep_points(load_rows(sweep)))
    assert cross.row == "minilm" and cross.size == "n32pc"
    # independently: McNemar on the two seeds' stacked rows, Holm over the two sizes
    p8 = mcnemar_exact(np.tile(~np.isin(np.arange(400), _wrong(200, 100)), 2),
                       np.tile(~np.isin(np.arange(400), _wrong(0, 100)), 2))
    p32 = mcnemar_exact(np.tile(~np.isin(np.arange(400), _wrong(200, 20)), 2),
                        np.tile(~np.isin(np.arange(400), _wrong(0, 60)), 2))
    assert [t[3] for t in cross.tests] == pytest.approx(holm([p8, p32]))
    assert [(t[0], t[1]) for t in cross.tests] == [("n8pc", "logreg"), ("n32pc", "logreg")]
    assert cross.tests[1][2] == pytest.approx(0.10)


def test_no_crossover_is_said_as_such(tmp_path):
    bench = tmp_path / "bench"
    _run(bench, "logreg-n8pc", "sklearn", _wrong(0, 50), 16)
    _run(bench, "minilm-n8pc", "hf", _wrong(100, 52), 16)
    (cross,) = crossovers(sweep_points(load_rows(bench)))
    assert cross.size is None
    assert "- `minilm`: not ahead within the sizes tried; level at n8pc (" in \
        "\n".join(curve_lines(load_rows(bench)))


def test_the_report_has_the_table_and_the_plot(sweep):
    build_report(sweep)
    markdown = (sweep / "results.md").read_text()
    assert "| row | n8pc (16) | n32pc (64) |" in markdown
    assert "| logreg | 75.00 ± 0.00 | 85.00 ± 0.00 |" in markdown
    assert "- `minilm`: first ahead at n32pc; ahead at n32pc; level at n8pc (" in markdown
    assert (sweep / CURVE_PLOT).read_bytes()[:4] == b"\x89PNG"
    assert "test accuracy against labelled training examples" in \
        (sweep / "report.html").read_text()


def test_a_bench_without_sizes_has_no_curve(tmp_path):
    bench = tmp_path / "bench"
    _run(bench, "logreg", "sklearn", _wrong(0, 50), 16)
    (bench / CURVE_PLOT).write_bytes(b"stale")
    build_report(bench)
    assert not (bench / CURVE_PLOT).exists()
    assert "Learning curve" not in (bench / "results.md").read_text()


def test_close_sizes_share_no_tick_label():
    assert spread_ticks([16, 64, 256, 1024, 1045]) == [16, 64, 256, 1045]
    assert spread_ticks([8, 10, 12, 100]) == [8, 12, 100]
    assert spread_ticks([1, 2, 4]) == [1, 2, 4]


def test_the_verdict_compares_each_row_at_its_largest_size(sweep):
    _run(sweep, "logreg-tfidf", "sklearn", _wrong(0, 30), 64)  # not part of the sweep
    build_report(sweep)
    markdown = (sweep / "results.md").read_text()
    verdict = markdown.splitlines()[2]
    assert verdict.startswith("Verdict: at each row's largest training size (n32pc; the "
                              "learning curve compares the smaller ones); ")
    assert "n8pc" not in verdict
    stats = markdown.split("## Which differences are real")[1].split("\n## ")[0]
    compared = sorted(line.split(" | ")[0].lstrip("| ") for line in stats.splitlines()
                      if line.startswith("| ") and "-seed" in line or "| logreg-tfidf " in line)
    assert compared == ["dummy-n32pc-seed1", "dummy-n32pc-seed2", "logreg-n32pc-seed1",
                        "logreg-n32pc-seed2", "logreg-tfidf", "minilm-n32pc-seed1",
                        "minilm-n32pc-seed2"]
    assert "| minilm-n8pc (minilm) |" in markdown  # the results table lists every size
    assert "largest training size (n32pc; the learning curve" in \
        (sweep / "report.html").read_text()


def test_headline_rows_are_the_largest_size_and_the_unsized(sweep):
    _run(sweep, "logreg-tfidf", "sklearn", _wrong(0, 30), 64)
    names = sorted(r.name for r in headline_rows(load_rows(sweep)))
    assert names == ["dummy-n32pc-seed1", "dummy-n32pc-seed2", "logreg-n32pc-seed1",
                     "logreg-n32pc-seed2", "logreg-tfidf", "minilm-n32pc-seed1",
                     "minilm-n32pc-seed2"]


def test_a_row_ahead_then_behind_says_both(tmp_path):
    bench = tmp_path / "bench"
    for size, train, bow, enc in (("n8pc", 16, 100, 40), ("n32pc", 64, 50, 52),
                                  ("n128pc", 256, 10, 60)):
        _run(bench, f"logreg-{size}", "sklearn", _wrong(0, bow), train)
        _run(bench, f"minilm-{size}", "hf", _wrong(200, enc), train)
    (cross,) = crossovers(sweep_points(load_rows(bench)))
    assert cross.size == "n8pc"
    assert cross.standing() == "ahead at n8pc; level at n32pc; behind at n128pc"
