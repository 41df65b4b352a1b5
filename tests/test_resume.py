"""Interruptions for real: SIGINT through the CLI at the named moment, then resume and
compare with an uninterrupted run (a tiny GPT-2 with the real BPE, synthetic reviews)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from sentibench.cli import main
from sentibench.run.results import read_results
from tests.helpers import synthetic_csvs

pytestmark = pytest.mark.slow


def _cli(*argv: str) -> list[str]:
    return [sys.executable, "-m", "sentibench", *argv]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def _interrupt_when(argv: list[str], ready, log: Path, timeout: float = 300) -> int:
    """Run ``argv``; send SIGINT as soon as ``ready(printed_lines)`` holds (checked every
    few milliseconds); return the exit status."""
    lines: list[str] = []
    with open(log, "w") as err:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, text=True,
                                env=_env())
        reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
        reader.start()
        deadline = time.monotonic() + timeout
        while not ready(lines):
            if proc.poll() is not None:
                pytest.fail(f"ended before the moment to interrupt: {log.read_text()[-2000:]}")
            assert time.monotonic() < deadline, "the moment to interrupt never came"
            time.sleep(0.005)
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout)
        reader.join(10)
    return code


def _same_results(a: Path, b: Path) -> None:
    ra, rb = read_results(a), read_results(b)
    assert ra.accuracy == rb.accuracy
    assert ra.history == rb.history
    assert (a / "test_predictions.csv").read_text() == (b / "test_predictions.csv").read_text()


@pytest.fixture(scope="module")
def long_eval_data(tmp_path_factory) -> Path:
    """Few training rows, many evaluation rows: the final evaluation takes seconds."""
    return synthetic_csvs(tmp_path_factory.mktemp("resume") / "data", rows=(400, 1500, 1500))


def _train_gpt(model: Path, data: Path, out: Path) -> list[str]:
    return ["train-gpt", "--model_size", str(model), "--trainable_layers", "all",
            "--learning_rate", "1e-3", "--data-dir", str(data), "--out", str(out),
            "--device", "cpu", "--eval-batch-size", "1"]


def test_ctrl_c_in_the_final_evaluation_keeps_the_trained_model(tiny_gpt2_dir, long_eval_data,
                                                                tmp_path):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert main(_train_gpt(tiny_gpt2_dir, long_eval_data, whole)) == 0
    code = _interrupt_when(_cli(*_train_gpt(tiny_gpt2_dir, long_eval_data, cut)),
                           lambda lines: any("Evaluating on the full" in x for x in lines),
                           tmp_path / "cut.log")
    err = (tmp_path / "cut.log").read_text()
    assert code == 130, err[-2000:]
    assert (cut / "checkpoint" / "state.json").is_file() and not (cut / "results.json").exists()
    assert f"sentibench train-gpt --resume {cut}" in err  # says how to continue
    resumed = subprocess.run(_cli("train-gpt", "--resume", str(cut)), capture_output=True,
                             text=True, env=_env(), timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "Ep 1 (Step" not in resumed.stdout  # nothing trained again
    _same_results(cut, whole)
    assert not (cut / "checkpoint").exists()


def _bench(model: Path, data: Path, out: Path) -> list[str]:
    name = str(model)
    return ["bench", "--models", f"dummy,{name}", "--data-dir", str(data), "--out", str(out),
            "--device", "cpu", "--set", f"{name}.save_every=3",
            "--set", f"{name}.learning_rate=1e-3", "--set", f"{name}.max_eval_samples=200",
            "--set", f"{name}.num_epochs=2"]


def test_an_interrupted_bench_continues_its_neural_row_from_the_checkpoint(
        tiny_gpt2_dir, long_eval_data, tmp_path):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert main(_bench(tiny_gpt2_dir, long_eval_data, whole)) == 0
    row = cut / tiny_gpt2_dir.name
    state = row / "checkpoint" / "state.json"
    code = _interrupt_when(_cli(*_bench(tiny_gpt2_dir, long_eval_data, cut)),
                           lambda lines: state.is_file(), tmp_path / "cut.log")
    assert code == 130
    step = json.loads(state.read_text())["state"]["global_step"]
    assert 2 <= step < 99  # 2 epochs of 50 steps: stopped part-way
    again = subprocess.run(_cli(*_bench(tiny_gpt2_dir, long_eval_data, cut)),
                           capture_output=True, text=True, env=_env(), timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "already completed" in again.stdout  # the dummy row
    assert "continuing from the checkpoint" in again.stdout
    assert "(Step 000000)" not in again.stdout  # the steps before the checkpoint: not again
    _same_results(row, whole / tiny_gpt2_dir.name)


def test_resume_refuses_a_checkpoint_made_from_other_data(tiny_gpt2_dir, tmp_path):
    """Steps 1..k on the old split and k+1.. on a new one would be one model trained on two
    data sets: refused, naming the file, and the checkpoint is kept for the old data."""
    data = synthetic_csvs(tmp_path / "data", rows=(400, 60, 60))
    cut = tmp_path / "cut"
    state = cut / "checkpoint" / "state.json"
    argv = [*_train_gpt(tiny_gpt2_dir, data, cut), "--save-every", "3"]
    assert _interrupt_when(_cli(*argv), lambda lines: state.is_file(), tmp_path / "c.log") == 130
    original = (data / "train.csv").read_bytes()
    synthetic_csvs(tmp_path / "other", rows=(400, 60, 60), seed=1)
    (data / "train.csv").write_bytes((tmp_path / "other" / "train.csv").read_bytes())
    refused = subprocess.run(_cli("train-gpt", "--resume", str(cut)), capture_output=True,
                             text=True, env=_env(), timeout=300)
    assert refused.returncode == 2
    assert refused.stderr.startswith(
        f"sentibench train-gpt: error: the checkpoint in {cut} was made from other inputs "
        f"than {data} holds now (train.csv (sha256 ")
    assert refused.stderr.endswith("; resuming would train on two data sets; start the run "
                                   "again with --overwrite, or give a new --out\n")
    assert len(refused.stderr.splitlines()) == 1 and state.is_file()
    (data / "train.csv").write_bytes(original)
    resumed = subprocess.run(_cli("train-gpt", "--resume", str(cut)), capture_output=True,
                             text=True, env=_env(), timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert read_results(cut).data["sha256"]["train.csv"] == hashlib.sha256(original).hexdigest()
