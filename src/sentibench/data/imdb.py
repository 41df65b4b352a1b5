"""IMDb preparation: the reference's download_prepare_dataset.py, reproducible and safe.

The reference extracts 100k files to disk and builds one DataFrame per review; here the
labelled reviews are streamed straight out of the .tar.gz, ordered exactly as the
reference orders them, and split with the same double ``sample(random_state=123)``, so
the CSVs are byte-identical while the work takes a fraction of the time. Every output is
written atomically and described by ``manifest.json`` so re-runs can be no-ops.
"""

from __future__ import annotations

import gzip
import re
import tarfile
import time
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from sentibench.core.errors import SentibenchError
from sentibench.data.config import DEFAULT_LABEL_NAMES, SOURCE_ENV, PrepareConfig
from sentibench.data.download import check_digests, fetch, file_digests, is_url
from sentibench.data.prepared import new_manifest, read_manifest, report, up_to_date, write_prepared
from sentibench.data.splits import MANIFEST

SEED = 123
# The reference's reading order: folders in this order, files sorted as plain strings.
FOLDER_ORDER = (("test", "pos"), ("test", "neg"), ("train", "pos"), ("train", "neg"))
LABELS = {"pos": 1, "neg": 0}
_WANTED = re.compile(r"aclImdb/(train|test)/(pos|neg)/([^/]+\.txt)")
_ARCHIVE_ERRORS = (tarfile.TarError, EOFError, zlib.error, OSError)


def manifest_options(cfg: PrepareConfig) -> dict:
    """The settings that change the CSVs (recorded in, and compared with, the manifest)."""
    return {"split": cfg.split, "dedupe": cfg.dedupe, "seed": SEED,
            "train_size": cfg.train_size, "validation_size": cfg.validation_size}


# --- reading the archive -------------------------------------------------------------

def _wanted(member: tarfile.TarInfo, archive: Path) -> tuple[str, str, str] | None:
    """(subset, label, file name) for a labelled review; None for anything else."""
    name = member.name
    while name.startswith("./"):
        name = name[2:]
    if name.startswith("/") or ".." in name.split("/") or re.match(r"[A-Za-z]:", name):
        raise SentibenchError(f"{archive}: unsafe member {member.name!r} (absolute path or "
                              "'..'); refusing the archive")
    match = _WANTED.fullmatch(name)
    if match is None:
        return None
    if not member.isfile() or member.issparse():
        raise SentibenchError(f"{archive}: member {member.name!r} is a link or special file, "
                              "not a review; refusing the archive")
    return match.group(1), match.group(2), match.group(3)


def _open_tar(raw, archive: Path) -> tarfile.TarFile:
    head = raw.peek(2)[:2] if hasattr(raw, "peek") else b""
    if head == b"\x1f\x8b":  # gzip's C-level buffering is much faster than tarfile's r|gz
        return tarfile.open(fileobj=gzip.GzipFile(fileobj=raw), mode="r|")
    return tarfile.open(fileobj=raw, mode="r|*")


def _check_end(tar: tarfile.TarFile) -> None:
    """Fail unless the archive stopped at its end-of-archive marker.

    tarfile ends quietly at a truncated or damaged header, as if the archive ended there,
    which would silently drop reviews. A real end is a zero block followed only by zero
    padding; reading that padding to the end also makes gzip check its CRC and length.
    """
    if tar.fileobj.tell() - tar.offset != tarfile.BLOCKSIZE:
        raise EOFError("the archive ends without an end-of-archive marker")
    while chunk := tar.fileobj.read(1 << 16):
        if chunk.count(0) != len(chunk):
            raise tarfile.ReadError("a damaged header (data follows the end of the archive)")


def _collect(archive: Path) -> dict[tuple[str, str], dict[str, bytes]]:
    """Stream the archive once, keeping the bytes of labelled reviews by folder."""
    found: dict[tuple[str, str], dict[str, bytes]] = {key: {} for key in FOLDER_ORDER}
    current = "(archive start)"
    try:
        with open(archive, "rb") as fh, tqdm.wrapattr(
            fh, "read", total=archive.stat().st_size, desc="reading", disable=None
        ) as raw, _open_tar(raw, archive) as tar:
            for member in tar:
                current = member.name
                key = _wanted(member, archive)
                if key is not None:  # in stream mode the data follows the header: read it
                    data = tar.fileobj.read(member.size)  # directly (faster than extractfile)
                    if len(data) != member.size:
                        raise EOFError(f"member data ends after {len(data)} bytes")
                    found[key[:2]][key[2]] = data  # a later copy wins, as when extracting
            current = "(archive end)"
            _check_end(tar)
    except _ARCHIVE_ERRORS as exc:
        raise SentibenchError(f"{archive}: corrupt or truncated archive (at member "
                              f"{current!r}): {exc}") from None
    return found


def _universal_newlines(text: str) -> str:
    """What the reference's text-mode ``open(...).read()`` returns: \\r\\n and \\r become \\n."""
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


def read_archive(archive: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """The labelled reviews in reference order, and each row's official subset."""
    found = _collect(archive)
    texts: list[str] = []
    labels: list[int] = []
    subsets: list[str] = []
    for subset, label in FOLDER_ORDER:
        files = found[(subset, label)]
        if not files:
            raise SentibenchError(f"{archive}: no reviews under aclImdb/{subset}/{label}/ "
                                  "(not an aclImdb archive?)")
        for name in sorted(files):
            member = f"aclImdb/{subset}/{label}/{name}"
            try:
                text = files[name].decode("utf-8")
            except UnicodeDecodeError as exc:
                raise SentibenchError(f"{archive}: member {member}: not valid UTF-8 "
                                      f"(byte {exc.start})") from None
            if not text.strip():
                raise SentibenchError(f"{archive}: member {member}: empty review")
            texts.append(_universal_newlines(text))
        labels += [LABELS[label]] * len(files)
        subsets += [subset] * len(files)
    return pd.DataFrame({"text": texts, "label": labels}), np.array(subsets)


# --- splitting and writing -----------------------------------------------------------

def split_frame(frame: pd.DataFrame, subsets: np.ndarray, cfg: PrepareConfig
                ) -> dict[str, pd.DataFrame]:
    """The reference split (two identical shuffles) or the official one."""
    if cfg.split == "reference":
        perm = np.random.RandomState(SEED).permutation(len(frame))
        shuffled = frame.take(perm[perm])  # == sample(frac=1, random_state=123) twice
        end_train, end_val = cfg.train_size, cfg.train_size + cfg.validation_size
        parts = {"train": shuffled[:end_train], "validation": shuffled[end_train:end_val],
                 "test": shuffled[end_val:]}
    else:
        pool, test = frame[subsets == "train"], frame[subsets == "test"]
        perm = np.random.RandomState(SEED).permutation(len(pool))
        parts = {"train": pool.take(perm[cfg.validation_size:]),
                 "validation": pool.take(perm[:cfg.validation_size]),
                 "test": test.take(np.random.RandomState(SEED).permutation(len(test)))}
    for split, part in parts.items():
        if part.empty:
            raise SentibenchError(f"{cfg.source}: only {len(frame)} reviews, too few for a "
                                  f"non-empty {split} split ({cfg.split} split)")
    return {split: part.reset_index(drop=True) for split, part in parts.items()}


def _source_id(cfg: PrepareConfig) -> tuple[dict, Path | None, dict | None]:
    """How the manifest identifies the input; local files are hashed (and verified) now."""
    if is_url(cfg.source):
        return {"url": cfg.source, "md5": cfg.md5, "sha256": cfg.sha256}, None, None
    archive = Path(cfg.source).expanduser()
    if not archive.is_file():
        raise SentibenchError(f"{archive}: archive not found (--source)")
    digests = file_digests(archive)
    check_digests(str(archive), digests, {"md5": cfg.md5, "sha256": cfg.sha256})
    return {"sha256": digests["sha256"]}, archive, digests


def _fetch_with_hint(cfg: PrepareConfig) -> tuple[Path, dict]:
    """Download the archive; a failure says how to use a local copy instead."""
    try:
        return fetch(cfg.source, md5=cfg.md5, sha256=cfg.sha256)
    except SentibenchError as exc:
        raise SentibenchError(f"{exc}. Without internet, use a local copy of the archive: "
                              f"--source PATH/aclImdb_v1.tar.gz (or set {SOURCE_ENV})"
                              ) from None


def prepare(cfg: PrepareConfig) -> dict:
    """Write train/validation/test CSVs, labels.json and manifest.json into ``cfg.data_dir``."""
    started = time.perf_counter()
    source_id, archive, digests = _source_id(cfg)
    if not cfg.force and up_to_date(cfg.data_dir, source_id, manifest_options(cfg)):
        print(f"{cfg.data_dir}: up to date ({MANIFEST} matches the input, options and "
              "checksums; use --force to rebuild)")
        return read_manifest(cfg.data_dir) or {}
    if archive is None:
        archive, digests = _fetch_with_hint(cfg)
    frame, subsets = read_archive(archive)
    reviews = len(frame)
    if cfg.dedupe:
        keep = ~frame["text"].duplicated(keep="first").to_numpy()
        frame, subsets = frame[keep].reset_index(drop=True), subsets[keep]
    parts = split_frame(frame, subsets, cfg)
    manifest = new_manifest(
        "imdb", cfg.source, source_id, manifest_options(cfg), parts,
        archive={"path": str(archive), "bytes": archive.stat().st_size, **(digests or {})},
        reviews=reviews, duplicates_dropped=reviews - len(frame))
    write_prepared(cfg.data_dir, parts, list(DEFAULT_LABEL_NAMES), manifest)
    dropped = f", {reviews - len(frame)} duplicates dropped" if cfg.dedupe else ""
    report(cfg.data_dir, f"{cfg.split} split of {reviews:,} reviews{dropped}", parts,
           list(DEFAULT_LABEL_NAMES), started)
    return manifest
