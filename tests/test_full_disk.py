"""A full disk for real: a small tmpfs (or, where the tests may not mount one, the write
limit of tests/full_disk_shim.py) under the real CLI in a subprocess. Each write gives one
line saying what is kept, and leaves no ``checkpoint.new/``, ``.hf-save.*/``, ``.*.tmp`` or
empty directory behind."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sentibench.core.fileio import PREVIOUS_RUN
from sentibench.run.results import read_results
from tests.helpers import contents, synthetic_csvs, train_gpt_argv

MB = 1 << 20
SHIM = Path(__file__).with_name("full_disk_shim.py")
BOOT = ("import runpy, sys; exec(compile(open(sys.argv.pop(1)).read(), 'shim', 'exec')); "
        "runpy.run_module('sentibench', run_name='__main__', alter_sys=True)")


class Disk:
    """``size`` bytes at ``root``: a tmpfs when mounting works, else the shim's limit."""

    def __init__(self, root: Path, size: int) -> None:
        self.root, self.size = root, size
        root.mkdir()
        self.mounted = not os.environ.get("SENTIBENCH_TEST_NO_MOUNT") and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(root)],
            capture_output=True).returncode == 0

    def run(self, *argv: str, **env: str) -> subprocess.CompletedProcess:
        environ = {**os.environ, **env}
        if self.mounted:
            command = [sys.executable, "-m", "sentibench", *argv]
        else:
            environ["SENTIBENCH_TEST_DISK"] = f"{self.root.resolve()}:{self.size}"
            command = [sys.executable, "-c", BOOT, str(SHIM), *argv]
        return subprocess.run(command, capture_output=True, text=True, env=environ,
                              timeout=300)

    def close(self) -> None:
        if self.mounted:
            subprocess.run(["umount", str(self.root)], check=True)


@pytest.fixture
def disk(tmp_path):
    made: list[Disk] = []

    def make(size: int, name: str = "disk") -> Disk:
        made.append(Disk(tmp_path / name, size))
        return made[-1]

    yield make
    for d in made:
        d.close()


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return synthetic_csvs(tmp_path_factory.mktemp("full-disk") / "data", rows=(64, 16, 16))


def _error(proc: subprocess.CompletedProcess, command: str) -> str:
    """The one error line (status 2, nothing else on stderr but progress bars)."""
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = [x for x in proc.stderr.splitlines() if x.startswith("sentibench ")]
    assert "Traceback" not in proc.stderr
    assert len(lines) == 1 and lines[0].startswith(f"sentibench {command}: error: ")
    return lines[0]


def _resumed_elsewhere(run: Path, roomy: Path) -> None:
    """Free space (the run moved to a roomy disk) and resume: it finishes."""
    shutil.copytree(run, roomy)
    proc = subprocess.run([sys.executable, "-m", "sentibench", "train-gpt", "--resume",
                           str(roomy)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert read_results(roomy).accuracy.keys() == {"train", "validation", "test"}


def test_a_full_disk_at_a_checkpoint_keeps_the_last_good_one(tiny_gpt2_dir, data, disk,
                                                             tmp_path):
    d = disk(30 * MB)  # one checkpoint (~20 MB) fits, a second beside it does not
    run = d.root / "run"
    argv = train_gpt_argv(tiny_gpt2_dir, data, run, "--save-every", "1")
    line = _error(d.run(*argv), "train-gpt")
    assert line == (f"sentibench train-gpt: error: {run}/checkpoint: no space left on device "
                    "(the checkpoint of step 1 was not written; the last good checkpoint, of "
                    "step 0, is kept: free space, then --resume)")
    assert contents(run) == ["checkpoint"]
    assert contents(run / "checkpoint") == ["model.safetensors", "optimizer.safetensors",
                                           "rng.safetensors", "state.json"]
    _resumed_elsewhere(run, tmp_path / "roomy")


def test_a_full_disk_while_saving_the_model_keeps_the_checkpoint(tiny_gpt2_dir, data, disk,
                                                                 tmp_path):
    d = disk(23 * MB)  # the end-of-training checkpoint fits, the model beside it does not
    run = d.root / "run"
    line = _error(d.run(*train_gpt_argv(tiny_gpt2_dir, data, run)), "train-gpt")
    assert line == (f"sentibench train-gpt: error: {run}/model.safetensors: no space left on "
                    "device (the run is not finished; its checkpoint is kept: free space, then "
                    f"sentibench train-gpt --resume {run})")
    assert contents(run) == ["checkpoint"]
    _resumed_elsewhere(run, tmp_path / "roomy")


def test_overwrite_on_a_full_disk_gives_the_old_run_back(tiny_gpt2_dir, data, disk,
                                                          tmp_path):
    d = disk(18 * MB)  # the old run (~8 MB) fits; a first checkpoint (~20 MB) does not
    run = d.root / "run"
    assert d.run(*train_gpt_argv(tiny_gpt2_dir, data, tmp_path / "old")).returncode == 0
    shutil.copytree(tmp_path / "old", run)
    before = {name: (run / name).read_bytes() for name in contents(run)}
    line = _error(d.run(*train_gpt_argv(tiny_gpt2_dir, data, run, "--overwrite")), "train-gpt")
    assert line == (f"sentibench train-gpt: error: {run}/checkpoint: no space left on device "
                    "(the checkpoint of step 7 was not written; no earlier checkpoint exists); "
                    f"{run} keeps the run --overwrite would have replaced")
    assert {name: (run / name).read_bytes() for name in contents(run)} == before
    assert PREVIOUS_RUN not in contents(run)


def test_a_full_token_cache_disk_is_a_note_and_the_run_goes_on(tiny_gpt2_dir, disk,
                                                               tmp_path):
    big = synthetic_csvs(tmp_path / "data", rows=(200, 200, 200))  # each entry > 4 KiB
    d = disk(4096)
    run = tmp_path / "run"
    proc = d.run(*train_gpt_argv(tiny_gpt2_dir, big, run),
                 SENTIBENCH_CACHE=str(d.root))
    assert proc.returncode == 0, proc.stderr[-3000:]
    notes = [x for x in proc.stdout.splitlines() if x.startswith("note: ")]
    assert len(notes) == 3
    for note in notes:
        path = Path(note.split(": ")[1])
        assert (path.parent, path.suffix) == (d.root / "tokens", ".npz")
        assert note == f"note: {path}: no space left on device; the token ids are not cached"
    assert contents(d.root) == []  # no tokens/ left empty, no temporary file
    assert (run / "results.json").is_file()


def test_prepare_on_a_full_disk_writes_nothing(sms_spam_file, disk):
    d = disk(64 * 1024)
    out = d.root / "sms"
    line = _error(d.run("prepare", "--dataset", "sms-spam", "--source", str(sms_spam_file),
                        "--data-dir", str(out)), "prepare")
    assert line == (f"sentibench prepare: error: {out}: cannot write the split files: no space "
                    "left on device (wrote none of them; any previous ones are unchanged)")
    assert contents(d.root) == []


def test_a_baseline_run_on_a_full_disk_leaves_no_directory(data, disk):
    d = disk(4096)
    run = d.root / "runs" / "logreg"
    line = _error(d.run("train-logreg", "--data-dir", str(data), "--out", str(run)),
                  "train-logreg")
    assert line.startswith(f"sentibench train-logreg: error: {run}/")
    assert line.endswith(": no space left on device (wrote nothing)")
    assert contents(d.root) == []
