"""The speed benchmarks run end to end on a tiny slice and report what they promise."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def engine_vs_reference():
    return _load("engine_vs_reference")


@pytest.fixture(scope="module")
def engine_vs_trainer():
    return _load("engine_vs_trainer")


def test_flops_per_token_is_palms_estimate_only_when_everything_trains(engine_vs_reference):
    from sentibench.models.gpt2 import GPT2, GPTConfig
    from sentibench.models.gpt2_classifier import GPT2Classifier

    cfg = GPTConfig(emb_dim=32, n_layers=2, n_heads=4, vocab_size=64, context_length=16)
    model = GPT2Classifier(GPT2(cfg), num_classes=2, seed=0)
    model.set_trainable("all")
    non_embedding = sum(p.numel() for p in model.parameters()) - 64 * 32 - 16 * 32
    assert engine_vs_reference.train_flops_per_token(model, 16) == \
        6 * non_embedding + 12 * 2 * 16 * 32
    model.set_trainable("last_block")
    assert engine_vs_reference.train_flops_per_token(model, 16) is None


def test_benchmark_prints_times_ratio_accuracies_and_throughput(engine_vs_reference, imdb_data,
                                                                 gpt2_bpe_dir, capsys,
                                                                 monkeypatch):
    from sentibench.models.gpt2_classifier import GPT2Classifier

    whole = GPT2Classifier.whole_forward
    calls = []  # the reference side computes every position, as the reference does
    monkeypatch.setattr(GPT2Classifier, "whole_forward",
                        lambda self, *a: calls.append(1) or whole(self, *a))
    engine_vs_reference.SHARED = gpt2_bpe_dir.parent
    engine_vs_reference.main([
        "--model", "gpt2", "--gpt2-layers", "1", "--gpt2-width", "64", "--trainable-layers",
        "all", "--train", "16", "--eval", "8", "--max-length", "32", "--device", "cpu",
        "--peak-tflops", "1", "--data-dir", str(imdb_data)])
    out = capsys.readouterr().out
    for side in ("reference", "engine"):
        assert re.search(rf"{side}: +[\d.]+ s +accuracy train / val / test: "
                         r"[\d.]+ / [\d.]+ / [\d.]+ %", out), out
        rate = re.search(rf"{side}: training +([\d,]+) reference tokens/s, MFU ([\d.]+) %", out)
        assert rate and float(rate.group(1).replace(",", "")) > 0, out
    assert "device cpu" in out and "16 train / 8 eval reviews, 32 tokens" in out
    ratio = re.search(r"speed-up \(reference / engine\): ([\d.]+)x", out)
    assert ratio and float(ratio.group(1)) > 0
    assert len(calls) >= 16 // 8 + 3  # its training steps and evaluations


def test_predict_vs_pipeline_prints_times_ratios_agreement_and_accuracies(tmp_path, capsys):
    from sentibench.cli import main
    from tests.helpers import synthetic_csvs, write_tiny_encoder_dir

    data = synthetic_csvs(tmp_path / "data", rows=(64, 16, 24))
    words = ["great", "superb", "wonderful", "moving", "awful", "boring", "dull", "weak",
             "the", "film", "plot", "actor", "scene", "was", "and", "a", "it", "story"]
    model = write_tiny_encoder_dir(tmp_path / "enc", "bert", words)
    run = tmp_path / "run"
    assert main(["train-hf", "--model", str(model), "--max-length", "12", "--data-dir",
                 str(data), "--out", str(run), "--device", "cpu"]) == 0
    capsys.readouterr()
    _load("predict_vs_pipeline").main(["--run", str(run), "--data-dir", str(data),
                                       "--texts", "20", "--rounds", "2"])
    out = capsys.readouterr().out
    assert "20 test reviews, 12 tokens" in out
    for name in ("transformers.pipeline", "sentibench predict", "--quantize int8"):
        assert re.search(rf"{re.escape(name)}: +[\d.]+ s wall +[\d.]+ s CPU +accuracy "
                         r"[\d.]+ %", out), out
    assert len(re.findall(r"round [12]: ", out)) == 8
    assert re.search(r"speed-up \(torch int8 / onnxruntime int8\): [\d.]+x wall, [\d.]+x CPU; "
                     r"labels unchanged against fp32: \d+/20", out), out
    same = re.search(r"speed-up \(pipeline / predict\): [\d.]+x wall, [\d.]+x CPU; labels "
                     r"identical: (\d+)/20", out)
    assert same and int(same.group(1)) == 20, out  # the same model, the same tokens
    assert re.search(r"speed-up \(predict / int8\): [\d.]+x wall, [\d.]+x CPU; labels "
                     r"unchanged: \d+/20 \([\d.]+ %\); accuracy fp32 [\d.]+ % -> int8 [\d.]+ %",
                     out), out
    import torch

    threads = torch.get_num_threads()
    _load("predict_vs_pipeline").main(["--run", str(run), "--data-dir", str(data),
                                       "--texts", "20", "--sides", "predict,int8",
                                       "--threads", "1"])
    assert torch.get_num_threads() == threads  # later tests in this process are unaffected
    out = capsys.readouterr().out
    assert "1 torch threads" in out and "transformers.pipeline" not in out
    assert "speed-up (predict / int8)" in out and "speed-up (pipeline" not in out


def test_trainer_benchmark_sides_train_alike_and_report_sklearns_accuracy(engine_vs_trainer,
                                                                          tmp_path, capsys):
    """Both sides (each in its own process) run the same optimizer steps on the same number
    of rows, predict every row of every split, and print what scikit-learn computes."""
    import pandas as pd
    from sklearn.metrics import accuracy_score

    from tests.helpers import synthetic_csvs, write_tiny_encoder_dir

    data = synthetic_csvs(tmp_path / "data", rows=(32, 16, 12))
    words = ["great", "superb", "wonderful", "moving", "awful", "boring", "dull", "weak", "the",
             "film", "plot", "actor", "scene", "was", "and", "a", "it", "story", "."]
    encoder = write_tiny_encoder_dir(tmp_path / "encoder", "bert", words)
    runs = engine_vs_trainer.main([
        "--model", str(encoder), "--train", "32", "--eval", "16", "--max-length", "16",
        "--eval-every", "2", "--lr", "1e-3", "--data-dir", str(data), "--rounds", "2"])
    out = capsys.readouterr().out
    truth = {k: pd.read_csv(data / f"{k}.csv")["label"].tolist()
             for k in ("train", "validation", "test")}
    for side, results in runs.items():
        assert len(results) == 2
        for r in results:
            assert (r.steps, r.examples) == (4, 32)
            assert r.labels == truth
            for split, labels in truth.items():
                assert r.accuracy[split] == accuracy_score(labels, r.predictions[split])
            acc = " / ".join(f"{100 * r.accuracy[k]:.2f}" for k in truth)
            assert re.search(rf"{side}: +[\d.]+ s wall, +[\d.]+ s CPU +accuracy train / val / "
                             rf"test: {re.escape(acc)} % +\(4 steps, 32 training rows\)", out)
        assert results[0].predictions == results[1].predictions  # seeded: repeatable
    assert len(re.findall(r"round \d: speed-up \(trainer / engine\) [\d.]+x wall", out)) == 2
    assert re.search(r"speed-up \(trainer / engine\): [\d.]+x wall, [\d.]+x CPU \(medians "
                     r"of 2: [\d.]+x, [\d.]+x wall\)", out)


def test_predict_vs_pipeline_refuses_int8_alone_on_cuda(tmp_path):
    with pytest.raises(SystemExit, match="int8 runs on the CPU only"):
        _load("predict_vs_pipeline").main(["--data-dir", str(tmp_path), "--sides", "int8",
                                           "--device", "cuda"])


def test_profile_step_prints_step_time_and_top_operations(capsys):
    """On the CPU the script times the eager step only (no kernels to sum, no graphs)."""
    _load("profile_step").main(["--model", "gpt2-small", "--tiny", "--device", "cpu",
                                "--seq-len", "16", "--steps", "3", "--warmup", "1"])
    out = capsys.readouterr().out
    line = re.search(r"CUDA graphs off: +([\d.]+) ms per step, GPU work +0.00 ms", out)
    assert line and float(line.group(1)) > 0, out
    assert "CUDA graphs on" not in out


def test_gpu_carry_packs_minilm_small_and_unpacks_it_within_int8_rounding(tmp_path):
    """The carried encoder: embeddings int8 per row, the rest float16; unpacked float32
    tensors within that rounding of the originals, and every other file copied."""
    from safetensors.torch import load_file

    from tests.helpers import write_tiny_encoder_dir

    carry = _load("gpu_carry")
    source = write_tiny_encoder_dir(tmp_path / "src", "bert", ["good", "bad", "film"])
    carry.pack_minilm(source, tmp_path / "packed")
    carry.unpack_minilm(tmp_path / "packed", tmp_path / "out")
    before = load_file(str(source / "model.safetensors"))
    after = load_file(str(tmp_path / "out" / "model.safetensors"))
    assert before.keys() == after.keys()
    for name, want in before.items():
        got = after[name]
        assert got.dtype == want.dtype and got.shape == want.shape
        if name.endswith(carry.EMBEDDINGS):  # half a step of 1/127 of the row's largest
            bound = want.abs().amax(dim=1, keepdim=True) / 254 + 1e-7
            assert bool(((got - want).abs() <= bound).all())
        elif want.is_floating_point():
            assert torch.equal(got, want.half().float())
    files = {p.name for p in source.iterdir() if p.name != "model.safetensors"}
    assert files <= {p.name for p in (tmp_path / "out").iterdir()}


def test_serve_load_prints_rates_latencies_ratios_and_the_soak(tmp_path, capsys):
    """The load benchmark on a tiny saved run: both servers answer every request with
    offline's labels, the soak sees no 5xx, and the summary names the three goals."""
    from tests.helpers import train_tiny_encoder_run

    run, data = train_tiny_encoder_run(tmp_path, (64, 8, 16), epochs=2)
    capsys.readouterr()
    _load("serve_load").main(["--run", str(run), "--data-dir", str(data), "--texts", "16",
                              "--clients", "4", "--rounds", "1", "--soak", "30"])
    out = capsys.readouterr().out
    assert re.search(r"labels = offline: serve 16/16, hand-written 16/16", out), out
    soak = json.loads(out.split("soak: ", 1)[1].splitlines()[0])
    assert soak["5xx"] == 0 and soak["4xx for malformed"] == soak["malformed"] == 6
    assert soak["good answers differing from offline"] == 0
    assert "serve / offline" in out and "serve / hand-written" in out
