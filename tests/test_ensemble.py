"""bench --ensemble K: chosen on validation only, the mean of its members, a row like any."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sentibench.cli import main
from sentibench.run.results import read_predictions, read_results
from sentibench.serve.ensemble import build_ensemble, candidates, choose
from sentibench.serve.predict import predict_proba
from tests.helpers import noisy_bench, noisy_three_classes


@pytest.fixture()
def bench(tmp_path) -> Path:
    return noisy_bench(tmp_path)


def test_the_ensemble_is_the_mean_of_the_two_best_on_validation(bench):
    ensemble = bench / "ensemble-top2"
    members = read_results(ensemble).config["members"]
    ranked = sorted((p for p in bench.iterdir() if p.name != ensemble.name and p.is_dir()),
                    key=lambda p: (-read_results(p).accuracy["validation"], p.name))
    assert members == [p.name for p in ranked[:2]]
    names = read_results(ensemble).labels
    for split in ("train", "validation", "test"):
        truth, probs = read_predictions(ensemble, names, split)
        parts = [read_predictions(bench / m, names, split)[1] for m in members]
        np.testing.assert_allclose(probs, np.mean(parts, axis=0), atol=2e-6)
        assert read_results(ensemble).accuracy[split] == pytest.approx(
            float((probs.argmax(1) == truth).mean()))
    texts = ["apple pear the a", "river the a"]
    np.testing.assert_allclose(predict_proba(ensemble, texts),
                               np.mean([predict_proba(bench / m, texts) for m in members], 0))
    table = (bench / "results.md").read_text()
    assert "| ensemble-top2 |" in table and "ensemble-top2 | 60 |" in table  # both tables


def test_test_labels_never_decide_the_members(bench, tmp_path):
    before = [p.name for p in choose(candidates(bench), 2)]
    for run in candidates(bench):
        path = run / "test_predictions.csv"
        frame = pd.read_csv(path)
        frame["label"] = np.random.default_rng(1).permutation(frame["label"].to_numpy())
        frame.to_csv(path, index=False)
    assert [p.name for p in choose(candidates(bench), 2)] == before
    rebuilt = build_ensemble(bench, 2, ["test"])
    assert read_results(rebuilt).config["members"] == before


def test_an_ensemble_needs_two_runs(tmp_path, capsys):
    data = noisy_three_classes(tmp_path / "d")
    assert main(["bench", "--models", "dummy", "--data-dir", str(data), "--out",
                 str(tmp_path / "b"), "--ensemble", "1"]) == 2
    assert "--ensemble 1: an ensemble needs two or more runs" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()
