"""bench --train-sizes: nested, stratified training subsets, drawn per seed and recorded, one
ordinary run per (row, size, seed); a sweep resumes like any bench."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sentibench.bench.plan import BenchArgs, load_rerun, plan, with_seeds
from sentibench.bench.sizes import parse_train_sizes, with_sizes
from sentibench.cli import main
from sentibench.core.errors import SentibenchError
from sentibench.data.config import DataArgs
from sentibench.data.splits import load_splits, subset_rows
from sentibench.engine.config import TrainConfig, epoch_end_checked, epochs_for
from tests.helpers import cli_error, noisy_three_classes, synthetic_csvs

# 6 rows of label 0 and 3 of label 1, interleaved as a small train.csv would hold them
SMALL = np.array([0, 1, 0, 0, 0, 1, 0, 1, 0])


def _data(tmp_path: Path, size: int | None, per_class: bool = False, seed: int = 0) -> DataArgs:
    return DataArgs(tmp_path, train_subset=size, per_class=per_class, subset_seed=seed)


def test_subsets_match_a_hand_computation(tmp_path):
    """Class 0 rows in draw order z0..z5 get keys 1/12, 3/12, 5/12, 7/12, 9/12, 11/12;
    class 1 rows o0..o2 get 1/6, 3/6, 5/6. By key: z0 o0 z1 z2 o1 z3 z4 o2 z5."""
    rng = np.random.default_rng(7)  # the draw: one generator, class 0's order first
    z = rng.permutation(np.flatnonzero(SMALL == 0))
    o = rng.permutation(np.flatnonzero(SMALL == 1))
    by_key = [z[0], o[0], z[1], z[2], o[1], z[3], z[4], o[2], z[5]]
    for n in range(1, 10):
        got = subset_rows(SMALL, _data(tmp_path, n, seed=7), 2)
        assert got.tolist() == sorted(by_key[:n])
    assert np.bincount(SMALL[subset_rows(SMALL, _data(tmp_path, 3, seed=7), 2)]).tolist() \
        == [2, 1]
    assert np.bincount(SMALL[subset_rows(SMALL, _data(tmp_path, 6, seed=7), 2)]).tolist() \
        == [4, 2]
    per_class = subset_rows(SMALL, _data(tmp_path, 2, per_class=True, seed=7), 2)
    assert per_class.tolist() == sorted([z[0], z[1], o[0], o[1]])


def test_subsets_are_nested_stratified_and_seeded(tmp_path):
    labels = np.random.default_rng(0).choice(3, size=500, p=[0.6, 0.3, 0.1])
    shares = np.bincount(labels) / len(labels)
    for per_class, sizes in ((False, [10, 37, 100, 250, 500]), (True, [1, 5, 20, 49])):
        previous: set[int] = set()
        for size in sizes:
            rows = subset_rows(labels, _data(tmp_path, size, per_class, seed=3), 3)
            assert previous <= set(rows.tolist())  # nested
            counts = np.bincount(labels[rows], minlength=3)
            if per_class:
                assert counts.tolist() == [size] * 3
            else:
                assert len(rows) == size
                assert np.all(np.abs(counts - size * shares) <= 1)  # within one row
            previous = set(rows.tolist())
    again = subset_rows(labels, _data(tmp_path, 100, seed=3), 3)
    assert again.tolist() == subset_rows(labels, _data(tmp_path, 100, seed=3), 3).tolist()
    assert again.tolist() != subset_rows(labels, _data(tmp_path, 100, seed=4), 3).tolist()


def test_a_subset_larger_than_the_split_is_one_clear_error(tmp_path):
    with pytest.raises(SentibenchError, match=r"--train-subset 4 per class: .*train.csv has "
                                              r"only 3 training rows of label 1"):
        subset_rows(SMALL, _data(tmp_path, 4, per_class=True), 2)
    with pytest.raises(SentibenchError, match="--train-subset 10: .* only 9 training rows"):
        subset_rows(SMALL, _data(tmp_path, 10), 2)


def test_only_the_training_split_is_cut(tmp_path):
    data_dir = synthetic_csvs(tmp_path / "data", (80, 20, 30))
    full = load_splits(DataArgs(data_dir))
    cut = load_splits(DataArgs(data_dir, train_subset=5, per_class=True))
    assert len(cut["train"]) == 10 and cut["train"]["label"].value_counts().tolist() == [5, 5]
    for split in ("validation", "test"):
        pd.testing.assert_frame_equal(cut[split], full[split])
    rows = subset_rows(full["train"]["label"].to_numpy(),
                       DataArgs(data_dir, train_subset=5, per_class=True), 2)
    assert cut["train"]["text"].tolist() == full["train"]["text"].iloc[rows].tolist()


def test_parse_train_sizes():
    assert parse_train_sizes("256, 16,all,64") == [16, 64, 256, None]
    for bad, why in (("16,x", "'x' is not a positive"), ("0", "'0' is not"),
                     ("16,16", "listed twice"), ("", "between 1 and")):
        with pytest.raises(SentibenchError, match=why):
            parse_train_sizes(bad)


def test_sized_rows_per_seed_for_every_family():
    rows = plan("quick", ["logreg", "minilm"], {})
    sized = with_seeds(with_sizes(rows, [8, None], True), [1, 2], draws=True)
    assert [e.name for e in sized] == [
        "logreg-n8pc-seed1", "logreg-n8pc-seed2", "minilm-n8pc-seed1", "minilm-n8pc-seed2",
        "logreg-all-seed1", "logreg-all-seed2", "minilm-all-seed1", "minilm-all-seed2"]
    first, neural = sized[0], sized[2]
    assert first.settings == {"train_subset": 8, "per_class": True, "subset_seed": 1}
    assert (first.row, first.group) == ("logreg", "logreg-n8pc")
    assert neural.settings["seed"] == 1 and neural.settings["subset_seed"] == 1
    assert "train_subset" not in sized[4].settings
    with pytest.raises(SentibenchError, match="sets train_subset itself"):
        with_sizes(plan("quick", ["logreg"], {"logreg": {"train_subset": 3}}), [8], False)


def test_tune_with_sizes_is_refused():
    with pytest.raises(SentibenchError, match="--tune with --train-sizes"):
        BenchArgs(models=["logreg"], train_sizes="8", tune=2).planned()


def test_min_steps_adds_whole_passes():
    assert epochs_for(TrainConfig(num_epochs=1, min_steps=10), 3) == 4
    assert epochs_for(TrainConfig(num_epochs=5, min_steps=10), 3) == 5
    assert epochs_for(TrainConfig(num_epochs=2), 3) == 2


def test_min_steps_trains_that_many_steps():
    from tests.helpers import trained_run

    run = trained_run(num_epochs=1, batch_size=8, min_steps=20, eval_freq=10)
    history = run.engine.history
    assert history.steps == [0, 10, 20]  # 8 steps a pass: 3 passes, steps 0 to 23
    assert len(history.epoch_val_accuracy) == 1  # one stretched epoch: one epoch end


def test_stretched_epochs_take_num_epochs_epoch_end_accuracies():
    assert [e for e in range(50) if epoch_end_checked(e, 50, 1)] == [49]
    assert [e for e in range(25) if epoch_end_checked(e, 25, 3)] == [8, 16, 24]
    assert all(epoch_end_checked(e, 3, 3) for e in range(3))


def _sweep(data: Path, out: Path, sizes: str, *extra: str) -> int:
    return main(["bench", "--models", "dummy,logreg,logreg-tfidf", "--data-dir", str(data),
                 "--out", str(out), "--train-sizes", sizes, "--seeds", "1,2", *extra])


def test_a_sweep_records_its_draws_and_resumes_without_repeating(tmp_path, capsys):
    data = noisy_three_classes(tmp_path / "data")
    out = tmp_path / "bench"
    assert _sweep(data, out, "4,10", "--per-class") == 0
    record = json.loads((out / "logreg-n4pc-seed2" / "results.json").read_text())
    drawn = record["data"]["train_subset"]
    labels = pd.read_csv(data / "train.csv")["label"].to_numpy()
    expected = subset_rows(labels, DataArgs(data, train_subset=4, per_class=True,
                                            subset_seed=2), 3)
    assert drawn["rows"] == expected.tolist() and drawn["class_counts"] == [4, 4, 4]
    assert record["data"]["rows"]["train"] == 12
    # as if the sweep had been stopped after its first size: the larger runs never finished
    for run in out.glob("*-n10pc-seed*"):
        (run / "results.json").unlink()
    kept = {p: p.stat().st_mtime_ns for p in out.glob("*-n4pc-seed*/results.json")}
    capsys.readouterr()
    assert _sweep(data, out, "4,10", "--per-class") == 0
    printed = capsys.readouterr().out
    assert printed.count("already completed") == 6
    assert all(p.stat().st_mtime_ns == t for p, t in kept.items())
    assert len(list(out.glob("*-n10pc-seed*/results.json"))) == 6
    rerun = load_rerun(out, tmp_path / "again", [])
    assert [e.name for e in rerun.planned()] == \
        [e["name"] for e in json.loads((out / "bench.json").read_text())["experiments"]]


def test_a_size_the_data_lacks_fails_before_any_row(tmp_path, capsys):
    data = noisy_three_classes(tmp_path / "data")
    out = tmp_path / "b"
    err = cli_error(capsys, ["bench", "--models", "logreg", "--data-dir", str(data), "--out",
                             str(out), "--train-sizes", "8,500", "--per-class"])
    assert "--train-subset 500 per class" in err and "train.csv has only" in err
    assert not list(out.glob("logreg-*"))


def test_the_dry_run_estimates_each_size(tmp_path, capsys):
    assert main(["bench", "--preset", "spam", "--models", "logreg,minilm", "--train-sizes",
                 "8,64", "--per-class", "--dry-run"]) == 0
    table = [line for line in capsys.readouterr().out.splitlines() if "| minilm-n" in line]
    assert [line.split("|")[2].strip() for line in table] == ["minilm-n8pc", "minilm-n64pc"]


class _Letters:
    """A tokenizer in the engine's TextEncoder sense: one id per character."""

    name, pad_id = "letters", 0

    def encode_batch(self, texts, max_length, truncation=None):
        return [[ord(c) for c in text][:max_length] for text in texts]


def test_two_subsets_of_one_size_never_share_token_ids(tmp_path):
    """The token cache knew a split by its CSV and its size: a second draw of the same size
    got the first draw's token ids with its own labels (seen as seeds that trained to 100 %
    and tested at chance). Each subset must get the ids of its own texts."""
    from sentibench.run.neural import cached_encode

    first = pd.DataFrame({"text": ["spam now", "hi mum", "win cash"], "label": [1, 0, 1]})
    second = pd.DataFrame({"text": ["call me", "free prize", "see you"], "label": [0, 1, 0]})
    cache = tmp_path / "tokens"
    for frame in (first, second, first):
        split = cached_encode(_Letters(), frame, 16, "same-csv-sha", cache)
        assert split.ids == _Letters().encode_batch(frame["text"].tolist(), 16)
        assert split.labels.tolist() == frame["label"].tolist()
    assert len(list(cache.iterdir())) == 2  # one entry per subset, reused by the third call
