"""The verdict on top of the report, and the ranked row order, on constructed benches:
run directories written with the project's own writers (results.json and the test
predictions), read back by the report exactly as after a real bench."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from sentibench.report.build import build_report
from sentibench.report.compare import run_stats
from sentibench.report.rows import load_rows
from sentibench.report.verdict import ranked, verdict
from sentibench.run.results import FAILURES_FILE, RunResult, write_predictions, write_results

N = 200
LABELS = np.arange(N) % 2


def _run(bench: Path, name: str, wrong: range, seconds: float, model: str = "logreg",
         predictions: bool = True) -> None:
    """A finished run that gets exactly the test rows in ``wrong`` wrong."""
    predicted = LABELS.copy()
    predicted[list(wrong)] = 1 - predicted[list(wrong)]
    probs = np.where(np.arange(2)[None, :] == predicted[:, None], 0.9, 0.1)
    accuracy = 1 - len(wrong) / N
    write_results(bench / name, RunResult(
        model=model, kind="sklearn", command=["sentibench", name],
        accuracy={"train": 1.0, "validation": accuracy, "test": accuracy},
        train_seconds=seconds, total_seconds=seconds + 1, config={}, data={},
        environment={"device": "cpu"}, started_at="2024-01-01T00:00:00+00:00",
        finished_at="2024-01-01T00:01:00+00:00", labels=["ham", "spam"]))
    if predictions:
        write_predictions(bench / name, LABELS, probs, ["ham", "spam"])


def _verdict(bench: Path) -> str:
    rows = load_rows(bench)
    return verdict(rows, run_stats(rows))


def _table_names(markdown: str, header: str) -> list[str]:
    lines = markdown.splitlines()
    start = lines.index(next(line for line in lines if line.startswith(header)))
    return [line.split(" | ")[0].strip("| ") for line in lines[start + 2:]
            if line.startswith("| ")][:99]


def test_exact_tie_is_a_tie_and_names_the_cheapest(tmp_path):
    _run(tmp_path, "slow", range(0, 20), 26.0, model="minilm")
    _run(tmp_path, "fast", range(20, 40), 0.04, model="logreg-tfidf")
    _run(tmp_path, "dummy", range(0, 100), 0.0, model="dummy")
    assert _verdict(tmp_path) == (
        "Verdict: fast and slow tie for best with exactly the same 90.00 % test accuracy "
        "(95 % CI 85.06–93.43 %, 200 test rows); the cheapest of them is fast (0.04 s of "
        "training against 26.0 s); no other row is within noise of them; worse beyond noise "
        "(p < 0.05): dummy.")
    build_report(tmp_path)
    markdown = (tmp_path / "results.md").read_text(encoding="utf-8")
    assert markdown.splitlines()[2] == _verdict(tmp_path)  # right under the title
    assert _table_names(markdown, "| model |")[:3] == ["fast (logreg-tfidf)", "slow (minilm)",
                                                       "dummy"]
    stats_rows = [line for line in markdown.splitlines() if line.startswith(("| fast", "| slow"))]
    tied = [line.split(" | ")[7] for line in stats_rows if "[" in line]
    assert tied == ["tied for best", "tied for best"]  # not one "best" and one "tied"


def test_clear_winner(tmp_path):
    _run(tmp_path, "good", range(0, 10), 5.0)
    _run(tmp_path, "poor", range(10, 80), 1.0)
    assert _verdict(tmp_path) == (
        "Verdict: good is best with 95.00 % test accuracy (95 % CI 91.04–97.26 %, 200 test "
        "rows); no other row is within noise of it; worse beyond noise (p < 0.05): poor.")


def test_tied_but_cheaper_is_named(tmp_path):
    for name, wrong, seconds in (("big", range(0, 18), 30.0), ("small", range(0, 20), 0.5),
                                 ("dummy", range(0, 100), 0.0)):
        _run(tmp_path, name, wrong, seconds, model={"big": "minilm"}.get(name, name))
    assert _verdict(tmp_path) == (
        "Verdict: big is best with 91.00 % test accuracy (95 % CI 86.22–94.23 %, 200 test "
        "rows); within noise of it (Holm-corrected McNemar p ≥ 0.05): small; the cheapest of "
        "these good-enough rows is small (0.50 s of training against 30.0 s); worse beyond "
        "noise (p < 0.05): dummy.")


def test_failed_row_is_named_and_ranked_last(tmp_path):
    (tmp_path / FAILURES_FILE).write_text(json.dumps({"bert": "CUDA out of memory"}))
    _run(tmp_path, "logreg", range(0, 30), 1.0)
    _run(tmp_path, "zz-better", range(0, 10), 2.0)
    assert _verdict(tmp_path) == (
        "Verdict: zz-better is best with 95.00 % test accuracy (95 % CI 91.04–97.26 %, 200 "
        "test rows); no other row is within noise of it; worse beyond noise (p < 0.05): "
        "logreg; failed: bert.")
    assert [r.name for r in ranked(load_rows(tmp_path))] == ["zz-better", "logreg", "bert"]
    build_report(tmp_path)
    markdown = (tmp_path / "results.md").read_text(encoding="utf-8")
    assert _table_names(markdown, "| model |")[:3] == ["zz-better (logreg)", "logreg", "bert"]
    (tmp_path / "half").mkdir()  # a row that has not written its results yet
    assert _verdict(tmp_path).endswith("; failed: bert; unfinished: half.")


def test_seeded_rows_report_their_spread(tmp_path):
    _run(tmp_path, "minilm-seed1", range(0, 10), 20.0, model="minilm")
    _run(tmp_path, "minilm-seed2", range(0, 14), 22.0, model="minilm")
    _run(tmp_path, "logreg", range(0, 40), 0.1)
    assert _verdict(tmp_path) == (
        "Verdict: minilm-seed1 is best with 95.00 % test accuracy (95 % CI 91.04–97.26 %, 200 "
        "test rows); within noise of it (Holm-corrected McNemar p ≥ 0.05): minilm-seed2; "
        "worse beyond noise (p < 0.05): logreg; minilm over 2 seeds: 94.00 ± 1.41 "
        "(93.00–95.00) % test accuracy (mean ± sd, min–max).")
    build_report(tmp_path)
    markdown = (tmp_path / "results.md").read_text(encoding="utf-8")
    assert _table_names(markdown, "| model |")[:2] == ["minilm", "logreg"]


def test_without_predictions_only_accuracy_is_claimed(tmp_path):
    _run(tmp_path, "a", range(0, 10), 3.0, predictions=False)
    _run(tmp_path, "b", range(10, 20), 1.0, predictions=False)
    assert _verdict(tmp_path) == (
        "Verdict: b and a share the highest test accuracy, 95.00 %, and the cheapest of them "
        "is b; no test "
        "predictions were saved, so no interval or significance test is shown.")


def test_the_reference_note_shows_only_beside_the_rows_it_is_about(tmp_path):
    from sentibench.report.html_page import REFERENCE_NOTE, _e

    plain, with_roberta = tmp_path / "plain", tmp_path / "roberta"
    _run(plain, "logreg", range(0, 20), 1.0)
    _run(with_roberta, "logreg", range(0, 20), 1.0)
    _run(with_roberta, "roberta", range(0, 10), 100.0, model="roberta")
    for bench in (plain, with_roberta):
        build_report(bench)
    assert _e(REFERENCE_NOTE) not in (plain / "report.html").read_text(encoding="utf-8")
    assert _e(REFERENCE_NOTE) in (with_roberta / "report.html").read_text(encoding="utf-8")


def test_runs_made_from_different_data_are_flagged_first(tmp_path):
    for name, wrong, digest in (("a", range(0, 10), "1"), ("b", range(0, 20), "1"),
                                ("c", range(0, 30), "2")):
        _run(tmp_path, name, wrong, 1.0)
        path = tmp_path / name / "results.json"
        saved = json.loads(path.read_text())
        saved["data"] = {"sha256": {"train.csv": digest * 64}}
        path.write_text(json.dumps(saved))
    assert _verdict(tmp_path).startswith(
        "Verdict: NOT COMPARABLE: these runs read 2 different versions of the data (file "
        "checksums differ: a and b on version 1; c on version 2); a is best")
    _run(tmp_path / "same", "a", range(0, 10), 1.0)
    _run(tmp_path / "same", "b", range(0, 20), 1.0)
    assert "NOT COMPARABLE" not in _verdict(tmp_path / "same")
