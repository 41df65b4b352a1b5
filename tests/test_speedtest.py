"""sentibench speedtest (toy sizes on this CPU) and bench --dry-run: figures written and
sane, every correctness check present and passing, FLOPs and MFU by hand, GPU peaks by
name, and a dry run that estimates every row and creates nothing."""

from __future__ import annotations

import contextlib
import io
import json
import math
import subprocess
import sys

import pytest
import torch

from sentibench.bench.estimate import estimate_rows, row_tokens
from sentibench.bench.plan import plan
from sentibench.cli import main
from sentibench.speed import models
from sentibench.speed.checks import compiled_vs_eager, within_tolerance
from sentibench.speed.peaks import device_peaks, gpu_peak, mfu
from sentibench.speed.report import figures_path, load_figures, save_figures
from sentibench.speed.run import device_name

from .helpers import cli_error

TINY_ARGS = ["speedtest", "--tiny", "--device", "cpu", "--models", "gpt2-small,modernbert-base",
             "--precision", "fp32,bf16", "--steps", "2", "--warmup-steps", "1",
             "--eval-batches", "1"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One toy-size speedtest through the CLI (on one thread, which --tiny chooses)."""
    out = tmp_path_factory.mktemp("speedtest")
    threads = torch.get_num_threads()
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main([*TINY_ARGS, "--out", str(out)])
    assert torch.get_num_threads() == threads  # restored
    return code, buffer.getvalue(), out


def _numbers(phase: dict) -> list[float]:
    keys = ("seconds", "tokens_per_s", "examples_per_s", "step_s", "peak_memory_bytes",
            "flops_per_token", "mfu")
    return [phase[k] for k in keys]


def test_tiny_speedtest_writes_table_and_json_with_sane_figures(tiny_run):
    code, out, directory = tiny_run
    assert code == 0, out
    report = json.loads((directory / "speedtest.json").read_text())
    assert [e["model"] for e in report["models"]] == ["gpt2-small", "modernbert-base"]
    for entry in report["models"]:
        assert list(entry["precisions"]) == ["fp32", "bf16"]
        for precision, figures in entry["precisions"].items():
            assert figures["plan"]["precision"] == precision  # bf16 autocast ran on CPU
            assert figures["train"]["steps"] == 2
            assert figures["eval"]["steps"] in (1, 2)  # 2: noise cancelled the difference
            for phase in ("train", "eval"):
                values = _numbers(figures[phase])
                assert all(math.isfinite(v) and v > 0 for v in values), (phase, values)
            row = f"| {entry['model']} | {precision} |"
            assert row in out and row in (directory / "speedtest.md").read_text()
    assert "| model | precision | params | train tokens/s |" in out
    assert report["device"].endswith(", 1 thread")
    assert "peak RSS" in report["memory"] and "matmuls on this CPU" in report["peak_source"]


def test_tiny_speedtest_runs_every_check_and_all_pass(tiny_run):
    _, out, directory = tiny_run
    report = json.loads((directory / "speedtest.json").read_text())
    for entry in report["models"]:
        names = [c["name"] for c in entry["checks"]]
        assert names == ["bf16 logits = fp32 logits", "fp32: loss falls", "fp32: no NaN/inf",
                         "bf16: loss falls", "bf16: no NaN/inf",
                         "DDP steps, 1 process (gloo) = plain steps"]
        assert all(c["passed"] is True for c in entry["checks"]), entry["checks"]
        assert f"| {entry['model']} | bf16: loss falls | pass |" in out


def test_tiny_figures_are_not_saved_for_the_dry_run(tiny_run):
    report = json.loads((tiny_run[2] / "speedtest.json").read_text())
    assert not figures_path(report["device"]).exists()


def test_saved_figures_merge_by_model(tiny_run):
    report = json.loads((tiny_run[2] / "speedtest.json").read_text())
    report["device"] = "test device"
    first = {**report, "models": report["models"][:1]}
    save_figures(first)
    second = {**report, "models": report["models"][1:], "created": "later"}
    save_figures(second)
    saved = load_figures("test device")
    assert list(saved["models"]) == ["gpt2-small", "modernbert-base"]
    assert saved["models"]["modernbert-base"]["created"] == "later"
    assert load_figures("another device") is None


def test_flops_per_token_and_mfu_by_hand():
    sm = models.build("gpt2-small", tiny=True)  # 2 blocks, width 64, head Linear(64, 2)
    block = 2 * 64 + (64 * 192 + 192) + (64 * 64 + 64) + 2 * 64 + (64 * 256 + 256) + \
        (256 * 64 + 64)
    non_embedding = 2 * block + 2 * 64 + (64 * 2 + 2)
    assert sm.non_embedding == non_embedding == 100_226
    assert sm.flops_per_token(32, train=True) == 6 * 100_226 + 12 * 64 * (32 + 32)
    assert sm.flops_per_token(32, train=False) == 2 * 100_226 + 4 * 64 * (32 + 32)
    assert mfu(650_508, 1_000.0, 1.0) == pytest.approx(650_508 * 1_000 / 1e12)
    local = models.build("modernbert-base", tiny=True)  # full, local, local attention
    assert local.spans(256) == [256, 128, 128] and local.spans(32) == [32, 32, 32]


def test_real_sizes_match_the_published_parameter_counts():
    counts = {name: models.meta_model(name).params for name in
              ("gpt2-small", "bert", "roberta", "deberta-v3-base", "modernbert-base",
               "modernbert-large")}
    assert counts == {"gpt2-small": 124_441_346, "bert": 109_483_778, "roberta": 355_361_794,
                      "deberta-v3-base": 184_423_682, "modernbert-base": 149_606_402,
                      "modernbert-large": 395_833_346}


@pytest.mark.parametrize(("name", "label"), [
    ("NVIDIA H100 80GB HBM3", "H100 SXM"), ("NVIDIA H100 PCIe", "H100 PCIe"),
    ("NVIDIA H100 NVL", "H100 NVL"), ("NVIDIA H200", "H200"),
    ("NVIDIA A100-SXM4-80GB", "A100"), ("NVIDIA A100-PCIE-40GB", "A100"),
    ("NVIDIA L4", "L4"), ("NVIDIA L40S", "L40S"), ("NVIDIA A10G", "A10G"),
    ("Tesla T4", "T4"), ("NVIDIA GeForce RTX 4090", "RTX 4090"),
    ("NVIDIA GeForce RTX 3090", "RTX 3090")])
def test_gpu_peak_by_name(name, label):
    assert gpu_peak(name).label == label


def test_peaks_per_precision_and_source():
    peaks, source = device_peaks("cuda", "NVIDIA H100 80GB HBM3", ["bf16", "fp32"], None)
    assert peaks == {"bf16": 989.4, "fp32": 66.9} and "H100 SXM" in source
    assert gpu_peak("NVIDIA B9000") is None
    peaks, source = device_peaks("cuda", "NVIDIA B9000", ["bf16"], None)
    assert peaks == {"bf16": None} and "--peak-tflops" in source
    assert device_peaks("cuda", "NVIDIA B9000", ["bf16", "fp32"], 100.0)[0] == \
        {"bf16": 100.0, "fp32": 100.0}


def test_bad_options_are_one_line_errors(capsys):
    assert "unknown model 'gpt5'" in cli_error(capsys, ["speedtest", "--models", "gpt5"])
    assert "--precision" in cli_error(capsys, ["speedtest", "--precision", "fp64"])


def test_speedtest_help_does_not_import_torch(tmp_path):
    probe = ("import contextlib, io, sys\nfrom sentibench.cli import main\n"
             "with contextlib.redirect_stdout(io.StringIO()):\n"
             "    try:\n        main(['speedtest', '--help'])\n"
             "    except SystemExit:\n        pass\nprint('torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          cwd=tmp_path, check=True, timeout=120)
    assert proc.stdout.strip() == "False"


def test_dry_run_prints_every_row_with_an_estimate_and_creates_nothing(tmp_path, monkeypatch,
                                                                         capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["bench", "--dry-run", "--preset", "reference"]) == 0
    out = capsys.readouterr().out
    for exp in plan("reference", None, {}):
        row = next(line for line in out.splitlines() if line.startswith("| ") and
                   f"| {exp.name} | {exp.model} |" in line)
        assert "| ? |" not in row, row
    assert "FLOPs at an assumed" in out and "scikit-learn" in out
    assert list(tmp_path.iterdir()) == []


def test_dry_run_uses_saved_speedtest_figures(monkeypatch):
    device = torch.device("cpu")
    figures = {"device": device_name(device), "models": {"minilm": {
        "created": "20261124T000000Z", "layers": 6, "seq_len": 256, "precisions": {
            "fp32": {"train": {"tokens_per_s": 1000.0}, "eval": {"tokens_per_s": 4000.0}}}}}}
    figures_path(figures["device"]).parent.mkdir(parents=True, exist_ok=True)
    figures_path(figures["device"]).write_text(json.dumps(figures))
    rows, _ = estimate_rows(plan("quick", None, {}), "imdb", device)
    minilm = rows[-1]
    # 125 steps x 16 x 128 training tokens; monitoring 2 x 20 x 16 rows x (125 // 50 + 1),
    # then 2,000 train + 1,000 validation + 1,000 test rows, 128 tokens each
    assert minilm.seconds == pytest.approx(125 * 16 * 128 / 1000 + (1920 + 4000) * 128 / 4000)
    assert minilm.source.startswith("speedtest 20261124 (fp32, 256 tokens)")
    figures_path(figures["device"]).unlink()


def test_row_tokens_follow_the_data_set_and_length_rule():
    exp = next(e for e in plan("spam", None, {}) if e.model == "gpt2-small")
    from sentibench.bench.plan import row_options

    tokens = row_tokens("sms-spam", *row_options(exp.family, exp.model, exp.settings))
    assert tokens["length"] == 120 and tokens["train_rows"] == 1045  # longest SMS, full split
    steps = 1045 // 8 * 5
    assert tokens["train"] == steps * 8 * 120
    assert tokens["eval"] == (2 * 5 * 8 * (steps // 50 + 5) + 1045 + 149 + 300) * 120


def test_compiled_and_eager_logits_agree_on_cpu():
    check = compiled_vs_eager(models.build("gpt2-small", tiny=True), torch.device("cpu"), 16)
    assert (check.name, check.passed) == ("compiled logits = eager logits", True), check


def test_tolerance_rule_accepts_bf16_rounding_and_refuses_more():
    want = torch.tensor([[1.0, -2.0]])
    assert within_tolerance(torch.tensor([[1.09, -2.14]]), want, 0.05, 0.05)[0]
    ok, worst = within_tolerance(torch.tensor([[1.2, -2.0]]), want, 0.05, 0.05)
    assert not ok and worst == pytest.approx(0.2)
    assert not within_tolerance(torch.tensor([[float("nan"), -2.0]]), want, 0.05, 0.05)[0]


def test_models_that_differ_at_full_size_differ_at_toy_size():
    """Two rows of a --tiny table must not be the same model under two names."""
    from sentibench.speed.args import speed_models

    shipped = [n for n in speed_models() if (models.CONFIG_DIR / f"{n}.json").is_file()]
    seen: dict[str, str] = {}
    for name in shipped:
        data = models.encoder_file(name)
        tiny = json.dumps({**data["config"], **data["tiny"]}, sort_keys=True)
        assert tiny not in seen, f"{name} and {seen.get(tiny)} are the same toy model"
        seen[tiny] = name
    assert {"modernbert-base", "modernbert-large"} <= set(seen.values())


def test_dry_run_with_tune_adds_each_searchs_cost(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["bench", "--dry-run", "--preset", "spam", "--models", "dummy,logreg",
                 "--tune", "6"]) == 0
    out = capsys.readouterr().out
    rows, _ = estimate_rows(plan("spam", ["dummy", "logreg"], {}), "sms-spam",
                            torch.device("cpu"))
    logreg = rows[1].seconds
    assert "| logreg | 6 |" in out and "| dummy | 6 |" not in out  # the dummy has no space
    table = [line for line in out.splitlines() if line.startswith("| logreg | 6 |")]
    assert table == [f"| logreg | 6 | {6 * logreg:.0f} s | {logreg:.0f} s |"]
    assert f"Total: about {rows[0].seconds + 8 * logreg:.0f} s." in out
    assert list(tmp_path.iterdir()) == []


def test_graph_check_runs_on_cuda_only():
    from sentibench.speed import checks, models

    check = checks.graphed_vs_eager(lambda: models.build("gpt2-small", True),
                                    torch.device("cpu"), 16, ["fp32"])
    assert check.passed is None and check.detail == "CUDA only"
