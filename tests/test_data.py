"""``sentibench prepare`` and ``load_split``: the reference split byte for byte, safe reading
of bad archives and CSVs, idempotent re-runs, and verified, resumable downloads."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import random
import re
import shutil
import socket
import tarfile
import threading
from pathlib import Path

import pandas as pd
import pytest

from sentibench import fileio
from sentibench.cli import main
from sentibench.data.config import PrepareConfig
from sentibench.data.download import cached_download_path, fetch, file_digests, partial_path
from sentibench.data.imdb import prepare
from sentibench.data.splits import SPLIT_FILES, load_split
from sentibench.errors import SentibenchError
from tests.conftest import ARCHIVE_SHA256, fake_reviews, write_archive

CSVS = tuple(SPLIT_FILES.values())
SMALL = {"train_size": 20, "validation_size": 8}  # 48 reviews: 20 / 8 / 20


# --- helpers -------------------------------------------------------------------------

def reference_procedure(archive: Path, work: Path, out: Path,
                        sizes: tuple[int, int] = (35_000, 5_000)) -> None:
    """A faithful re-creation of the reference's download_prepare_dataset.py (no download):
    extract, read folder by folder, one DataFrame per file, shuffle twice, slice, to_csv."""
    with tarfile.open(archive, "r:*") as tar:
        tar.extractall(work, filter="data")
    labels = {"pos": 1, "neg": 0}
    frames = []
    for subset in ("test", "train"):
        for label in ("pos", "neg"):
            path = os.path.join(work, "aclImdb", subset, label)
            for file in sorted(os.listdir(path)):
                with open(os.path.join(path, file), encoding="utf-8") as infile:
                    frames.append(pd.DataFrame({"text": [infile.read()],
                                                "label": [labels[label]]}))
    df = pd.concat(frames, ignore_index=True)
    df = df.sample(frac=1, random_state=123).reset_index(drop=True)
    df = df.sample(frac=1, random_state=123).reset_index(drop=True)
    end_train, end_val = sizes[0], sizes[0] + sizes[1]
    out.mkdir(parents=True)
    df.iloc[:end_train].to_csv(out / "train.csv", index=False)
    df.iloc[end_train:end_val].to_csv(out / "validation.csv", index=False)
    df.iloc[end_val:].to_csv(out / "test.csv", index=False)


def small_members(per_folder: int = 12) -> dict[str, str | bytes]:
    """fake_reviews plus the cases where a careless re-implementation would differ:
    names sorting as strings ("10_7" < "2_7"), CRLF / CR, quotes, commas, non-ASCII."""
    members: dict[str, str | bytes] = dict(fake_reviews(per_folder))
    members["aclImdb/train/pos/3_7.txt"] = 'Says "wow", twice,\r\nthen\rstops. Café ☺  '
    members["aclImdb/test/neg/5_2.txt"] = "Line one\n\nline two, with a comma\n"
    return members


def shuffled(members: dict, seed: int = 0) -> dict:
    items = list(members.items())
    random.Random(seed).shuffle(items)
    return dict(items)


def csv_bytes(data_dir: Path) -> dict[str, bytes]:
    return {name: (data_dir / name).read_bytes() for name in CSVS}


def contents(path: Path) -> list[str]:
    """Everything in a folder, hidden temporary files included."""
    return sorted(p.name for p in path.iterdir()) if path.exists() else []


def prepare_quiet(capsys, **kwargs) -> tuple[dict, str]:
    manifest = prepare(PrepareConfig(**kwargs))
    return manifest, capsys.readouterr().out


@pytest.fixture
def small_archive(tmp_path) -> Path:
    return write_archive(tmp_path / "small.tar.gz", shuffled(small_members()))


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
    reference_procedure(imdb_archive, tmp_path / "extract", tmp_path / "reference")
    try:
        assert csv_bytes(tmp_path / "reference") == csv_bytes(imdb_data)
    finally:
        shutil.rmtree(tmp_path / "extract")  # 50,000 files


def test_real_manifest_records_checksums_and_rerun_is_a_noop(imdb_archive, imdb_data, capsys):
    manifest = json.loads((imdb_data / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["input"] == {"sha256": ARCHIVE_SHA256}
    assert manifest["archive"]["sha256"] == ARCHIVE_SHA256
    assert manifest["archive"]["md5"] == file_digests(imdb_archive)["md5"]
    assert manifest["outputs"] == {n: fileio.sha256_file(imdb_data / n) for n in CSVS}
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
    reference_procedure(small_archive, tmp_path / "extract", tmp_path / "reference", (20, 8))
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
    assert contents(out) == sorted([*CSVS, "manifest.json"])


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


def test_missing_source_and_bad_options(tmp_path):
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


def _cli_error(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and captured.err.count("\n") == 1
    assert "Traceback" not in captured.err
    return captured.err


def test_cli_reports_failures_on_one_line_and_writes_nothing(small_archive, tmp_path, capsys):
    out = tmp_path / "data"
    bad = _truncated(tmp_path / "bad.tar.gz")
    assert "corrupt or truncated" in _cli_error(
        capsys, ["prepare", "--source", str(bad), "--data-dir", str(out)])
    assert "--md5 must be 32 hex digits" in _cli_error(
        capsys, ["prepare", "--source", str(small_archive), "--md5", "abc",
                 "--data-dir", str(out)])
    assert "too few" in _cli_error(  # the CLI uses the reference's 35k/5k sizes
        capsys, ["prepare", "--source", str(small_archive), "--data-dir", str(out)])
    assert "archive not found" in _cli_error(
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
    with pytest.raises(SentibenchError, match="cannot write .*No space left on device"):
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
    assert contents(tmp_path / "d") == sorted(CSVS)  # no manifest, no temporary files
    assert "Prepared" in prepare_quiet(capsys, **cfg)[1]


# --- load_split ----------------------------------------------------------------------

BAD_CSVS = {
    "bad label": ("text,label\ngood,1\nmeh,2\n", "row 2: label '2' is not 0 or 1"),
    "label after a multi-line text": ('text,label\n"a\nb",1\nc,yes\n',
                                      "row 2: label 'yes' is not 0 or 1"),
    "empty label": ("text,label\ngood,\n", "row 1: label '' is not 0 or 1"),
    "empty text": ('text,label\ngood,1\n"",0\n', "row 2: empty text"),
    "blank text": ("text,label\ngood,1\nfine,0\n   ,1\n", "row 3: empty text"),
    "missing column": ("review,label\ngood,1\n", "missing column(s) text"),
    "no columns": ("", "not a valid split CSV"),
    "bad quoting": ('text,label\n"unterminated,1\n', "not a valid split CSV"),
}


@pytest.mark.parametrize("case", list(BAD_CSVS))
def test_load_split_errors_name_the_file_and_row(case, tmp_path):
    content, message = BAD_CSVS[case]
    (tmp_path / "train.csv").write_text(content, encoding="utf-8")
    with pytest.raises(SentibenchError) as info:
        load_split(tmp_path, "train")
    assert str(info.value).startswith(f"{tmp_path / 'train.csv'}: ")
    assert message in str(info.value)


def test_load_split_reads_types_limits_and_refuses_missing_or_binary(tmp_path):
    (tmp_path / "test.csv").write_text('text,label,extra\n"x, ""y""",1,a\nz,0,b\nw,1,c\n',
                                       encoding="utf-8")
    frame = load_split(tmp_path, "test", max_rows=2)
    assert frame.to_dict("list") == {"text": ['x, "y"', "z"], "label": [1, 0]}
    assert str(frame["label"].dtype) == "int64"
    with pytest.raises(SentibenchError, match="validation.csv: not found; run `sentibench "):
        load_split(tmp_path, "validation")
    with pytest.raises(SentibenchError, match="unknown split 'dev'"):
        load_split(tmp_path, "dev")
    (tmp_path / "train.csv").write_bytes(b"text,label\n\xff\xfe,1\n")
    with pytest.raises(SentibenchError, match="train.csv: not a valid split CSV"):
        load_split(tmp_path, "train")


# --- downloads -----------------------------------------------------------------------

class _ArchiveHandler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.payload`` at /aclImdb_v1.tar.gz, with optional Range support."""

    def do_GET(self):  # noqa: N802 - http.server's naming
        server = self.server
        server.seen.append(self.headers.get("Range"))
        if self.path != "/aclImdb_v1.tar.gz":
            self.send_error(404)
            return
        data, start, wanted = server.payload, 0, self.headers.get("Range")
        if wanted and server.honor_range:
            start = int(wanted.removeprefix("bytes=").removesuffix("-"))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if server.cut_after is not None:  # promise everything, send part, hang up
            body, server.cut_after = body[: server.cut_after], None
            self.close_connection = True
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def archive_server(tmp_path, monkeypatch):
    """A local HTTP server (in a thread) and an empty download cache."""
    monkeypatch.setenv("SENTIBENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ArchiveHandler)
    server.daemon_threads = True
    server.payload = write_archive(tmp_path / "served.tar.gz", small_members()).read_bytes()
    server.md5 = hashlib.md5(server.payload).hexdigest()
    server.seen, server.honor_range, server.cut_after = [], True, None
    server.url = f"http://127.0.0.1:{server.server_address[1]}/aclImdb_v1.tar.gz"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_download_is_verified_and_cached(archive_server, tmp_path, capsys):
    path, digests = fetch(archive_server.url, md5=archive_server.md5)
    assert path == cached_download_path(archive_server.url)
    assert path.parent == tmp_path / "cache" and path.read_bytes() == archive_server.payload
    assert digests["md5"] == archive_server.md5 and not partial_path(archive_server.url).exists()
    assert archive_server.seen == [None]
    again, _ = fetch(archive_server.url, md5=archive_server.md5)
    assert again == path and archive_server.seen == [None]
    assert "Using cached download" in capsys.readouterr().out
    path.write_bytes(b"tampered")  # a cached copy that fails its checksum is fetched again
    assert fetch(archive_server.url, md5=archive_server.md5)[0].read_bytes() == (
        archive_server.payload)
    assert archive_server.seen == [None, None]


def test_wrong_md5_keeps_no_file(archive_server, tmp_path):
    with pytest.raises(SentibenchError, match="md5 .* does not match .*download was deleted"):
        fetch(archive_server.url, md5="0" * 32)
    assert contents(tmp_path / "cache") == []


def test_partial_download_resumes_with_a_range_request(archive_server):
    half = len(archive_server.payload) // 2
    part = partial_path(archive_server.url)
    part.parent.mkdir(parents=True)
    part.write_bytes(archive_server.payload[:half])
    path, _ = fetch(archive_server.url, md5=archive_server.md5)
    assert archive_server.seen == [f"bytes={half}-"]
    assert path.read_bytes() == archive_server.payload and not part.exists()


def test_interrupted_download_fails_then_resumes(archive_server):
    archive_server.cut_after = len(archive_server.payload) // 3
    with pytest.raises(SentibenchError, match="download interrupted.*run again to resume"):
        fetch(archive_server.url, md5=archive_server.md5)
    part = partial_path(archive_server.url)
    got = part.stat().st_size
    assert 0 < got < len(archive_server.payload)
    assert not cached_download_path(archive_server.url).exists()
    path, _ = fetch(archive_server.url, md5=archive_server.md5)
    assert archive_server.seen == [None, f"bytes={got}-"]
    assert path.read_bytes() == archive_server.payload


def test_server_ignoring_range_restarts_cleanly(archive_server):
    archive_server.honor_range = False
    half = len(archive_server.payload) // 2
    part = partial_path(archive_server.url)
    part.parent.mkdir(parents=True)
    part.write_bytes(archive_server.payload[:half])
    path, _ = fetch(archive_server.url, md5=archive_server.md5)
    assert archive_server.seen == [f"bytes={half}-"]  # asked, got the whole file (200)
    assert path.read_bytes() == archive_server.payload


@pytest.mark.parametrize("extra", [b"", b"stale bytes from another file"])
def test_complete_or_oversized_part_is_handled(archive_server, extra):
    part = partial_path(archive_server.url)
    part.parent.mkdir(parents=True)
    part.write_bytes(archive_server.payload + extra)
    path, _ = fetch(archive_server.url, md5=archive_server.md5)
    size = len(archive_server.payload) + len(extra)
    # 416 "bytes */N": complete if N is our size, else a fresh download
    assert archive_server.seen == ([f"bytes={size}-"] if not extra else [f"bytes={size}-", None])
    assert path.read_bytes() == archive_server.payload


def test_http_errors_and_unreachable_servers(archive_server):
    with pytest.raises(SentibenchError, match="missing.tar.gz: download failed: HTTP 404"):
        fetch(archive_server.url.replace("aclImdb_v1", "missing"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(SentibenchError, match="download failed"):
        fetch(f"http://127.0.0.1:{port}/aclImdb_v1.tar.gz")


def test_prepare_from_a_url(archive_server, small_archive, tmp_path, capsys):
    cfg = {"source": archive_server.url, "md5": archive_server.md5,
           "data_dir": tmp_path / "web", **SMALL}
    manifest, _ = prepare_quiet(capsys, **cfg)
    assert manifest["input"] == {"url": archive_server.url, "md5": archive_server.md5,
                                 "sha256": None}
    assert manifest["archive"]["md5"] == archive_server.md5
    (tmp_path / "local.tar.gz").write_bytes(archive_server.payload)
    prepare_quiet(capsys, source=str(tmp_path / "local.tar.gz"), data_dir=tmp_path / "local",
                  **SMALL)
    assert csv_bytes(tmp_path / "web") == csv_bytes(tmp_path / "local")
    assert "up to date" in prepare_quiet(capsys, **cfg)[1]
    assert archive_server.seen == [None]  # the re-run needed no network


def test_cli_prepare_with_a_wrong_md5_keeps_nothing(archive_server, tmp_path, capsys):
    err = _cli_error(capsys, ["prepare", "--source", archive_server.url, "--md5", "f" * 32,
                              "--data-dir", str(tmp_path / "d")])
    assert "does not match the expected " + "f" * 32 in err
    assert contents(tmp_path / "d") == [] and contents(tmp_path / "cache") == []

