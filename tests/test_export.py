"""``sentibench export`` (ONNX) and ``--backend onnx``: real exports of a tiny encoder and a
tiny GPT-2 run, scored by onnxruntime against the runs' own PyTorch labels."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from sentibench.cli import main
from sentibench.engine.config import PredictConfig
from sentibench.serve.loaded import load_model
from sentibench.serve.onnx_files import EXPORT_DIR, INT8_FILE, META_FILE, MODEL_FILE
from sentibench.serve.predict import predict_proba
from tests.helpers import cli_error, synthetic_csvs, train_gpt_argv, train_tiny_encoder_run


@pytest.fixture(scope="module")
def encoder_run(tmp_path_factory):
    run, data = train_tiny_encoder_run(tmp_path_factory.mktemp("export"))
    return run, pd.read_csv(data / "test.csv")["text"].tolist(), data


def test_export_scores_the_test_rows_and_onnx_predictions_match_torch(encoder_run, capsys):
    run, texts, _ = encoder_run
    assert main(["export", str(run), "--int8"]) == 0
    out = capsys.readouterr().out
    assert "float32: 24 test rows" in out and "labels equal PyTorch's on 100.00 %" in out
    assert "int8: 24 test rows" in out
    folder = run / EXPORT_DIR
    meta = json.loads((folder / META_FILE).read_text())
    assert {MODEL_FILE, INT8_FILE} <= set(meta["files"])
    assert meta["checks"]["fp32"]["agreement"] == 1.0
    want = predict_proba(run, texts)
    got = predict_proba(run, texts, settings=PredictConfig(backend="onnx"))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    int8 = predict_proba(run, texts, settings=PredictConfig(backend="onnx", quantize="int8"))
    assert (int8.argmax(1) == want.argmax(1)).mean() >= 0.9
    served = load_model(run, "cpu", PredictConfig(backend="onnx"))  # what serve loads
    np.testing.assert_allclose(served.proba(texts), got, rtol=1e-6, atol=1e-7)
    # int8 under onnxruntime rechecks unsure rows with the float32 export: all of them at 1
    everything = PredictConfig(backend="onnx", quantize="int8", int8_recheck=1.0)
    np.testing.assert_array_equal(predict_proba(run, texts, settings=everything), got)
    raw = PredictConfig(backend="onnx", quantize="int8", int8_recheck=0.0)
    unsure = np.sort(predict_proba(run, texts, settings=raw), 1)
    margins = unsure[:, -1] - unsure[:, -2]
    default = PredictConfig(backend="onnx", quantize="int8")
    rechecked = np.flatnonzero(margins < default.int8_recheck)
    np.testing.assert_array_equal(predict_proba(run, texts, settings=default)[rechecked],
                                  got[rechecked])


def test_a_changed_export_is_refused(encoder_run, tmp_path, capsys):
    run = tmp_path / "copy"
    shutil.copytree(encoder_run[0], run)
    if not (run / EXPORT_DIR).is_dir():
        assert main(["export", str(run)]) == 0
    with open(run / EXPORT_DIR / MODEL_FILE, "ab") as f:
        f.write(b"\0")
    message = cli_error(capsys, ["predict", str(run), "--backend", "onnx", "good so"])
    assert "changed since it was exported" in message


def test_a_gpt2_run_exports_with_its_read_position(tiny_gpt2_dir, tmp_path, capsys):
    data = synthetic_csvs(tmp_path / "data", (48, 16, 16))
    run = tmp_path / "gpt"
    assert main(train_gpt_argv(tiny_gpt2_dir, data, run, "--num_epochs", "1",
                               "--context_length", "32")) == 0
    assert main(["export", str(run)]) == 0
    assert "labels equal PyTorch's on 100.00 %" in capsys.readouterr().out
    texts = pd.read_csv(data / "test.csv")["text"].tolist()
    np.testing.assert_allclose(predict_proba(run, texts, settings=PredictConfig(backend="onnx")),
                               predict_proba(run, texts), rtol=1e-4, atol=1e-5)


def test_what_cannot_be_exported_is_one_line_and_nothing_is_kept(encoder_run, tmp_path, capsys,
                                                                  monkeypatch):
    _, _, data = encoder_run
    logreg = tmp_path / "logreg"
    assert main(["train-logreg", "--data-dir", str(data), "--out", str(logreg)]) == 0
    assert "export covers neural runs" in cli_error(capsys, ["export", str(logreg)])
    assert "only neural runs" in cli_error(capsys, ["predict", str(logreg), "--backend",
                                                    "onnx", "good"])
    run = tmp_path / "enc"
    shutil.copytree(encoder_run[0], run)
    shutil.rmtree(run / EXPORT_DIR, ignore_errors=True)

    def refuse(*args, **kwargs):  # an exporter failure, as for an unsupported operator
        raise RuntimeError("unsupported operator aten::mystery\nmore lines")

    import torch
    monkeypatch.setattr(torch.onnx, "export", refuse)
    message = cli_error(capsys, ["export", str(run)])
    assert "cannot export" in message and "aten::mystery" in message
    assert not (run / EXPORT_DIR).exists() and not any(run.glob("*.partial"))


def test_an_export_that_disagrees_with_the_run_is_not_kept(encoder_run, tmp_path, capsys):
    """The run's saved test labels say otherwise (here: its prediction file's classes
    swapped), so the exported model agrees on few rows: the export fails, nothing kept."""
    run = tmp_path / "swapped"
    shutil.copytree(encoder_run[0], run)
    shutil.rmtree(run / EXPORT_DIR, ignore_errors=True)
    frame = pd.read_csv(run / "test_predictions.csv")
    probs = [c for c in frame.columns if c.startswith("prob")]
    if len(probs) == 2:
        frame[probs] = frame[probs[::-1]].to_numpy()
    else:
        frame[probs[0]] = 1 - frame[probs[0]]
    frame.to_csv(run / "test_predictions.csv", index=False)
    message = cli_error(capsys, ["export", str(run)])
    assert "under 99.5 %" in message and not (run / EXPORT_DIR).exists()
