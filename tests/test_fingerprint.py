"""Runs are bound to their inputs: a bench never presents one data set's results as
another's, and a run never resumes onto other data (through the real CLI, in
subprocesses, on the real SMS Spam Collection)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from sentibench.run.fingerprint import base_model_files, differences
from sentibench.run.results import read_results


def _cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sentibench", *argv], capture_output=True,
                          text=True, timeout=600, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _prepare(source: Path, data_dir: Path, *extra: str) -> None:
    done = _cli("prepare", "--dataset", "sms-spam", "--source", str(source), "--data-dir",
                str(data_dir), *extra)
    assert done.returncode == 0, done.stderr


def _bench(data_dir: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return _cli("bench", "--preset", "spam-ablations", "--models", "dummy,logreg",
                "--data-dir", str(data_dir), "--out", str(out), *extra)


def test_a_bench_refuses_finished_rows_made_from_data_prepared_again(sms_spam_file, tmp_path):
    data, bench = tmp_path / "d", tmp_path / "b"
    _prepare(sms_spam_file, data)
    assert _bench(data, bench).returncode == 0
    old = read_results(bench / "logreg").data["sha256"]
    _prepare(sms_spam_file, data, "--balance", "none", "--force")
    again = _bench(data, bench)
    assert again.returncode == 2
    lines = again.stderr.strip().splitlines()
    assert len(lines) == 1, again.stderr
    assert lines[0].startswith(f"sentibench bench: error: {bench / 'dummy'} was made from "
                               f"other inputs than {data} holds now (test.csv (sha256 "
                               f"{old['test.csv'][:12]} -> ")
    assert lines[0].endswith("; use --overwrite to run every row again on what is there "
                             "now, or give a new --out")
    assert "already completed" not in again.stdout
    assert read_results(bench / "logreg").data["sha256"] == old  # nothing was touched
    fresh = _bench(data, bench, "--overwrite")
    assert fresh.returncode == 0, fresh.stderr
    assert "already completed" not in fresh.stdout
    now = json.loads((bench / "bench.json").read_text())["data_sha256"]
    assert read_results(bench / "logreg").data["sha256"] == now != old
    assert _bench(data, bench).stdout.count("already completed") == 2  # same data: reused


def test_a_bench_directory_given_another_data_dir_is_refused(sms_spam_file, tmp_path):
    first, other, bench = tmp_path / "d1", tmp_path / "d2", tmp_path / "b"
    _prepare(sms_spam_file, first)
    _prepare(sms_spam_file, other, "--balance", "none")
    assert _bench(first, bench).returncode == 0
    again = _bench(other, bench)
    assert again.returncode == 2
    assert f"{bench / 'dummy'} was made from other inputs than {other} holds now" \
        in again.stderr


def test_a_damaged_results_file_is_not_a_finished_row(sms_spam_file, tmp_path):
    data, bench = tmp_path / "d", tmp_path / "b"
    _prepare(sms_spam_file, data)
    assert _bench(data, bench).returncode == 0
    (bench / "dummy" / "results.json").write_text('{"schema": "sentibench.run/1", "acc')
    again = _bench(data, bench)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("already completed") == 1  # logreg only; dummy ran again
    assert read_results(bench / "dummy").accuracy["test"] > 0


def test_differences_name_every_changed_file(tmp_path):
    before = {"sha256": {"train.csv": "a" * 64, "test.csv": "b" * 64}, "labels": ["ham", "spam"],
              "model": {"config.json": "c" * 64}}
    after = {"sha256": {"train.csv": "d" * 64, "validation.csv": "e" * 64},
             "labels": ["ham", "spam"], "model": {}}
    assert differences(before, after) == [
        "test.csv (missing now)", f"train.csv (sha256 {'a' * 12} -> {'d' * 12})",
        "validation.csv (new)", "base model config.json (missing now)"]
    assert differences(before, before) == []
    assert differences({**before, "labels": ["no", "yes"]}, before) == [
        "the class names (no, yes -> ham, spam)"]


def test_model_files_hash_a_local_directory_only(tmp_path):
    (tmp_path / "m" / "sub").mkdir(parents=True)
    (tmp_path / "m" / "config.json").write_text("{}")
    (tmp_path / "m" / "sub" / "w.bin").write_bytes(b"\x00\x01")
    assert base_model_files(tmp_path / "m") == {
        "config.json": hashlib.sha256(b"{}").hexdigest(),
        "sub/w.bin": hashlib.sha256(b"\x00\x01").hexdigest()}
    assert base_model_files("bert-base-uncased") is None and base_model_files(None) is None
