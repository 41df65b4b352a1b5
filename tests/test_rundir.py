"""Run directories: refused when they hold another run, locked while written, cleaned up."""

from __future__ import annotations

import multiprocessing
import os

import pytest

from sentibench.core.errors import SentibenchError
from sentibench.core.fileio import PREVIOUS_RUN
from sentibench.run.rundir import LOCK_FILE, check_target, lock, run_directory


def test_a_directory_holding_another_run_is_refused_unless_overwrite(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.json").write_text("{}")
    (run / "model.safetensors").write_text("old")
    with pytest.raises(SentibenchError, match="already holds a finished run.*--overwrite"):
        with run_directory(run):
            pass
    with run_directory(run, overwrite=True):
        assert sorted(p.name for p in run.iterdir()) == [PREVIOUS_RUN, LOCK_FILE]  # set aside
        (run / "results.json").write_text("new")
    assert sorted(p.name for p in run.iterdir()) == ["results.json"]  # lock released


def test_an_interrupted_run_is_refused_with_the_resume_hint_and_reused_when_resuming(tmp_path):
    (tmp_path / "checkpoint").mkdir()
    with pytest.raises(SentibenchError, match="interrupted run \\(resume it with --resume\\)"):
        with run_directory(tmp_path):
            pass
    with run_directory(tmp_path, resume=True):
        assert (tmp_path / "checkpoint").is_dir()


def test_bad_targets_get_one_line_errors(tmp_path):
    file = tmp_path / "file"
    file.write_text("x")
    with pytest.raises(SentibenchError, match="exists and is not a directory"):
        check_target(file)
    with pytest.raises(SentibenchError, match="cannot be created"):
        check_target(file / "below")
    if os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / "ro"
        locked.mkdir(mode=0o500)
        with pytest.raises(SentibenchError, match="not writable"):
            check_target(locked / "run")


def test_a_failed_start_removes_what_it_created_but_never_finished_work(tmp_path):
    fresh = tmp_path / "runs" / "fresh"
    with pytest.raises(RuntimeError):
        with run_directory(fresh):
            (fresh / "partial.bin").write_text("half")
            raise RuntimeError("model failed to load")
    assert not fresh.exists()
    kept = tmp_path / "kept"
    with pytest.raises(KeyboardInterrupt):
        with run_directory(kept):
            (kept / "checkpoint").mkdir()
            raise KeyboardInterrupt
    assert (kept / "checkpoint").is_dir()  # resumable work stays
    existing = tmp_path / "existing"
    existing.mkdir()
    with pytest.raises(RuntimeError):
        with run_directory(existing):
            raise RuntimeError
    assert existing.is_dir()  # not created by the failed start


def _hold(path, ready, release) -> None:
    with lock(path):
        ready.set()
        release.wait(30)


def test_a_second_writer_is_told_the_holders_pid(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold, args=(tmp_path, ready, release))
    holder.start()
    try:
        assert ready.wait(60)
        with pytest.raises(SentibenchError, match=f"another sentibench process \\(pid "
                                                  f"{holder.pid}\\)"):
            with run_directory(tmp_path, resume=True):
                pass
    finally:
        release.set()
        holder.join(30)
    with run_directory(tmp_path, resume=True):  # free again once the holder ended
        pass
