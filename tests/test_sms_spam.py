"""``sentibench prepare --dataset sms-spam``: the book's ch06 split row for row (re-created
here with the book's own pandas code), the UCI zip and the bare file alike, ``--balance
none``, the md5 check of the input, and re-runs that rewrite nothing."""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from sentibench.cli import main
from sentibench.data.config import PrepareConfig
from sentibench.data.sources import prepare_dataset
from sentibench.data.splits import SPLIT_FILES, load_split
from tests.helpers import OUTPUTS, cli_error, contents

SMS_MD5 = "1949b64a224790d01335c2bf8a0e48b2"  # ../shared/data/README.md
OLD_NS = 1_500_000_000_000_000_000  # an mtime no write made in this test session can have


def book_splits(path: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The book's ch06 code, as the book writes it (balance, map the labels, shuffle, cut)."""
    df = pd.read_csv(path, sep="\t", header=None, names=["Label", "Text"])

    def create_balanced_dataset(df):
        num_spam = df[df["Label"] == "spam"].shape[0]
        ham_subset = df[df["Label"] == "ham"].sample(num_spam, random_state=123)
        balanced_df = pd.concat([ham_subset, df[df["Label"] == "spam"]])
        return balanced_df

    balanced_df = create_balanced_dataset(df)
    balanced_df["Label"] = balanced_df["Label"].map({"ham": 0, "spam": 1})

    def random_split(df, train_frac, validation_frac):
        df = df.sample(frac=1, random_state=123).reset_index(drop=True)
        train_end = int(len(df) * train_frac)
        validation_end = train_end + int(len(df) * validation_frac)
        train_df = df[:train_end]
        validation_df = df[train_end:validation_end]
        test_df = df[validation_end:]
        return train_df, validation_df, test_df

    return random_split(balanced_df, 0.7, 0.1)


def read_csv_split(path: Path) -> pd.DataFrame:
    """A prepared split exactly as written (every cell a string)."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
    assert list(frame.columns) == ["text", "label"]
    return frame


def prepare_cli(source: Path, data_dir: Path, *flags: str) -> int:
    return main(["prepare", "--dataset", "sms-spam", "--source", str(source),
                 "--data-dir", str(data_dir), *flags])


def output_bytes(data_dir: Path) -> dict[str, bytes]:
    return {name: (data_dir / name).read_bytes() for name in OUTPUTS}


def mtimes(data_dir: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in data_dir.iterdir()}


@pytest.fixture(scope="module")
def book_dir(sms_spam_file, tmp_path_factory) -> Path:
    """The shared collection prepared once with the defaults (the book's balance)."""
    data_dir = tmp_path_factory.mktemp("sms") / "data"
    assert prepare_cli(sms_spam_file, data_dir) == 0
    return data_dir


def test_the_shared_file_read_the_books_way(sms_spam_file):
    assert hashlib.md5(sms_spam_file.read_bytes(), usedforsecurity=False).hexdigest() == SMS_MD5
    df = pd.read_csv(sms_spam_file, sep="\t", header=None, names=["Label", "Text"])
    assert len(df) == 5_572  # of 5,574 lines: quotes merge a few
    assert df["Label"].value_counts().to_dict() == {"ham": 4_825, "spam": 747}


def test_prepared_rows_are_the_books_rows_in_the_books_order(sms_spam_file, book_dir):
    expected = dict(zip(SPLIT_FILES, book_splits(sms_spam_file), strict=True))
    assert {s: len(f) for s, f in expected.items()} == {
        "train": 1_045, "validation": 149, "test": 300}
    for split, name in SPLIT_FILES.items():
        got = read_csv_split(book_dir / name)
        assert got["text"].tolist() == expected[split]["Text"].tolist(), split
        assert got["label"].tolist() == [str(v) for v in expected[split]["Label"]], split
        # and byte for byte what the book's frame gives as text,label
        book_csv = expected[split][["Text", "Label"]].to_csv(index=False,
                                                            header=["text", "label"])
        assert (book_dir / name).read_bytes() == book_csv.encode("utf-8"), split
    spam = {s: int(load_split(book_dir, s)["label"].sum()) for s in SPLIT_FILES}
    assert spam == {"train": 517, "validation": 79, "test": 151}  # 747 in all
    assert json.loads((book_dir / "labels.json").read_text(encoding="utf-8")) == {
        "names": ["ham", "spam"]}
    manifest = json.loads((book_dir / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["dataset"] == "sms-spam"
    assert manifest["messages"] == 5_572
    assert manifest["rows"] == {"train": 1_045, "validation": 149, "test": 300}
    assert manifest["input"] == {"sha256": hashlib.sha256(
        sms_spam_file.read_bytes()).hexdigest()}


def test_the_uci_zip_and_the_bare_file_give_identical_outputs(sms_spam_file, book_dir,
                                                              tmp_path, capsys):
    archive = tmp_path / "sms+spam+collection.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("readme", "SMS Spam Collection v.1\n")
        zf.writestr("SMSSpamCollection", sms_spam_file.read_bytes())
    assert prepare_cli(archive, tmp_path / "from-zip") == 0
    assert "Prepared" in capsys.readouterr().out
    assert output_bytes(tmp_path / "from-zip") == output_bytes(book_dir)
    manifest = json.loads((tmp_path / "from-zip" / "manifest.json").read_text())
    assert manifest["input"] == {"sha256": hashlib.sha256(archive.read_bytes()).hexdigest()}


def _zip_without_collection(tmp_path):
    archive = tmp_path / "other.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("readme", "nothing here\n")
    return archive, "no SMSSpamCollection in this zip"


def _missing(tmp_path):
    return tmp_path / "nope" / "SMSSpamCollection", "not found (--source)"


@pytest.mark.parametrize("make", [_zip_without_collection, _missing])
def test_unusable_sources_are_refused_in_one_line(make, tmp_path, capsys):
    source, message = make(tmp_path)
    err = cli_error(capsys, ["prepare", "--dataset", "sms-spam", "--source", str(source),
                             "--data-dir", str(tmp_path / "data")])
    assert err == f"sentibench prepare: error: {source}: {message}\n"
    assert not (tmp_path / "data").exists()


def test_balance_none_keeps_every_message_stratified(sms_spam_file, tmp_path, capsys):
    data_dir = tmp_path / "all"
    manifest = prepare_dataset(PrepareConfig(dataset="sms-spam", source=str(sms_spam_file),
                                             data_dir=data_dir, balance="none"))
    assert "none balance, 5,572 messages" in capsys.readouterr().out
    parts = {s: load_split(data_dir, s) for s in SPLIT_FILES}
    assert sum(len(p) for p in parts.values()) == 5_572
    per_class = {s: p["label"].value_counts().sort_index().tolist() for s, p in parts.items()}
    # each class cut 70 / 10 / rest with int(): ham 4,825, spam 747
    assert per_class == {"train": [int(4_825 * 0.7), int(747 * 0.7)],
                         "validation": [int(4_825 * 0.1), int(747 * 0.1)],
                         "test": [4_825 - 3_377 - 482, 747 - 522 - 74]}
    assert per_class == {"train": [3_377, 522], "validation": [482, 74], "test": [966, 151]}
    overall = 747 / 5_572
    for split, part in parts.items():
        assert abs(part["label"].mean() - overall) < 0.01, split
    # the same messages as the file read the book's way, none lost or repeated
    raw = pd.read_csv(sms_spam_file, sep="\t", header=None, names=["Label", "Text"])
    want = Counter(zip(raw["Text"], raw["Label"].map({"ham": 0, "spam": 1}), strict=True))
    got = Counter(pair for p in parts.values()
                  for pair in zip(p["text"], p["label"], strict=True))
    assert got == want
    # pandas' quoting merged three lines into one message; it survives the CSV round trip
    merged = [t for p in parts.values() for t in p["text"] if "\nham\t" in t]
    assert len(merged) == 1 and merged[0].startswith("Keep ur problems in ur heart")
    assert merged[0].count("\n") == 2
    assert manifest["options"]["balance"] == "none"
    assert manifest["rows"] == {"train": 3_899, "validation": 556, "test": 1_117}


@pytest.mark.parametrize("packed", [False, True], ids=["bare", "zip"])
def test_other_bytes_are_refused_by_md5_and_nothing_is_written(sms_spam_file, tmp_path,
                                                               capsys, packed):
    raw = sms_spam_file.read_bytes()
    first_line = raw[:raw.index(b"\n")]
    assert first_line.startswith(b"ham\tGo until jurong point")
    changed = raw.replace(first_line, first_line.replace(b"Go until", b"Went until"), 1)
    assert changed.count(b"\n") == raw.count(b"\n") and changed != raw
    md5 = hashlib.md5(changed, usedforsecurity=False).hexdigest()
    source = tmp_path / "SMSSpamCollection"
    if packed:
        source = tmp_path / "sms.zip"
        with zipfile.ZipFile(source, "w") as zf:
            zf.writestr("SMSSpamCollection", changed)
    else:
        source.write_bytes(changed)
    data_dir = tmp_path / "data"
    err = cli_error(capsys, ["prepare", "--dataset", "sms-spam", "--source", str(source),
                             "--data-dir", str(data_dir)])
    assert err == (f"sentibench prepare: error: {source}: SMSSpamCollection has md5 {md5}, "
                   f"not the original's {SMS_MD5}\n")
    assert not data_dir.exists()


def test_rerun_is_up_to_date_and_rewrites_nothing(sms_spam_file, tmp_path, capsys):
    data_dir = tmp_path / "data"
    assert prepare_cli(sms_spam_file, data_dir) == 0
    capsys.readouterr()
    for path in data_dir.iterdir():
        os.utime(path, ns=(OLD_NS, OLD_NS))
    before, listing, data = mtimes(data_dir), contents(data_dir), output_bytes(data_dir)
    manifest = (data_dir / "manifest.json").read_bytes()
    assert set(before.values()) == {OLD_NS}

    assert prepare_cli(sms_spam_file, data_dir) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{data_dir}: up to date (manifest.json matches")
    assert out.count("\n") == 1
    assert mtimes(data_dir) == before
    assert contents(data_dir) == listing  # no temporary files either
    assert (data_dir / "manifest.json").read_bytes() == manifest

    # other options, or --force, do rebuild
    assert prepare_cli(sms_spam_file, data_dir, "--force") == 0
    assert "Prepared" in capsys.readouterr().out
    assert all(t != OLD_NS for t in mtimes(data_dir).values())
    assert output_bytes(data_dir) == data
    assert prepare_cli(sms_spam_file, data_dir, "--balance", "none") == 0
    assert "up to date" not in capsys.readouterr().out
    assert len(load_split(data_dir, "train")) == 3_899
