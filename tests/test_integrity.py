"""A saved run is checked before it is used: a run directory with a file deleted,
truncated or edited is refused with one line naming the file, never scored with a
fallback tokenizer or randomly initialised layers (through the real CLI)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sentibench.cli import main
from sentibench.run.results import read_results
from tests.helpers import FIRST_WORD_VOCAB, first_word_csvs, write_tiny_encoder_dir

TEXTS = ["good the a so", "bad so the a"]


@pytest.fixture(scope="module")
def saved_runs(tmp_path_factory):
    """A tiny encoder run and a bag-of-words run, as train-hf and train-logreg save them."""
    base = tmp_path_factory.mktemp("integrity")
    data = first_word_csvs(base / "data", (64, 16, 16), ("bad", "good"), 3)
    model = write_tiny_encoder_dir(base / "enc", "bert", FIRST_WORD_VOCAB)
    encoder, logreg = base / "encoder", base / "logreg"
    assert main(["train-hf", "--model", str(model), "--max-length", "8", "--num_epochs", "1",
                 "--data-dir", str(data), "--out", str(encoder), "--device", "cpu"]) == 0
    assert main(["train-logreg", "--data-dir", str(data), "--out", str(logreg)]) == 0
    return encoder, logreg


def _copy(run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run, tmp_path / run.name))


def _predict_error(capsys, run: Path) -> str:
    capsys.readouterr()
    assert main(["predict", str(run), *TEXTS]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    return captured.err.removeprefix("sentibench predict: error: ").rstrip("\n")


def test_saving_records_every_model_file_and_no_run_record(saved_runs):
    encoder, logreg = saved_runs
    files = read_results(encoder).files
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(files)
    assert not set(files) & {"results.json", "test_predictions.csv", "train_predictions.csv"}
    assert files["model.safetensors"]["bytes"] == (encoder / "model.safetensors").stat().st_size
    assert set(read_results(logreg).files) == {"model.skops"}


def test_an_intact_copy_predicts(saved_runs, tmp_path, capsys):
    run = _copy(saved_runs[0], tmp_path)
    assert main(["predict", str(run), *TEXTS]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2


def test_a_deleted_tokenizer_is_named(saved_runs, tmp_path, capsys):
    run = _copy(saved_runs[0], tmp_path)
    (run / "tokenizer.json").unlink()
    assert _predict_error(capsys, run) == (
        f"{run / 'tokenizer.json'}: missing (the run saved it; the run directory is "
        "incomplete)")


@pytest.mark.parametrize("which", [0, 1])
def test_a_truncated_model_file_is_named_as_truncated(saved_runs, tmp_path, capsys, which):
    run = _copy(saved_runs[which], tmp_path)
    name = "model.safetensors" if which == 0 else "model.skops"
    whole = (run / name).read_bytes()
    (run / name).write_bytes(whole[: len(whole) // 2])
    assert _predict_error(capsys, run) == (
        f"{run / name}: truncated ({len(whole) // 2:,} of {len(whole):,} bytes)")


def test_an_edited_config_is_refused(saved_runs, tmp_path, capsys):
    run = _copy(saved_runs[0], tmp_path)
    config = json.loads((run / "config.json").read_text())
    config["num_hidden_layers"] += 1
    (run / "config.json").write_text(json.dumps(config, indent=4))  # longer than saved
    assert _predict_error(capsys, run) == (
        f"{run / 'config.json'}: changed since the run was saved (sha256 differs from "
        "results.json); retrain, or restore the file")


@pytest.mark.parametrize("delta, kind", [(1, "missing"), (-1, "unexpected")])
def test_weights_that_do_not_match_the_config_are_refused_even_unrecorded(
        saved_runs, tmp_path, capsys, delta, kind):
    """A run saved before files were recorded: the loader itself refuses what
    transformers would only warn about (random or dropped layers)."""
    run = _copy(saved_runs[0], tmp_path)
    results = json.loads((run / "results.json").read_text())
    results.pop("files")
    (run / "results.json").write_text(json.dumps(results))
    config = json.loads((run / "config.json").read_text())
    config["num_hidden_layers"] += delta
    (run / "config.json").write_text(json.dumps(config))
    err = _predict_error(capsys, run)
    assert err.startswith(f"{run}: the weights do not match config.json: ")
    assert f"tensors {kind} (" in err


def test_the_command_line_reports_it_in_one_line(saved_runs, tmp_path):
    run = _copy(saved_runs[1], tmp_path)
    (run / "model.skops").write_bytes(b"")
    done = subprocess.run([sys.executable, "-m", "sentibench", "predict", str(run), "great"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    size = read_results(run).files["model.skops"]["bytes"]
    assert done.stderr == (f"sentibench predict: error: {run / 'model.skops'}: truncated "
                           f"(0 of {size:,} bytes)\n")
    assert done.stdout == ""
