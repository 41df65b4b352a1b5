"""Damaged files and killed processes: each fault is one line naming the file (or, for the
token cache, a note and a rebuild), and the next run of the same command cleans up and
finishes. A tiny GPT-2 with the real BPE on synthetic reviews, through the real CLI."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sentibench.cli import main
from sentibench.core.fileio import PREVIOUS_RUN
from sentibench.run.results import read_results
from sentibench.run.rundir import contents as held
from sentibench.run.rundir import settle
from tests.helpers import cli_error, contents, noisy_bench, synthetic_csvs, train_gpt_argv

RESTART = "the run cannot be resumed from it; start it again with --overwrite"
STRAYS = ("checkpoint.new", "checkpoint.old", PREVIOUS_RUN)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return synthetic_csvs(tmp_path_factory.mktemp("faults") / "data", rows=(400, 16, 16))


def _cli(*argv: str) -> list[str]:
    return [sys.executable, "-m", "sentibench", *argv]


def _kill_when(argv: list[str], ready, log: Path, timeout: float = 300) -> None:
    """Run the CLI; SIGKILL it the moment ``ready()`` holds (polled every 0.2 ms)."""
    with open(log, "w") as out:
        proc = subprocess.Popen(_cli(*argv), stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not ready():
            assert proc.poll() is None, f"ended before the kill: {log.read_text()[-2000:]}"
            assert time.monotonic() < deadline
            time.sleep(0.0002)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout) == -signal.SIGKILL


def _strays(run: Path) -> list[str]:
    return [n for n in contents(run)
            if n in STRAYS or n.startswith(".hf-save.") or n.endswith(".tmp")]


def _finishes(argv: list[str], run: Path) -> None:
    proc = subprocess.run(_cli(*argv), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert read_results(run).accuracy.keys() == {"train", "validation", "test"}
    assert _strays(run) == []
    assert "checkpoint" not in contents(run)


@pytest.fixture(scope="module")
def interrupted(tiny_gpt2_dir, data, tmp_path_factory) -> Path:
    """A run killed right after its third checkpoint (step 2 of 50)."""
    run = tmp_path_factory.mktemp("interrupted") / "run"
    state = run / "checkpoint" / "state.json"

    def third() -> bool:
        try:
            return json.loads(state.read_text())["state"]["global_step"] >= 2
        except (OSError, ValueError):
            return False

    _kill_when(train_gpt_argv(tiny_gpt2_dir, data, run, "--save-every", "1"), third,
               run.parent / "log")
    settle(run)  # a kill inside the checkpoint swap leaves checkpoint.new/.old: finish it
    assert held(run) == ["checkpoint"]
    return run


def _damage(path: Path, how: str) -> None:
    raw = path.read_bytes() if path.exists() else bytes(64)
    path.write_bytes(raw[:len(raw) // 2] if how == "truncated" else bytes(range(256)) * 4)


@pytest.mark.parametrize("name,how", [(n, h) for n in ("model.safetensors",
                                                       "optimizer.safetensors",
                                                       "rng.safetensors", "best.safetensors")
                                      for h in ("truncated", "garbage")])
def test_a_damaged_checkpoint_file_is_named(interrupted, tmp_path, capsys, name, how):
    run = tmp_path / "run"
    shutil.copytree(interrupted, run)
    _damage(run / "checkpoint" / name, how)
    assert cli_error(capsys, ["train-gpt", "--resume", str(run)]) == (
        f"sentibench train-gpt: error: {run}/checkpoint/{name}: corrupt or truncated "
        f"checkpoint file (SafetensorError); {RESTART}\n")
    assert held(run) == ["checkpoint"]


@pytest.mark.parametrize("how,why", [("truncated", "JSONDecodeError"),
                                     ("garbage", "UnicodeDecodeError")])
def test_a_damaged_checkpoint_state_is_named(interrupted, tmp_path, capsys, how, why):
    run = tmp_path / "run"
    shutil.copytree(interrupted, run)
    _damage(run / "checkpoint" / "state.json", how)
    assert cli_error(capsys, ["train-gpt", "--resume", str(run)]) == (
        f"sentibench train-gpt: error: {run}/checkpoint/state.json: malformed checkpoint state "
        f"({why}); {RESTART}\n")


def test_a_kill_between_the_checkpoint_swaps_renames_is_completed(interrupted, tmp_path):
    """What save_checkpoint leaves when killed between ``checkpoint -> checkpoint.old`` and
    ``checkpoint.new -> checkpoint``: no checkpoint, a complete new one beside the old."""
    run = tmp_path / "run"
    shutil.copytree(interrupted, run)
    shutil.copytree(run / "checkpoint", run / "checkpoint.new")
    (run / "checkpoint").rename(run / "checkpoint.old")
    _finishes(["train-gpt", "--resume", str(run)], run)


def test_a_corrupt_token_cache_entry_is_rebuilt_with_a_note(tiny_gpt2_dir, tmp_path, capsys,
                                                            monkeypatch):
    monkeypatch.setenv("SENTIBENCH_CACHE", str(tmp_path / "cache"))
    small = synthetic_csvs(tmp_path / "data", rows=(32, 16, 16))
    assert main(train_gpt_argv(tiny_gpt2_dir, small, tmp_path / "a")) == 0
    entries = sorted((tmp_path / "cache" / "tokens").iterdir())
    assert len(entries) == 3
    good = {p: p.read_bytes() for p in entries}
    entries[0].write_bytes(good[entries[0]][:100])
    entries[1].write_bytes(b"not a zip file")
    capsys.readouterr()
    assert main(train_gpt_argv(tiny_gpt2_dir, small, tmp_path / "b")) == 0
    notes = [x for x in capsys.readouterr().out.splitlines() if x.startswith("note: ")]
    assert notes == [f"note: {p}: unreadable token cache entry; rebuilding it"
                     for p in sorted(entries[:2], key=lambda p: _split_order(p, good))]
    assert {p: p.read_bytes() for p in entries} == good  # rebuilt byte for byte
    assert read_results(tmp_path / "b").accuracy == read_results(tmp_path / "a").accuracy


def _split_order(path: Path, good: dict[Path, bytes]) -> int:
    """Splits are encoded train, validation, test: the train entry is the largest."""
    return -len(good[path])


def test_report_names_an_unreadable_run_and_builds_the_rest(tmp_path, capsys):
    bench = noisy_bench(tmp_path)
    capsys.readouterr()
    results = bench / "logreg" / "results.json"
    results.write_bytes(results.read_bytes()[:200])
    predictions = bench / "dummy" / "test_predictions.csv"
    lines = predictions.read_text().splitlines(keepends=True)
    predictions.write_text("".join(lines[:len(lines) // 2]))
    (bench / "results.md").unlink()
    line = cli_error(capsys, ["report", str(bench)])
    assert line.startswith(f"sentibench report: error: {predictions}: ")
    assert line == (f"sentibench report: error: {predictions}: {len(lines) // 2 - 1} rows, but "
                    f"results.json scored {len(lines) - 1} test rows (truncated?) (and 1 more "
                    "unreadable runs); wrote the report of the other rows, this one marked "
                    "unreadable: results.md, results.csv, accuracy_vs_time.png, report.html\n")
    table = (bench / "results.md").read_text()
    assert f"unreadable: {results}: not valid JSON" in table
    assert "ensemble-top2" in table and "logreg-tfidf" in table


@pytest.mark.slow
def test_killed_while_writing_a_checkpoint_then_resumed(tiny_gpt2_dir, data, tmp_path):
    run = tmp_path / "run"
    staging = run / "checkpoint.new"
    _kill_when(train_gpt_argv(tiny_gpt2_dir, data, run, "--save-every", "1"),
               lambda: (run / "checkpoint").is_dir() and staging.is_dir(), tmp_path / "log")
    _finishes(["train-gpt", "--resume", str(run)], run)


@pytest.mark.slow
def test_killed_while_saving_the_model_then_resumed(tiny_gpt2_dir, data, tmp_path):
    run = tmp_path / "run"
    _kill_when(train_gpt_argv(tiny_gpt2_dir, data, run),
               lambda: any(run.glob(".model.safetensors.*.tmp")), tmp_path / "log")
    assert "checkpoint" in contents(run)
    _finishes(["train-gpt", "--resume", str(run)], run)


@pytest.mark.slow
def test_a_killed_overwrite_keeps_the_old_run_until_the_same_command_finishes(
        tiny_gpt2_dir, data, tmp_path):
    run = tmp_path / "run"
    assert main(train_gpt_argv(tiny_gpt2_dir, data, run, "--num_epochs", "1")) == 0
    old = (run / "results.json").read_bytes()
    again = train_gpt_argv(tiny_gpt2_dir, data, run, "--overwrite")
    _kill_when(again, lambda: not (run / "results.json").exists(), tmp_path / "log")
    assert (run / PREVIOUS_RUN / "results.json").read_bytes() == old  # not lost
    _finishes(again, run)
    assert (run / "results.json").read_bytes() != old
    assert os.listdir(run) == [n for n in os.listdir(run) if n != PREVIOUS_RUN]
