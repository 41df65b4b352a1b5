"""Bench reports: row order, number formatting, determinism, CSV values and plots."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from matplotlib import image as mpimg

from sentibench.core.errors import SentibenchError
from sentibench.report import rows as bench_rows
from sentibench.report import tables as report
from sentibench.report.build import build_report
from sentibench.report.plots import ACCURACY_PLOT, LOSS_PLOT
from sentibench.run.results import FAILURES_FILE, PLAN_FILE, RunResult, write_results

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CPU = {"device": "cpu", "python": "3.11"}
GPU = {"device": "cuda:0", "device_name": "NVIDIA H100 80GB HBM3"}


def _result(model: str, acc: tuple[float, float, float], seconds: float,
            **extra: object) -> RunResult:
    return RunResult(
        model=model, kind=str(extra.pop("kind", "sklearn")), command=["sentibench", model],
        accuracy=dict(zip(("train", "validation", "test"), acc, strict=True)),
        train_seconds=seconds, total_seconds=seconds + 1.5, config=extra.pop("config", {}),
        data=extra.pop("data", {}), environment=extra.pop("environment", CPU),
        started_at="2024-01-01T00:00:00+00:00", finished_at="2024-01-01T00:10:00+00:00",
        **extra)


def _gpt2() -> RunResult:
    history = {"steps": [0, 50, 100], "examples_seen": [8, 408, 808],
               "train_loss": [0.71, 0.52, 0.31], "val_loss": [0.70, 0.55, 0.36],
               "epoch_train_accuracy": [0.95], "epoch_val_accuracy": [0.94]}
    config = {"trainable_layers": "all", "data": {"max_train_samples": 2000,
                                                  "max_eval_samples": 500}}
    return _result("gpt2-small", (0.95641, 0.92318, 0.91876), 568.8, kind="gpt2",
                   params=124_441_346, trainable_params=124_441_346, history=history,
                   config=config, environment=GPU,
                   data={"rows": {"train": 2000, "validation": 500, "test": 500}})


@pytest.fixture()
def bench(tmp_path: Path) -> Path:
    """Rows written in an order unlike the reference's, to prove sorting."""
    root = tmp_path / "bench"
    write_results(root / "zz-custom", _result(
        "prajjwal1/bert-tiny", (0.8, 0.78, 0.7712), 42.0, kind="hf", params=4_386,
        trainable_params=4_386, config={"data": {"max_train_samples": None,
                                                 "max_eval_samples": None}}))
    write_results(root / "logreg", _result("logreg", (0.998, 0.8862, 0.8885), 12.3))
    write_results(root / "dummy", _result("dummy", (0.5001, 0.5014, 0.4991), 0.0))
    write_results(root / "gpt2-small", _gpt2())
    (root / "distilbert").mkdir()  # a failed run leaves its directory behind
    (root / FAILURES_FILE).write_text(
        json.dumps({"distilbert": "CUDA out of memory | try a smaller batch"}))
    return root


def _table_rows(markdown: str) -> list[list[str]]:
    lines = [ln for ln in markdown.splitlines() if ln.startswith("| ")]
    return [[c.strip() for c in ln.strip("|").split(" | ")] for ln in lines[1:]]


def test_collect_orders_rows_like_the_reference(bench: Path) -> None:
    models = [r.model for r in bench_rows.collect(bench)]
    assert models == ["gpt2-small", "logreg", "dummy", "prajjwal1/bert-tiny"]
    names = [r.name for r in report.load_rows(bench)]
    assert names == ["gpt2-small", "distilbert", "logreg", "dummy", "zz-custom"]


def test_table_numbers_and_reference_columns(bench: Path) -> None:
    build_report(bench)
    rows = {r[0]: dict(zip(report._COLUMNS, r, strict=True))
            for r in _table_rows((bench / "results.md").read_text(encoding="utf-8"))}
    gpt = rows["gpt2-small"]
    assert (gpt["train acc"], gpt["val acc"], gpt["test acc"]) == ("95.64", "92.32", "91.88")
    assert gpt["params"] == "124.4M" and gpt["train time"] == "9.48 min"
    assert gpt["device"] == "cuda:0 (NVIDIA H100 80GB HBM3)"
    assert (gpt["ref. test acc"], gpt["ref. time"]) == ("91.88", "9.48 min")
    assert (rows["logreg"]["ref. test acc"], rows["logreg"]["ref. time"]) == ("88.85", "–")
    assert rows["logreg"]["train time"] == "12.3 s" and rows["logreg"]["params"] == "–"
    assert rows["dummy"]["train time"] == "0.00 s" and rows["dummy"]["device"] == "cpu"
    custom = rows["zz-custom (prajjwal1/bert-tiny)"]
    assert (custom["ref. test acc"], custom["ref. time"]) == ("", "")
    assert custom["params"] == "4.4K" and custom["test acc"] == "77.12"
    failed = rows["distilbert"]
    assert failed["status"] == r"failed: CUDA out of memory \| try a smaller batch"
    assert failed["test acc"] == "" and failed["ref. test acc"] == "91.40"


def test_markdown_notes_slice_and_has_no_dates(bench: Path) -> None:
    build_report(bench)
    text = (bench / "results.md").read_text(encoding="utf-8")
    assert "`gpt2-small` ran on a data slice: max_train_samples=2000" in text
    assert "zz-custom` ran on a data slice" not in text  # None limits are the full splits
    assert "2024" not in text and str(bench) not in text
    assert "- `zz-custom`: custom model (not in the registry)" in text


def test_rebuild_is_byte_identical(bench: Path) -> None:
    build_report(bench)
    first = {n: (bench / n).read_bytes() for n in ("results.md", "results.csv")}
    build_report(bench)
    assert {n: (bench / n).read_bytes() for n in first} == first


def test_csv_values(bench: Path) -> None:
    build_report(bench)
    frame = pd.read_csv(bench / "results.csv", keep_default_na=False, na_values=[""])
    assert list(frame["run"]) == ["gpt2-small", "distilbert", "logreg", "dummy", "zz-custom"]
    gpt = frame.set_index("run").loc["gpt2-small"]
    assert gpt["test_accuracy"] == pytest.approx(0.91876)
    assert gpt["train_seconds"] == pytest.approx(568.8)
    assert gpt["ref_train_seconds"] == pytest.approx(568.8)
    assert gpt["params"] == 124_441_346 and gpt["max_train_samples"] == 2000
    failed = frame.set_index("run").loc["distilbert"]
    assert failed["status"].startswith("failed: CUDA out of memory")
    assert pd.isna(failed["test_accuracy"]) and failed["ref_test_accuracy"] == 0.914
    assert pd.isna(frame.set_index("run").loc["zz-custom", "ref_test_accuracy"])


def _check_png(path: Path, min_px: int = 300) -> None:
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    pixels = mpimg.imread(path)
    height, width = pixels.shape[:2]
    assert height >= min_px and width >= min_px
    assert pixels[..., :3].std() > 0.01  # not a blank canvas


def test_plots_are_valid_pngs(bench: Path) -> None:
    written = build_report(bench)
    names = [p.name for p in written]
    assert names == ["results.md", "results.csv", "accuracy_vs_time.png", "loss_curves.png",
                     "report.html"]
    for path in written[2:-1]:
        _check_png(path)
    assert not list(bench.glob(".*.tmp"))  # atomic writes leave no temporaries


def test_no_neural_runs_means_no_loss_plot(tmp_path: Path) -> None:
    root = tmp_path / "bench"
    write_results(root / "dummy", _result("dummy", (0.5, 0.5, 0.5), 0.0))
    (root / LOSS_PLOT).write_bytes(b"stale")
    written = build_report(root)
    assert [p.name for p in written] == ["results.md", "results.csv", "accuracy_vs_time.png",
                                         "report.html"]
    assert not (root / LOSS_PLOT).exists()
    _check_png(root / ACCURACY_PLOT)


def test_only_failures_still_reports(tmp_path: Path) -> None:
    (tmp_path / FAILURES_FILE).write_text(json.dumps({"bert": "boom"}))
    written = build_report(tmp_path)
    assert "| bert |" in written[0].read_text(encoding="utf-8")
    _check_png(written[2])


@pytest.mark.parametrize("setup", ["empty", "no-results", "missing"])
def test_not_a_bench_is_a_one_line_error(tmp_path: Path, setup: str) -> None:
    target = tmp_path / "missing" if setup == "missing" else tmp_path
    if setup == "no-results":
        (tmp_path / "some-dir").mkdir()
        (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(SentibenchError) as info:
        build_report(target)
    assert "\n" not in str(info.value) and str(target) in str(info.value)
    assert not (tmp_path / "results.md").exists()


def test_malformed_failures_file_is_an_error(bench: Path) -> None:
    (bench / FAILURES_FILE).write_text("[1, 2")
    with pytest.raises(SentibenchError, match="failures.json: not valid JSON"):
        bench_rows.collect(bench)


def test_format_table_from_results_and_failures() -> None:
    table = report.format_table([_gpt2(), _result("logreg", (1.0, 0.9, 0.9), 3.0)],
                                failures={"dummy": "oops\nsecond line"})
    rows = _table_rows(table)
    assert [r[0] for r in rows] == ["gpt2-small", "logreg", "dummy"]
    assert rows[2][-1] == "failed: oops second line"
    assert table.splitlines()[0].startswith("| model | params | trainable |")


@pytest.mark.parametrize(("value", "text"), [
    (None, "–"), (999, "999"), (4_386, "4.4K"), (66_955_010, "67.0M"), (1_557_611_200, "1.6B")])
def test_human_count(value: int | None, text: str) -> None:
    assert report.human_count(value) == text


@pytest.mark.parametrize(("value", "text"), [
    (0.0, "0.00 s"), (9.876, "9.88 s"), (42.04, "42.0 s"), (568.8, "9.48 min"),
    (7200.0, "2.00 h")])
def test_human_seconds(value: float, text: str) -> None:
    assert report.human_seconds(value) == text


def test_row_with_results_and_failure_keeps_numbers(bench: Path) -> None:
    (bench / FAILURES_FILE).write_text(json.dumps({"logreg": "disk full"}))
    row = {r.name: r for r in report.load_rows(bench)}["logreg"]
    assert row.result is not None and row.status == "ok (failures.json also lists: disk full)"
    unfinished = {r.name: r for r in report.load_rows(bench)}["distilbert"]
    assert unfinished.status == "unfinished: no results.json"


def test_seeded_runs_of_a_row_show_mean_std_and_range(tmp_path):
    root = tmp_path / "bench"
    tests = (0.80, 0.82, 0.84)
    for seed, acc in zip((123, 124, 125), tests, strict=True):
        write_results(root / f"minilm-seed{seed}", _result(
            "minilm", (0.9, 0.85, acc), 100.0 + seed - 123, kind="hf", params=22_700_000,
            trainable_params=22_700_000,
            metrics={"test": {"macro_f1": acc - 0.01}}))
    write_results(root / "logreg", _result("logreg", (0.998, 0.8862, 0.8885), 12.3))
    table = report.format_table(report.load_rows(root))
    minilm = next(line for line in table.splitlines() if line.startswith("| minilm |"))
    assert "82.00 ± 2.00 (80.00–84.00)" in minilm  # test accuracy: mean ± sample std (range)
    assert "81.00 ± 2.00 (79.00–83.00)" in minilm  # test macro-F1
    assert "101 s" in minilm or "1.68 min" in minilm  # mean training time
    assert minilm.endswith("| ok, 3 seeds |")
    assert sum(line.startswith("| minilm") for line in table.splitlines()) == 1
    assert "| logreg |" in table


def test_a_preset_rows_own_figures_and_note_come_from_the_bench_plan(tmp_path):
    """Two rows of one model (the book's ablations): each shows its own published figures
    and note from bench.json, not the model's registry entry."""
    bench = tmp_path / "bench"
    write_results(bench / "01-chapter", _result("gpt2-small", (0.97, 0.99, 0.95), 20.0,
                                                 kind="gpt2"))
    write_results(bench / "16-true-last-token", _result("gpt2-small", (0.99, 0.98, 0.98),
                                                         21.0, kind="gpt2"))
    experiments = [
        {"name": "01-chapter", "model": "gpt2-small", "note": "the chapter's setting",
         "reference": {"row": 1, "params_label": "124M", "test_accuracy": 0.95,
                       "train_minutes": 0.28, "train_accuracy": 0.9663,
                       "validation_accuracy": 0.9933}},
        {"name": "16-true-last-token", "model": "gpt2-small", "note": "--trainable_token_pos",
         "reference": {"row": 16, "params_label": "124M", "test_accuracy": 0.9833,
                       "train_minutes": 0.30}}]
    (bench / PLAN_FILE).write_text(json.dumps({"dataset": "sms-spam",
                                               "experiments": experiments}))
    rows = report.load_rows(bench)
    assert [r.name for r in rows] == ["01-chapter", "16-true-last-token"]  # book order
    assert [r.reference.test_accuracy for r in rows] == [0.95, 0.9833]
    text = report.format_markdown(rows)
    chapter = next(line for line in text.splitlines() if line.startswith("| 01-chapter"))
    assert report.percent(0.95) in chapter and report.percent(0.9833) not in chapter
    notes = next(line for line in text.splitlines() if line.startswith("- `01-chapter`"))
    assert "the chapter's setting" in notes
    assert (f"published (row 1): train {report.percent(0.9663)}, validation "
            f"{report.percent(0.9933)}, test {report.percent(0.95)}") in notes
    plain = tmp_path / "plain"  # without a plan: the registry's figures (IMDb)
    write_results(plain / "gpt2-small", _result("gpt2-small", (0.9, 0.9, 0.9), 1.0,
                                                  kind="gpt2"))
    (row,) = report.load_rows(plain)
    assert row.reference.test_accuracy == 0.9188 and row.note is None
