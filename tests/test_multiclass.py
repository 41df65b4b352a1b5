"""Four classes through every family and the CLI: prepared from a CSV with string labels,
learned well above chance, with metrics that equal scikit-learn's own on the saved
predictions, and label names carried to predict and to transformers' pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

from sentibench.cli import main
from sentibench.run.results import read_results
from tests.helpers import write_tiny_encoder_dir

pytestmark = pytest.mark.slow

NAMES = ["alpha", "beta", "delta", "gamma"]  # sorted: the ids labels.json gives them
CUES = {"alpha": ["apple", "pear"], "beta": ["river", "lake"], "gamma": ["red", "blue"],
        "delta": ["run", "jump"]}
FILLER = ["the", "a", "it", "was", "and", "then", "so", "we"]


def _rows(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    labels = rng.choice(sorted(CUES), n)
    texts = [" ".join(rng.permutation([*rng.choice(CUES[y], 2), *rng.choice(FILLER, 4)]))
             for y in labels]
    return pd.DataFrame({"text": texts, "category": labels})


@pytest.fixture(scope="module")
def four_classes(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("four")
    _rows(500, 0).to_csv(root / "all.csv", index=False)
    assert main(["prepare", "--dataset", "files", "--source", str(root / "all.csv"),
                 "--label-column", "category", "--data-dir", str(root / "data")]) == 0
    return root / "data"


def _check_metrics(run_dir: Path) -> dict:
    """results.json's metrics are scikit-learn's on the run's own saved predictions."""
    result = read_results(run_dir)
    assert result.labels == NAMES
    saved = pd.read_csv(run_dir / "test_predictions.csv")
    probs = saved[[f"prob_{name}" for name in NAMES]].to_numpy()
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    assert (saved["prediction"] == probs.argmax(1)).all()
    y, p = saved["label"].to_numpy(), saved["prediction"].to_numpy()
    test = result.metrics["test"]
    assert test["accuracy"] == pytest.approx(result.accuracy["test"])
    assert test["accuracy"] == pytest.approx((y == p).mean())
    assert test["macro_f1"] == pytest.approx(f1_score(y, p, average="macro",
                                                      labels=range(4), zero_division=0))
    precision, recall, f1, support = precision_recall_fscore_support(
        y, p, labels=range(4), zero_division=0)
    for i, name in enumerate(NAMES):
        assert test["per_class"][name] == pytest.approx({
            "precision": precision[i], "recall": recall[i], "f1": f1[i],
            "support": support[i]})
    assert test["confusion_matrix"] == confusion_matrix(y, p, labels=range(4)).tolist()
    assert set(result.metrics) == {"train", "validation", "test"}
    return result.accuracy


def test_logreg_learns_four_classes(four_classes, tmp_path):
    out = tmp_path / "logreg"
    assert main(["train-logreg", "--data-dir", str(four_classes), "--out", str(out)]) == 0
    assert _check_metrics(out)["test"] > 0.9


def test_gpt2_learns_four_classes(four_classes, tiny_gpt2_dir, tmp_path, capsys):
    out = tmp_path / "gpt"
    assert main(["train-gpt", "--model_size", str(tiny_gpt2_dir), "--trainable_layers", "all",
                 "--average_embeddings", "--num_epochs", "4", "--learning_rate", "3e-3",
                 "--class-weights", "balanced", "--data-dir",
                 str(four_classes), "--out", str(out), "--device", "cpu"]) == 0
    assert _check_metrics(out)["test"] > 0.7  # chance: 0.25
    train = pd.read_csv(four_classes / "train.csv")["label"]
    counts = np.bincount(train, minlength=4)
    assert read_results(out).config["class_weights"] == pytest.approx(
        (len(train) / (4 * counts)).tolist())  # the weighted loss used the training counts
    capsys.readouterr()
    assert main(["predict", str(out), "apple pear the a", "run jump so we"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == ["alpha", "delta"]
    assert all(f"{name}=" in lines[0] for name in NAMES)


@pytest.mark.parametrize("arch", ["bert", "distilbert", "roberta", "deberta-v2", "modernbert"])
def test_each_encoder_family_learns_four_classes(arch, four_classes, tmp_path):
    words = sorted({w for cues in CUES.values() for w in cues} | set(FILLER))
    model = write_tiny_encoder_dir(tmp_path / "pretrained", arch, words)
    out = tmp_path / "run"
    assert main(["train-hf", "--model", str(model), "--num_epochs", "10", "--learning_rate",
                 "1e-3", "--batch-size", "16", "--data-dir", str(four_classes), "--out",
                 str(out), "--device", "cpu"]) == 0
    assert _check_metrics(out)["test"] > 0.7
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"] == {str(i): name for i, name in enumerate(NAMES)}
    if arch == "bert":  # a saved run keeps its names in transformers' own pipeline
        from transformers import pipeline

        classify = pipeline("text-classification", model=str(out), device="cpu")
        assert classify("river lake the so")[0]["label"] == "beta"
