"""The SetFit row (models/setfit.py, run/fitted.py): the real MiniLM from PyPI tuned on a
handful of examples through the setfit library, saved without pickle, reloaded by
``predict`` and ``serve`` to the probabilities it saved; three classes; a bench row with
its estimate, seeds and search space; and the one line a user without the extra gets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sentibench.bench.plan import plan, row_options
from sentibench.bench.tune import search_space
from sentibench.cli import main
from sentibench.run.results import read_predictions, read_results
from sentibench.serve.predict import predict_proba
from tests.helpers import noisy_three_classes, synthetic_csvs

EXTRA_LINE = 'pip install "sentibench[setfit]"'
FAST = ["--num-iterations", "1", "--max-length", "16", "--batch-size", "8", "--device", "cpu"]


def _train(data: Path, out: Path, *extra: str) -> Path:
    assert main(["train-setfit", "--data-dir", str(data), "--out", str(out), *FAST,
                 *extra]) == 0
    return out


@pytest.fixture(scope="module")
def two_class_run(tmp_path_factory, minilm_dir) -> tuple[Path, Path]:
    """A run trained on 8 examples (4 + 4 praise / complaint 'reviews'), and its data."""
    base = tmp_path_factory.mktemp("setfit")
    data = synthetic_csvs(base / "data", rows=(8, 6, 6))
    return _train(data, base / "run"), data


@pytest.mark.slow
def test_a_run_reloads_to_the_probabilities_it_saved(two_class_run):
    run, data = two_class_run
    result = read_results(run)
    assert result.kind == "setfit" and result.model == "setfit-minilm"
    assert result.data["rows"] == {"train": 8, "validation": 6, "test": 6}
    assert {"body/model.safetensors", "head.skops", "setfit.json"} <= set(result.files)
    assert not list(run.rglob("*.pkl")) and not list(run.rglob("*.bin"))  # nothing unpickled
    assert result.config["num_iterations"] == 1 and result.config["max_length"] == 16
    assert result.config["model_sha256"]  # the local MiniLM, fingerprinted for reuse checks
    for split in ("train", "validation", "test"):
        labels, saved = read_predictions(run, result.labels, split)
        texts = pd.read_csv(data / f"{split}.csv")["text"].tolist()
        again = predict_proba(run, texts)
        assert again.shape == (len(texts), 2)
        np.testing.assert_allclose(again, saved, atol=1e-6)  # the CSV keeps 6 decimals
        assert result.accuracy[split] == pytest.approx((saved.argmax(1) == labels).mean())


@pytest.mark.slow
def test_predict_prints_the_saved_probabilities(two_class_run, tmp_path, capsys):
    run, data = two_class_run
    texts = pd.read_csv(data / "test.csv")["text"].tolist()
    (tmp_path / "in.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["predict", str(run), "--file", str(tmp_path / "in.txt")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    _, saved = read_predictions(run, ["negative", "positive"], "test")
    assert len(lines) == len(texts)
    for line, want in zip(lines, saved, strict=True):
        every = line.split("\t")[2]
        assert every == f"negative={want[0]:.4f} positive={want[1]:.4f}"


@pytest.mark.slow
def test_a_changed_head_is_refused(two_class_run, tmp_path, capsys):
    import shutil

    run, _ = two_class_run
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    with open(copy / "head.skops", "ab") as handle:
        handle.write(b"\0")
    assert main(["predict", str(copy), "a great film"]) == 2
    assert "head.skops: changed since the run was saved" in capsys.readouterr().err


@pytest.mark.slow
def test_three_classes(tmp_path, minilm_dir):
    data = noisy_three_classes(tmp_path / "data")
    for split, keep in (("train", 9), ("validation", 6), ("test", 6)):
        path = data / f"{split}.csv"
        frame = pd.read_csv(path)
        frame.groupby("label").head(keep // 3).to_csv(path, index=False)  # 3 per class
    run = _train(data, tmp_path / "run", "--C", "10")
    result = read_results(run)
    assert result.labels == ["a", "b", "c"] and result.metrics["test"]["per_class"]
    _, saved = read_predictions(run, result.labels, "test")
    texts = pd.read_csv(data / "test.csv")["text"].tolist()
    again = predict_proba(run, texts)
    assert again.shape == (6, 3)
    np.testing.assert_allclose(again, saved, atol=1e-6)
    np.testing.assert_allclose(again.sum(1), 1.0, atol=1e-9)


@pytest.mark.slow
def test_served_answers_equal_the_saved_probabilities(two_class_run):
    from tests.test_serve import Server

    run, data = two_class_run
    texts = pd.read_csv(data / "test.csv")["text"].tolist()
    _, saved = read_predictions(run, ["negative", "positive"], "test")
    server = Server([run])
    try:
        status, body, _ = server.call("POST", "/predict", {"texts": texts})
    finally:
        server.stop()
    assert status == 200, body
    got = np.array([[r["probabilities"][name] for name in ("negative", "positive")]
                    for r in body["results"]])
    np.testing.assert_allclose(got, saved, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_a_bench_row_beside_the_baselines(tmp_path, minilm_dir, capsys):
    data = synthetic_csvs(tmp_path / "data", rows=(8, 6, 6))
    out = tmp_path / "bench"
    assert main(["bench", "--models", "dummy,setfit-minilm", "--data-dir", str(data),
                 "--out", str(out), "--device", "cpu",
                 "--set", "setfit-minilm.num_iterations=1",
                 "--set", "setfit-minilm.max_length=16"]) == 0
    result = read_results(out / "setfit-minilm")
    assert result.kind == "setfit" and result.config["device"] == "cpu"
    table = (out / "results.md").read_text(encoding="utf-8")
    assert "setfit-minilm" in table and "dummy" in table


def test_dry_run_estimates_the_row_at_minilm_speed(tmp_path, capsys):
    data = synthetic_csvs(tmp_path / "data", rows=(8, 6, 6))
    assert main(["bench", "--models", "dummy,logreg,logreg-tfidf,minilm,setfit-minilm",
                 "--data-dir", str(data), "--device", "cpu", "--dry-run"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines()
               if line.startswith("| 5 | setfit-minilm"))
    assert "(minilm)" in row and "16,000 training texts x 128 tokens" in row
    assert " ? " not in row  # an estimate, not an unknown


def test_seeds_device_and_search_space_reach_the_row():
    rows = plan("quick", ["logreg", "setfit-minilm"], {}, seeds=[1, 2])
    assert [e.name for e in rows] == ["logreg", "setfit-minilm-seed1", "setfit-minilm-seed2"]
    _, args, train = row_options(rows[2].family, rows[2].model, rows[2].settings,
                                 device="cpu")
    assert (args.seed, args.device, args.model, train) == (2, "cpu", "setfit-minilm", None)
    space = search_space(rows[1])
    assert set(space) == {"body_learning_rate", "num_iterations", "C"}
    assert space["num_iterations"].kind == "int"


def test_bad_settings_fail_at_plan_time(capsys):
    for setting, words in (("max_length=600", "exceeds the 512 tokens"),
                           ("num_iterations=0", "num_iterations"),
                           ("device=cpu", "unknown override key")):  # bench-wide
        assert main(["bench", "--models", "setfit-minilm", "--dry-run",
                     "--set", f"setfit-minilm.{setting}"]) == 2
        err = capsys.readouterr().err
        assert words in err and err.count("\n") == 1


@pytest.mark.slow
def test_without_the_extra_every_command_says_how_to_install_it(two_class_run, tmp_path):
    """setfit hidden from a subprocess (None in sys.modules, as for a package that is not
    installed): choosing the row, training it or loading a saved run is one line naming
    the extra."""
    run, data = two_class_run
    (tmp_path / "sitecustomize.py").write_text("import sys\nsys.modules['setfit'] = None\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(tmp_path), *filter(None, [os.environ.get("PYTHONPATH")]),
         str(Path(__file__).resolve().parents[1] / "src")])}
    for argv in (["bench", "--models", "logreg,setfit-minilm", "--data-dir", str(data),
                  "--dry-run"],
                 ["train-setfit", "--data-dir", str(data), "--out", str(tmp_path / "run")],
                 ["predict", str(run), "a great film"]):
        done = subprocess.run([sys.executable, "-m", "sentibench", *argv], env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 2, done.stderr
        assert done.stderr.count("\n") == 1 and EXTRA_LINE in done.stderr, done.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_tune_searches_the_row_and_keeps_each_trial_a_run(tmp_path, minilm_dir, capsys):
    import json

    data = synthetic_csvs(tmp_path / "data", rows=(8, 6, 6))
    study = tmp_path / "study"
    assert main(["tune", "--model", "setfit-minilm", "--data-dir", str(data), "--trials", "2",
                 "--space", "num_iterations=int:1:2,C=log:0.1:10", "--device", "cpu",
                 "--study-dir", str(study)]) == 0
    summary = json.loads((study / "study-summary.json").read_text(encoding="utf-8"))
    assert [t["state"] for t in summary["trials"]] == ["COMPLETE"] * 2
    for trial in summary["trials"]:
        result = read_results(study / trial["run_dir"])
        assert result.kind == "setfit"
        assert trial["value"] == result.accuracy["validation"]
        assert result.config["num_iterations"] == trial["params"]["num_iterations"]


@pytest.mark.slow
def test_the_same_seed_trains_the_same_model_and_another_does_not(two_class_run, tmp_path):
    run, data = two_class_run
    _, first = read_predictions(run, ["negative", "positive"], "test")
    _, same = read_predictions(_train(data, tmp_path / "same"), ["negative", "positive"], "test")
    np.testing.assert_array_equal(same, first)
    _, other = read_predictions(_train(data, tmp_path / "other", "--seed", "7"),
                                ["negative", "positive"], "test")
    assert not np.array_equal(other, first)


def test_a_device_the_machine_lacks_fails_before_the_row_runs(tmp_path, capsys):
    import torch

    missing = "mps" if torch.cuda.is_available() else "cuda"
    data = synthetic_csvs(tmp_path / "data", rows=(8, 6, 6))
    out = tmp_path / "bench"
    assert main(["bench", "--models", "setfit-minilm", "--data-dir", str(data),
                 "--out", str(out), "--device", missing]) == 2
    err = capsys.readouterr().err
    assert f"--device {missing}: " in err and "not available" in err and err.count("\n") == 1
    assert not (out / "setfit-minilm").exists()


@pytest.mark.slow
def test_training_progress_is_a_few_lines_in_a_log(minilm_dir, tmp_path, capfd):
    import datasets
    from transformers.utils import logging as tf_logging

    data = synthetic_csvs(tmp_path / "data", rows=(8, 6, 6))
    capfd.readouterr()
    _train(data, tmp_path / "run")  # 8 rows x 1 iteration x 2 = 16 pairs: 2 batches of 8
    err = capfd.readouterr().err
    assert "setfit encoder: 2/2 step" in err
    for bar in ("Loading weights", "Map:", "Writing model shards", "it/s]", "s/it]"):
        assert bar not in err  # the libraries' own bars are off while it trains and saves
    assert datasets.is_progress_bar_enabled()  # and their settings are put back
    assert tf_logging.is_progress_bar_enabled()
