"""The command line: light commands start without torch, choices are refused by argparse."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from sentibench.cli import build_parser, main

HEAVY = ("torch", "transformers")

_PROBE = """
import contextlib, io, sys
from sentibench.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        code = main(sys.argv[1:])
    except SystemExit as exc:
        code = exc.code
print(code, *sorted(m for m in {heavy!r} if m in sys.modules))
"""


def _modules_after(argv: list[str], cwd: Path) -> tuple[int, list[str]]:
    """Run one command in a fresh interpreter; its exit code and the heavy modules loaded."""
    proc = subprocess.run([sys.executable, "-c", _PROBE.format(heavy=HEAVY), *argv],
                          capture_output=True, text=True, cwd=cwd, timeout=300, check=True)
    code, *loaded = proc.stdout.split()
    assert code == "0", proc.stderr
    return int(code), loaded


@pytest.mark.parametrize("argv", [["--help"], ["bench", "--help"], ["train-gpt", "--help"],
                                  ["train-hf", "--help"], ["predict", "--help"]])
def test_help_imports_neither_torch_nor_transformers(argv, tmp_path):
    assert _modules_after(argv, tmp_path) == (0, [])


def _tiny_data(directory: Path) -> Path:
    directory.mkdir()
    for split, rows in (("train", 40), ("validation", 10), ("test", 10)):
        texts = [("good fine great" if i % 2 else "bad awful poor") + f" {i}"
                 for i in range(rows)]
        pd.DataFrame({"text": texts, "label": [i % 2 for i in range(rows)]}).to_csv(
            directory / f"{split}.csv", index=False)
    return directory


def test_train_logreg_and_report_run_without_torch(tmp_path):
    data = _tiny_data(tmp_path / "data")
    bench = tmp_path / "bench"
    code, loaded = _modules_after(["train-logreg", "--data-dir", str(data), "--out",
                                   str(bench / "logreg")], tmp_path)
    assert (code, loaded) == (0, [])
    assert json.loads((bench / "logreg" / "results.json").read_text())["kind"] == "sklearn"
    assert _modules_after(["report", str(bench)], tmp_path) == (0, [])
    assert (bench / "results.md").is_file()


def test_prepare_reads_an_archive_without_torch(tmp_path):
    from tests.helpers import fake_reviews, write_archive

    # the whole archive is read and split before the sizes are found too small for the
    # reference split (the command's own sizes cannot be set from the command line)
    archive = write_archive(tmp_path / "a.tar.gz", fake_reviews(10))
    proc = subprocess.run([sys.executable, "-c", _PROBE.format(heavy=HEAVY), "prepare",
                           "--source", str(archive), "--data-dir", str(tmp_path / "d")],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.stdout.split() == ["2"]
    assert "only 40 reviews, too few" in proc.stderr


def test_unknown_preset_is_refused_with_the_list(capsys):
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["bench", "--preset", "huge"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'huge'" in err and "quick" in err and "reference" in err


def test_flag_errors_name_the_flag(capsys):
    with pytest.raises(SystemExit):
        main(["train-hf", "--batch-size", "0"])
    err = capsys.readouterr().err
    assert "argument --batch-size" in err and "must be positive, got 0" in err
    with pytest.raises(SystemExit):
        main(["train-hf", "--use_attention_mask", "maybe"])
    assert "expected bool" in capsys.readouterr().err


def _err(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_out_holding_another_run_is_refused_unless_overwrite(tmp_path, capsys):
    data = _tiny_data(tmp_path / "data")
    gpt_run = tmp_path / "gpt-run"
    gpt_run.mkdir()
    (gpt_run / "results.json").write_text("{}")
    (gpt_run / "model.safetensors").write_text("weights of another run")
    argv = ["train-logreg", "--data-dir", str(data), "--out", str(gpt_run)]
    assert main(argv) == 2
    assert "already holds a finished run" in _err(capsys)
    assert (gpt_run / "model.safetensors").is_file()
    assert main([*argv, "--overwrite"]) == 0
    assert not (gpt_run / "model.safetensors").exists()  # no mixed directory
    assert json.loads((gpt_run / "results.json").read_text())["model"] == "logreg"


def test_bad_out_paths_are_one_line_errors(tmp_path, capsys):
    data = _tiny_data(tmp_path / "data")
    file = tmp_path / "file.txt"
    file.write_text("x")
    for out, message in [(file, "exists and is not a directory"),
                         (file / "run", "cannot be created")]:
        assert main(["train-logreg", "--data-dir", str(data), "--out", str(out)]) == 2
        assert message in _err(capsys)


@pytest.mark.parametrize("split,rows,message", [
    ("train", [], "train.csv: no rows (header only)"),
    ("validation", [], "validation.csv: no rows (header only)"),
    ("train", [("only good", 1), ("also good", 1)], "every training row has label 1"),
    ("train", [("one row", 1)], "every training row has label 1"),
])
def test_unusable_splits_fail_before_training_and_create_nothing(split, rows, message,
                                                                 tmp_path, capsys,
                                                                 monkeypatch):
    data = _tiny_data(tmp_path / "data")
    pd.DataFrame(rows, columns=["text", "label"]).to_csv(data / f"{split}.csv", index=False)
    monkeypatch.chdir(tmp_path)
    for argv in (["train-logreg"], ["train-hf", "--model", str(tmp_path / "no-model")]):
        assert main([*argv, "--data-dir", str(data)]) == 2
        assert message in _err(capsys)
    assert not (tmp_path / "runs").exists()


def test_a_neural_training_split_smaller_than_a_batch_fails_before_loading(tmp_path, capsys):
    data = _tiny_data(tmp_path / "data")
    assert main(["train-hf", "--model", str(tmp_path / "no-model"), "--data-dir", str(data),
                 "--max-train-samples", "4", "--out", str(tmp_path / "run")]) == 2
    assert "4 training rows is fewer than one batch of 8" in _err(capsys)
    assert not (tmp_path / "run").exists()


def test_failed_starts_leave_no_run_directory(tmp_path, capsys, monkeypatch):
    data = _tiny_data(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    assert main(["train-hf", "--model", str(tmp_path / "no-model"), "--data-dir",
                 str(data)]) == 2
    assert "no-model" in _err(capsys)
    assert main(["train-hf", "--device", "mps", "--data-dir", str(data)]) == 2
    assert "--device mps: MPS is not available" in _err(capsys)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("command,flags", [
    ("train-gpt", ["--trainable_layers", "last_two_blocks", "--disable_causal_mask",
                   "--accumulation_steps", "--no_padding", "--ignore_index"]),
    ("train-hf", ["last_two_blocks", "--accumulation_steps", "--no_padding", "--ignore_index"]),
])
def test_the_books_ablation_flags_are_offered_under_its_names(command, flags, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = capsys.readouterr().out
    assert all(flag in text for flag in flags)
    assert command != "train-hf" or "--disable_causal_mask" not in text  # GPT-2 only
