"""predict: reading inputs (one line is one text) and naming what is missing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sentibench.cli import main
from sentibench.core.errors import SentibenchError
from sentibench.engine.config import PredictConfig
from sentibench.run.results import read_results
from sentibench.serve.predict import predict_proba, read_inputs
from tests.helpers import FIRST_WORD_VOCAB, cli_error, first_word_csvs, write_tiny_encoder_dir


def test_one_line_of_a_file_is_one_text_whatever_separators_it_holds(tmp_path):
    texts = ["a review with a line\u2028separator inside", "next\u0085line mark",
             "form\x0cfeed and vertical\x0btab", "crlf line"]
    path = tmp_path / "reviews.txt"
    path.write_bytes(("\n".join(texts[:3]) + "\n" + texts[3] + "\r\n\n").encode("utf-8"))
    assert read_inputs([], path, None, "text") == texts
    assert len("\n".join(texts).splitlines()) > len(texts)  # what splitlines() would do


def test_texts_and_a_file_together(tmp_path):
    path = tmp_path / "more.txt"
    path.write_text("from the file\n")
    assert read_inputs(["on the command line"], path, None, "text") == [
        "on the command line", "from the file"]


def test_bad_inputs_are_one_line_errors(tmp_path):
    with pytest.raises(SentibenchError, match="nothing to predict"):
        read_inputs([], None, None, "text")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe not utf-8\n")
    with pytest.raises(SentibenchError, match="bad.txt: cannot read"):
        read_inputs([], bad, None, "text")


def test_a_missing_run_directory_is_named(tmp_path, capsys):
    missing = tmp_path / "runs" / "nope"
    assert main(["predict", str(missing), "great film"]) == 2
    err = capsys.readouterr().err
    assert err == f"sentibench predict: error: {missing}: no such run directory\n"
    (tmp_path / "empty").mkdir()
    assert main(["predict", str(tmp_path / "empty"), "great film"]) == 2
    assert "empty: not a sentibench run (no results.json)" in capsys.readouterr().err


@pytest.fixture(scope="module")
def windowed_run(tmp_path_factory):
    """A tiny encoder trained with --eval-windows on 31-word texts (windows of 16 tokens)
    whose verdict is the first word, which only the first window sees; and a bag-of-words
    run on the same data."""
    base = tmp_path_factory.mktemp("windowed")
    data = first_word_csvs(base / "data", (128, 16, 16), ("bad", "good"), 30)
    model = write_tiny_encoder_dir(base / "enc", "bert", FIRST_WORD_VOCAB)
    run, logreg = base / "run", base / "logreg"
    assert main(["train-hf", "--model", str(model), "--max-length", "16", "--eval-windows",
                 "--num_epochs", "4", "--learning_rate", "5e-3",
                 "--data-dir", str(data), "--out", str(run), "--device", "cpu"]) == 0
    assert main(["train-logreg", "--data-dir", str(data), "--out", str(logreg)]) == 0
    return run, logreg, pd.read_csv(data / "test.csv")["text"].tolist()


def test_predict_scores_with_the_windows_the_run_was_evaluated_with(windowed_run):
    run, _, texts = windowed_run
    assert read_results(run).config["train"]["eval_windows"] is True
    saved = pd.read_csv(run / "test_predictions.csv")["prob_positive"]  # windowed evaluation
    auto = predict_proba(run, texts)
    np.testing.assert_allclose(auto[:, 1], saved, atol=2e-5)
    np.testing.assert_allclose(predict_proba(run, texts, settings=PredictConfig(windows="on")),
                               auto, rtol=1e-6)
    off = predict_proba(run, texts, settings=PredictConfig(windows="off"))
    assert np.abs(off - auto).max() > 1e-3  # one truncated input per text is another score


def test_predict_quantize_int8_flag_labels_text_with_close_probabilities(windowed_run, capsys):
    run, _, texts = windowed_run
    assert main(["predict", str(run), *texts[:3], "--quantize", "int8", "--windows", "off"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and all(line.split("\t")[0] in ("negative", "positive")
                                   for line in lines)
    fp32 = predict_proba(run, texts, settings=PredictConfig(windows="off"))
    int8 = predict_proba(run, texts, settings=PredictConfig(quantize="int8", windows="off"))
    raw = predict_proba(run, texts, settings=PredictConfig(quantize="int8", int8_recheck=0,
                                                             windows="off"))
    assert not np.array_equal(fp32, raw)
    np.testing.assert_allclose(raw, fp32, atol=0.02)
    probs = [float(line.split("\t")[1]) for line in lines]
    np.testing.assert_allclose(probs, int8[:3].max(1), atol=1e-4)
    assert np.array_equal(int8.argmax(1), fp32.argmax(1))
    # the re-check: texts int8 is unsure of (here: the less confident half) carry float32's
    # scores, the others int8's; with a margin of 1 every text is re-scored
    margins = np.abs(raw[:, 1] - raw[:, 0])
    unsure = margins < np.median(margins)
    assert unsure.any() and not unsure.all()
    int8 = predict_proba(run, texts, settings=PredictConfig(
        quantize="int8", int8_recheck=float(np.median(margins)), windows="off"))
    np.testing.assert_allclose(int8[unsure], fp32[unsure], rtol=0, atol=1e-7)  # batched
    np.testing.assert_allclose(int8[~unsure], raw[~unsure], rtol=0, atol=1e-7)
    assert np.abs(raw[unsure] - fp32[unsure]).max() > 1e-6  # int8 itself is further off
    always = predict_proba(run, texts, settings=PredictConfig(quantize="int8", int8_recheck=1,
                                                                windows="off"))
    np.testing.assert_allclose(always, fp32, rtol=0, atol=1e-7)


def test_quantize_needs_a_neural_run_on_the_cpu(windowed_run, capsys):
    run, logreg, _ = windowed_run
    err = cli_error(capsys, ["predict", str(logreg), "great film", "--quantize", "int8"])
    assert "is a sklearn run; only neural runs have Linear layers" in err
    err = cli_error(capsys, ["predict", str(run), "x", "--quantize", "int8", "--device", "cuda"])
    assert "--quantize int8 runs on the CPU" in err
