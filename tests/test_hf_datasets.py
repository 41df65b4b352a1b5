"""``sentibench prepare --dataset hf:PATH`` offline, on local directories of split files:
a ClassLabel keeps its names and order, a missing validation split is cut from train, plain
string labels are numbered in sorted order, and a missing ``datasets`` is a one-line hint."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from sentibench.cli import main
from sentibench.data.splits import SPLIT_FILES, load_split
from tests.conftest import unavailable
from tests.helpers import cli_error

WORDS = {"negative": "awful", "neutral": "okay", "positive": "great"}


@pytest.fixture
def datasets(monkeypatch, tmp_path):
    """The ``datasets`` library, offline, with its cache under tmp_path."""
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    try:
        import datasets
    except ImportError:
        unavailable('the datasets package (pip install "sentibench[datasets]") is missing')
    # the library reads these at its first import, which may have been an earlier test's
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    # its "Generating train split" bars would precede an error line on stderr
    was_disabled = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    yield datasets
    if not was_disabled:
        datasets.enable_progress_bars()


def rows(split: str, count: int, names: list[str]) -> dict[str, list]:
    """``count`` distinct texts, label ids cycling through the classes."""
    ids = [i % len(names) for i in range(count)]
    return {"text": [f"{split} {i}: a {WORDS[names[k]]} film, \"{names[k]}\"" for i, k in
                     enumerate(ids)], "label": ids}


def prepare_hf(source: Path, data_dir: Path, *flags: str) -> int:
    return main(["prepare", "--dataset", f"hf:{source}", "--data-dir", str(data_dir),
                 *flags])


def written(data_dir: Path) -> dict[str, list[tuple[str, int]]]:
    return {s: list(zip(f["text"], f["label"], strict=True))
            for s, f in ((s, load_split(data_dir, s, num_classes=3)) for s in SPLIT_FILES)}


@pytest.mark.parametrize("names", [["negative", "neutral", "positive"],
                                   ["positive", "negative", "neutral"]],
                         ids=["sorted", "unsorted"])
def test_class_label_parquet_keeps_its_names_and_validation_is_cut(datasets, tmp_path,
                                                                   capsys, names):
    features = datasets.Features({"text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=names)})
    source = tmp_path / "hub-like"
    source.mkdir()
    data = {"train": rows("train", 60, names), "test": rows("test", 15, names)}
    for split, columns in data.items():
        datasets.Dataset.from_dict(columns, features=features).to_parquet(
            str(source / f"{split}.parquet"))
    data_dir = tmp_path / "data"
    assert prepare_hf(source, data_dir) == 0
    out = capsys.readouterr().out
    # the ClassLabel's order, not sorted: each id keeps its meaning
    assert json.loads((data_dir / "labels.json").read_text()) == {"names": names}
    got = written(data_dir)
    expected = {s: list(zip(c["text"], c["label"], strict=True)) for s, c in data.items()}
    assert got["test"] == expected["test"]  # given: as it is, in order
    # validation takes its share of train + validation: 0.1 / 0.8 of 60 rows, cut from train
    assert (len(got["train"]), len(got["validation"])) == (52, 8)
    assert Counter(got["train"] + got["validation"]) == Counter(expected["train"])
    assert got["train"] != expected["train"][:52]  # shuffled before the cut
    for text, label in got["train"] + got["validation"] + got["test"]:
        assert text.endswith(f'"{names[label]}"') and WORDS[names[label]] in text
    manifest = json.loads((data_dir / "manifest.json").read_text())
    assert manifest["dataset"] == f"hf:{source}"
    assert manifest["rows"] == {"train": 52, "validation": 8, "test": 15}
    assert list(manifest["rows"]) == ["train", "validation", "test"]
    assert [line.split()[0] for line in out.splitlines()[2:5]] == ["train", "validation",
                                                                   "test"]


def test_string_labels_in_csv_files_are_numbered_in_sorted_order(datasets, tmp_path,
                                                                 capsys):
    source = tmp_path / "csvs"
    source.mkdir()
    frames = {}
    for split, count in (("train", 30), ("validation", 9), ("test", 12)):
        names = ["pos", "neg", "neu"]  # first seen: pos
        frames[split] = pd.DataFrame({
            "text": [f"{split} {i}: {['great', 'awful', 'okay'][i % 3]}, really" for i in
                     range(count)],
            "label": [names[i % 3] for i in range(count)]})
        frames[split].to_csv(source / f"{split}.csv", index=False)
    data_dir = tmp_path / "data"
    assert prepare_hf(source, data_dir) == 0
    names = json.loads((data_dir / "labels.json").read_text())["names"]
    assert names == ["neg", "neu", "pos"]
    got = written(data_dir)
    for split, frame in frames.items():  # every split given: used as it is, in order
        assert [(t, names[i]) for t, i in got[split]] == list(
            zip(frame["text"], frame["label"], strict=True)), split


def test_custom_columns_and_a_missing_one(datasets, tmp_path, capsys):
    source = tmp_path / "custom"
    source.mkdir()
    frame = pd.DataFrame({"review": [f"r{i} {'great' if i % 2 else 'awful'}" for i in
                                     range(20)],
                          "stars": [5 if i % 2 else 1 for i in range(20)]})
    for split in ("train", "test"):
        frame.to_csv(source / f"{split}.csv", index=False)
    assert prepare_hf(source, tmp_path / "data", "--text-column", "review",
                      "--label-column", "stars") == 0
    assert json.loads((tmp_path / "data" / "labels.json").read_text()) == {
        "names": ["1", "5"]}
    err = cli_error(capsys, ["prepare", "--dataset", f"hf:{source}", "--data-dir",
                             str(tmp_path / "other")])
    assert err == (f"sentibench prepare: error: hf:{source} (train): no column 'text' "
                   "(--text-column); columns: review, stars\n")
    assert not (tmp_path / "other").exists()


def test_no_train_split_is_refused(datasets, tmp_path, capsys):
    source = tmp_path / "only-test"
    source.mkdir()
    pd.DataFrame({"text": ["a", "b"], "label": ["x", "y"]}).to_csv(source / "test.csv",
                                                                   index=False)
    err = cli_error(capsys, ["prepare", "--dataset", f"hf:{source}", "--data-dir",
                             str(tmp_path / "data")])
    assert err == f"sentibench prepare: error: --dataset hf:{source}: no train split (has: test)\n"
    assert not (tmp_path / "data").exists()


def test_an_unloadable_name_is_one_line_offline(datasets, tmp_path, capsys):
    err = cli_error(capsys, ["prepare", "--dataset", "hf:no-such-user/no-such-data",
                             "--data-dir", str(tmp_path / "data")])
    assert err.startswith("sentibench prepare: error: --dataset hf:no-such-user/no-such-data: "
                          "cannot load (")
    assert not (tmp_path / "data").exists()


def test_without_the_datasets_package_a_one_line_install_hint(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # `import datasets` raises ImportError
    source = tmp_path / "anything"
    err = cli_error(capsys, ["prepare", "--dataset", f"hf:{source}", "--data-dir",
                             str(tmp_path / "data")])
    assert err == (f"sentibench prepare: error: --dataset hf:{source} needs the datasets "
                   'library: pip install "sentibench[datasets]"\n')
    assert not (tmp_path / "data").exists()
