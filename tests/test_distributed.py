"""Real multi-process runs through torchrun (gloo on CPU) and interrupt/resume via the CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from sentibench.run.results import read_results

pytestmark = pytest.mark.slow


def _train_gpt_args(model_dir: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return ["train-gpt", "--model_size", str(model_dir), "--trainable_layers", "all",
            "--context_length", "64", "--learning_rate", "1e-3", "--data-dir", str(data),
            "--max-train-samples", "96", "--max-eval-samples", "37", "--out", str(out),
            "--device", "cpu", *extra]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def test_torchrun_two_processes_count_every_example_once(imdb_data, tiny_gpt2_dir, tmp_path):
    out = tmp_path / "ddp"
    torchrun = Path(sys.executable).with_name("torchrun")
    command = [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "sentibench",
               *_train_gpt_args(tiny_gpt2_dir, imdb_data, out)]
    proc = subprocess.run(command, capture_output=True, text=True, env=_env(), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("Test accuracy:") == 1  # only rank 0 prints
    result = read_results(out)
    assert result.config["resolved"]["world_size"] == 2
    predictions = pd.read_csv(out / "test_predictions.csv")
    assert predictions["row"].tolist() == list(range(37))  # every example exactly once
    expected = pd.read_csv(imdb_data / "test.csv", nrows=37)["label"].tolist()
    assert predictions["label"].tolist() == expected
    accuracy = float((predictions["label"] == predictions["prediction"]).mean())
    assert result.accuracy["test"] == pytest.approx(accuracy)
    assert sorted(p.name for p in out.glob("results*.json")) == ["results.json"]


def test_sigint_then_resume_equals_an_uninterrupted_run(imdb_data, tiny_gpt2_dir, tmp_path):
    whole = tmp_path / "whole"
    base = [sys.executable, "-m", "sentibench"]
    subprocess.run([*base, *_train_gpt_args(tiny_gpt2_dir, imdb_data, whole, "--num_epochs",
                                            "2")], check=True, capture_output=True, env=_env())
    cut = tmp_path / "cut"
    proc = subprocess.Popen([*base, *_train_gpt_args(tiny_gpt2_dir, imdb_data, cut,
                                                     "--num_epochs", "2", "--save-every", "4")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())
    deadline = time.time() + 300
    while not (cut / "checkpoint" / "state.json").is_file() and proc.poll() is None:
        assert time.time() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    if proc.returncode == 0:
        pytest.fail("the run finished before it could be interrupted; make it longer")
    assert proc.returncode == 130, err.decode()[-2000:]
    assert (cut / "checkpoint" / "state.json").is_file() and not (cut / "results.json").exists()
    subprocess.run([*base, "train-gpt", "--resume", str(cut)], check=True, capture_output=True,
                   env=_env())
    assert read_results(cut).accuracy == read_results(whole).accuracy
    assert read_results(cut).history == read_results(whole).history
    assert not (cut / "checkpoint").exists()


def _ddp_micro_batch_worker(rank: int, world: int, port: int, out: Path) -> None:
    import torch
    import torch.distributed as dist

    from sentibench.engine import training
    from tests.helpers import trained_run

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    training.SPLIT_OVERHEAD_TOKENS = 2  # rows here are 3-12 tokens: split every batch
    run = trained_run(split_batches="on")
    assert run.engine.dist.world_size == world and run.engine.plan.split_batches
    if rank == 0:
        torch.save(run.params, out)
    if dist.is_initialized():  # both ranks done before either tears gloo down: without
        dist.barrier()  # the barrier, a rank exiting mid-teardown was seen to abort
        dist.destroy_process_group()


def test_two_process_micro_batches_equal_one_process_training(tmp_path, monkeypatch):
    """Micro-batches under DDP sync gradients once per step (no_sync before the last)."""
    import socket

    import torch
    import torch.multiprocessing as mp

    from sentibench.engine import training
    from tests.helpers import trained_run

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_micro_batch_worker, args=(2, port, tmp_path / "ddp.pt"), nprocs=2)
    ddp = torch.load(tmp_path / "ddp.pt")
    monkeypatch.setattr(training, "SPLIT_OVERHEAD_TOKENS", 2)
    one_process = trained_run(split_batches="on").params
    assert ddp.keys() == one_process.keys()
    for name, value in one_process.items():
        torch.testing.assert_close(ddp[name], value, rtol=1e-5, atol=1e-6)
