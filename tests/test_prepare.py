"""``sentibench prepare`` (sentibench.data.imdb): the reference split byte for byte, the
manifest, dedupe, safe reading of bad archives, idempotent and failure-safe re-runs."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tarfile
from pathlib import Path

import pandas as pd
import pytest

from benchmarks.prepare_vs_reference import reference_prepare
from sentibench.cli import main
from sentibench.core import fileio
from sentibench.core.errors import SentibenchError
from sentibench.data.config import PrepareConfig
from sentibench.data.download import file_digests
from sentibench.data.imdb import prepare
from sentibench.data.splits import SPLIT_FILES, load_split
from tests.helpers import (
    ARCHIVE_SHA256,
    CSVS,
    OUTPUTS,
    SMALL,
    cli_error,
    contents,
    csv_bytes,
    fake_reviews,
    prepare_quiet,
    shuffled,
    small_members,
    write_archive,
)

# --- the real archive ----------------------------------------------------------------

def test_real_split_has_the_reference_sizes_and_label_shares(imdb_data):
    frames = {split: load_split(imdb_data, split) for split in SPLIT_FILES}
    assert {s: len(f) for s, f in frames.items()} == {
        "train": 35_000, "validation": 5_000, "test": 10_000}
    positives = {s: int(f["label"].sum()) for s, f in frames.items()}
    assert positives == {"train": 17_498, "validation": 2_493, "test": 5_009}
    means = {s: round(f["label"].mean(), 6) for s, f in frames.items()}
    assert means == {"train": 0.499943, "validation": 0.4986, "test": 0.5009}
    # train's majority label is 0, so the dummy scores the negative share everywhere
    dummy = {s: f"{(1 - f['label'].mean()) * 100:.2f}" for s, f in frames.items()}
    assert dummy == {"train": "50.01", "validation": "50.14", "test": "49.91"}
    assert frames["train"]["text"].str.contains("<br />", regex=False).mean() > 0.5


@pytest.mark.slow
def test_real_csvs_are_byte_identical_to_the_reference_procedure(imdb_archive, imdb_data,
                                                                  tmp_path):
    reference_prepare(imdb_archive, tmp_path / "extract", tmp_path / "reference")
    try:
        assert csv_bytes(tmp_path / "reference") == csv_bytes(imdb_data)
    finally:
        shutil.rmtree(tmp_path / "extract")  # 50,000 files


def test_real_manifest_records_checksums_and_rerun_is_a_noop(imdb_archive, imdb_data, capsys):
    manifest = json.loads((imdb_data / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["input"] == {"sha256": ARCHIVE_SHA256}
    assert manifest["archive"]["sha256"] == ARCHIVE_SHA256
    assert manifest["archive"]["md5"] == file_digests(imdb_archive)["md5"]
    assert manifest["outputs"] == {n: fileio.sha256_file(imdb_data / n) for n in OUTPUTS}
    assert json.loads((imdb_data / "labels.json").read_text()) == {
        "names": ["negative", "positive"]}
    assert manifest["rows"] == {"train": 35_000, "validation": 5_000, "test": 10_000}
    assert manifest["reviews"] == 50_000 and manifest["duplicates_dropped"] == 0
    assert manifest["options"] == {"split": "reference", "dedupe": False, "seed": 123,
                                   "train_size": 35_000, "validation_size": 5_000}
    before = {n: (imdb_data / n).stat().st_mtime_ns for n in (*CSVS, "manifest.json")}
    capsys.readouterr()
    assert main(["prepare", "--source", str(imdb_archive), "--data-dir", str(imdb_data)]) == 0
    assert "up to date" in capsys.readouterr().out
    assert before == {n: (imdb_data / n).stat().st_mtime_ns for n in before}


# --- small archives: fidelity, order, extras -----------------------------------------

def test_small_archive_matches_the_reference_procedure(small_archive, tmp_path, capsys):
    prepare_quiet(capsys, source=str(small_archive), data_dir=tmp_path / "ours", **SMALL)
    reference_prepare(small_archive, tmp_path / "extract", tmp_path / "reference", (20, 8))
    assert csv_bytes(tmp_path / "ours") == csv_bytes(tmp_path / "reference")
    texts = pd.concat(load_split(tmp_path / "ours", s) for s in SPLIT_FILES)["text"]
    assert 'Says "wow", twice,\nthen\nstops. Café ☺  ' in set(texts)  # newlines as text mode


def test_member_order_and_compression_do_not_matter(tmp_path, capsys):
    members = small_members()
    outputs = []
    for i, (order, gz) in enumerate([(dict(sorted(members.items())), True),
                                     (shuffled(members, 1), True), (shuffled(members, 2), False)]):
        archive = write_archive(tmp_path / f"a{i}.tar{'.gz' if gz else ''}", order, gz=gz)
        prepare_quiet(capsys, source=str(archive), data_dir=tmp_path / f"d{i}", **SMALL)
        outputs.append(csv_bytes(tmp_path / f"d{i}"))
    assert outputs[0] == outputs[1] == outputs[2]


def test_members_outside_the_labelled_folders_are_ignored(tmp_path, capsys):
    members = small_members()
    extras = {"aclImdb/imdb.vocab": "the\nand\n", "aclImdb/imdbEr.txt": "0.1\n",
              "aclImdb/train/unsup/0_0.txt": "unlabelled review",
              "aclImdb/train/labeledBow.feat": "1 0:1\n", "aclImdb/train/urls_pos.txt": "x",
              "aclImdb/test/pos/notes.md": "not a review", "other/train/pos/0_9.txt": "stray"}
    plain = write_archive(tmp_path / "plain.tar.gz", members)
    extra = write_archive(tmp_path / "extra.tar.gz", shuffled({**members, **extras}))
    prepare_quiet(capsys, source=str(plain), data_dir=tmp_path / "plain", **SMALL)
    prepare_quiet(capsys, source=str(extra), data_dir=tmp_path / "extra", **SMALL)
    assert csv_bytes(tmp_path / "plain") == csv_bytes(tmp_path / "extra")


# --- re-runs ---------------------------------------------------------------------------

def test_rerun_is_a_noop_force_and_changed_inputs_rebuild(small_archive, tmp_path, capsys):
    out = tmp_path / "data"
    cfg = {"source": str(small_archive), "data_dir": out, **SMALL}
    manifest, printed = prepare_quiet(capsys, **cfg)
    assert "Prepared" in printed and "reference split of 48 reviews" in printed
    for row in ("split ", "train ", "validation ", "test ", "texts in more than one split"):
        assert row in printed  # the summary table
    stamps = {n: (out / n).stat().st_mtime_ns for n in (*CSVS, "manifest.json")}

    _, printed = prepare_quiet(capsys, **cfg)
    assert "up to date" in printed and "Prepared" not in printed
    assert stamps == {n: (out / n).stat().st_mtime_ns for n in stamps}

    _, printed = prepare_quiet(capsys, **cfg, force=True)
    assert "Prepared" in printed

    changed, printed = prepare_quiet(capsys, **{**cfg, "validation_size": 4})
    assert "Prepared" in printed and changed["rows"] == {"train": 20, "validation": 4,
                                                         "test": 24}
    (out / "test.csv").write_text("text,label\nedited,1\n", encoding="utf-8")
    _, printed = prepare_quiet(capsys, **{**cfg, "validation_size": 4})
    assert "Prepared" in printed  # an edited CSV no longer matches its checksum
    other = write_archive(tmp_path / "other.tar.gz", fake_reviews(12))
    _, printed = prepare_quiet(capsys, **{**cfg, "validation_size": 4, "source": str(other)})
    assert "Prepared" in printed  # another archive
    assert contents(out) == sorted([*OUTPUTS, "manifest.json"])


def test_official_split_keeps_train_and_test_apart(small_archive, tmp_path, capsys):
    manifest, _ = prepare_quiet(capsys, source=str(small_archive), data_dir=tmp_path,
                                split="official", validation_size=8)
    assert manifest["options"]["split"] == "official"
    assert manifest["rows"] == {"train": 16, "validation": 8, "test": 24}
    frames = {s: load_split(tmp_path, s) for s in SPLIT_FILES}
    assert all(frames["test"]["text"].str.startswith("test review")
               | frames["test"]["text"].str.startswith("Line one"))
    for split in ("train", "validation"):
        assert not frames[split]["text"].str.startswith("test review").any()
    again, printed = prepare_quiet(capsys, source=str(small_archive), data_dir=tmp_path,
                                   validation_size=8, train_size=20)
    assert "Prepared" in printed and again["options"]["split"] == "reference"


def test_dedupe_drops_repeated_texts_and_reports_them(tmp_path, capsys):
    members = small_members()
    members["aclImdb/train/pos/4_7.txt"] = members["aclImdb/train/pos/5_7.txt"]
    members["aclImdb/train/neg/1_2.txt"] = members["aclImdb/test/neg/1_2.txt"]
    archive = write_archive(tmp_path / "dups.tar.gz", members)
    plain, _ = prepare_quiet(capsys, source=str(archive), data_dir=tmp_path / "a", **SMALL)
    assert plain["duplicates_dropped"] == 0 and sum(plain["rows"].values()) == 48
    manifest, printed = prepare_quiet(capsys, source=str(archive), data_dir=tmp_path / "b",
                                      dedupe=True, **SMALL)
    assert manifest["options"]["dedupe"] is True
    assert manifest["duplicates_dropped"] == 2 and manifest["reviews"] == 48
    assert manifest["rows"] == {"train": 20, "validation": 8, "test": 18}
    assert "2 duplicates dropped" in printed
    texts = pd.concat(load_split(tmp_path / "b", s) for s in SPLIT_FILES)["text"]
    assert texts.is_unique


# --- bad archives --------------------------------------------------------------------

def _tar_with_symlink(path: Path) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("aclImdb/train/pos/0_7.txt")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(info)
    return path


def _corrupt_middle(path: Path) -> Path:
    data = bytearray(write_archive(path, small_members()).read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = bytes(64)
    path.write_bytes(bytes(data))
    return path


def _truncated(path: Path) -> Path:
    data = write_archive(path, small_members()).read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _plain_tar_cut_at_member(path: Path, damage: bool = False) -> Path:
    """An uncompressed tar cut just before a member header, or with that header damaged."""
    write_archive(path, dict(sorted(small_members().items())), gz=False)
    with tarfile.open(path) as tar:
        offset = tar.getmembers()[30].offset
    data = bytearray(path.read_bytes())
    if damage:
        data[offset + 10] ^= 0xFF  # breaks the header checksum
    path.write_bytes(bytes(data) if damage else bytes(data[:offset]))
    return path


BAD_ARCHIVES = {
    "cut at a member boundary": (_plain_tar_cut_at_member, "without an end-of-archive marker"),
    "damaged member header": (lambda p: _plain_tar_cut_at_member(p, damage=True),
                              "a damaged header"),

    "truncated": (_truncated, "corrupt or truncated archive"),
    "corrupt gzip data": (_corrupt_middle, "corrupt or truncated archive"),
    "not an archive": (lambda p: (p.write_bytes(b"hello, not a tar\n" * 200), p)[1],
                       "corrupt or truncated archive"),
    "empty file": (lambda p: (p.write_bytes(b""), p)[1], "corrupt or truncated archive"),
    "no aclImdb folders": (lambda p: write_archive(p, {"reviews/pos/0_7.txt": "fine"}),
                           "no reviews under aclImdb/test/pos/"),
    "a folder missing": (lambda p: write_archive(p, {k: v for k, v in small_members().items()
                                                     if "/train/neg/" not in k}),
                         "no reviews under aclImdb/train/neg/"),
    "parent path": (lambda p: write_archive(p, {**small_members(), "../evil.txt": "x"}),
                    "unsafe member '../evil.txt'"),
    "nested parent": (lambda p: write_archive(p, {"aclImdb/../../x.txt": "x"}),
                      "unsafe member"),
    "absolute path": (lambda p: write_archive(p, {"/tmp/evil.txt": "x"}), "unsafe member"),
    "symlink review": (_tar_with_symlink, "is a link or special file"),
    "non-UTF-8 review": (lambda p: write_archive(p, {**small_members(),
                                                     "aclImdb/test/pos/1_7.txt": b"ok \xff"}),
                         "member aclImdb/test/pos/1_7.txt: not valid UTF-8 (byte 3)"),
    "empty review": (lambda p: write_archive(p, {**small_members(),
                                                 "aclImdb/train/neg/2_2.txt": " \n"}),
                     "member aclImdb/train/neg/2_2.txt: empty review"),
}


@pytest.mark.parametrize("case", list(BAD_ARCHIVES))
def test_bad_archive_is_refused_with_its_name_and_leaves_nothing(case, tmp_path):
    make, message = BAD_ARCHIVES[case]
    archive = make(tmp_path / "bad.tar.gz")
    out = tmp_path / "data"
    with pytest.raises(SentibenchError, match="^" + re.escape(str(archive))) as info:
        prepare(PrepareConfig(source=str(archive), data_dir=out, **SMALL))
    assert message in str(info.value) and "\n" not in str(info.value)
    assert contents(out) == []


def test_too_few_reviews_for_the_reference_sizes(small_archive, tmp_path):
    with pytest.raises(SentibenchError, match="too few for a non-empty validation split"):
        prepare(PrepareConfig(source=str(small_archive), data_dir=tmp_path / "d"))
    assert contents(tmp_path / "d") == []


def test_missing_source_and_bad_options(tmp_path, monkeypatch):
    monkeypatch.delenv("SENTIBENCH_IMDB_SOURCE", raising=False)  # PrepareConfig() reads it
    with pytest.raises(SentibenchError, match="nope.tar.gz: archive not found"):
        prepare(PrepareConfig(source=str(tmp_path / "nope.tar.gz"), data_dir=tmp_path))
    for kwargs, message in [({"md5": "xyz"}, "--md5 must be 32 hex digits, got 'xyz'"),
                            ({"md5": "a" * 31}, "--md5 must be 32 hex digits"),
                            ({"sha256": "g" * 64}, "--sha256 must be 64 hex digits"),
                            ({"split": "random"}, "--split must be one of reference, official"),
                            ({"train_size": 0}, "must be positive")]:
        with pytest.raises(SentibenchError, match=message.replace("(", r"\(")):
            PrepareConfig(source="x.tar.gz", **kwargs)
    assert PrepareConfig(md5=" " + "AB" * 16 + "\n").md5 == "ab" * 16
    assert PrepareConfig().md5 == "7c2ac02c03563afcf9b574c7e56c153a"  # the official URL's


def test_checksum_of_a_local_archive_is_verified(small_archive, tmp_path, capsys):
    good = hashlib.sha256(small_archive.read_bytes()).hexdigest()
    with pytest.raises(SentibenchError, match="md5 [0-9a-f]{32} does not match the expected "
                                              + "0" * 32):
        prepare(PrepareConfig(source=str(small_archive), data_dir=tmp_path / "d",
                              md5="0" * 32, **SMALL))
    assert contents(tmp_path / "d") == []
    prepare_quiet(capsys, source=str(small_archive), data_dir=tmp_path / "d", sha256=good,
                  **SMALL)


def test_cli_reports_failures_on_one_line_and_writes_nothing(small_archive, tmp_path, capsys):
    out = tmp_path / "data"
    bad = _truncated(tmp_path / "bad.tar.gz")
    assert "corrupt or truncated" in cli_error(
        capsys, ["prepare", "--source", str(bad), "--data-dir", str(out)])
    assert "--md5 must be 32 hex digits" in cli_error(
        capsys, ["prepare", "--source", str(small_archive), "--md5", "abc",
                 "--data-dir", str(out)])
    assert "too few" in cli_error(  # the CLI uses the reference's 35k/5k sizes
        capsys, ["prepare", "--source", str(small_archive), "--data-dir", str(out)])
    assert "archive not found" in cli_error(
        capsys, ["prepare", "--source", str(tmp_path / "missing.tgz"), "--data-dir", str(out)])
    assert contents(out) == []


def test_failed_rebuild_leaves_the_previous_outputs_intact(small_archive, tmp_path, capsys,
                                                           monkeypatch):
    cfg = {"source": str(small_archive), "data_dir": tmp_path / "d", **SMALL}
    prepare_quiet(capsys, **cfg)
    before = {n: (tmp_path / "d" / n).read_bytes() for n in contents(tmp_path / "d")}
    real_write = Path.write_bytes

    def disk_full(self, data):
        if self.name.startswith(".validation.csv"):
            raise OSError(28, "No space left on device")
        return real_write(self, data)

    monkeypatch.setattr(Path, "write_bytes", disk_full)
    with pytest.raises(SentibenchError, match="cannot write .*no space left on device"):
        prepare(PrepareConfig(**cfg, force=True))
    monkeypatch.undo()
    assert {n: (tmp_path / "d" / n).read_bytes() for n in contents(tmp_path / "d")} == before
    assert "up to date" in prepare_quiet(capsys, **cfg)[1]


def test_failure_between_renames_never_leaves_a_stale_manifest(small_archive, tmp_path,
                                                               capsys, monkeypatch):
    cfg = {"source": str(small_archive), "data_dir": tmp_path / "d", **SMALL}
    prepare_quiet(capsys, **cfg)
    real_replace = os.replace

    def failing_replace(src, dst):
        if Path(dst).name == "validation.csv":
            raise OSError(5, "Input/output error")
        return real_replace(src, dst)

    monkeypatch.setattr(fileio.os, "replace", failing_replace)
    with pytest.raises(SentibenchError, match="Input/output error"):
        prepare(PrepareConfig(**{**cfg, "validation_size": 4}))
    monkeypatch.undo()
    assert contents(tmp_path / "d") == sorted(OUTPUTS)  # no manifest, no temporary files
    assert "Prepared" in prepare_quiet(capsys, **cfg)[1]
