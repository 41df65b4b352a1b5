"""IMDb preparation: the reference's download_prepare_dataset.py, reproducible and safe.

The reference extracts 100k files to disk and builds one DataFrame per review; here the
labelled reviews are streamed straight out of the .tar.gz, ordered exactly as the
reference orders them, and split with the same double ``sample(random_state=123)``, so
the CSVs are byte-identical while the work takes a fraction of the time. Every output is
written atomically and described by ``manifest.json`` so re-runs can be no-ops.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import re
import tarfile
import time
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from .. import __version__
from ..errors import SentibenchError
from ..fileio import atomic_path, sha256_file
from .config import SOURCE_ENV, PrepareConfig
from .download import check_digests, fetch, file_digests, is_url
from .splits import MANIFEST, SPLIT_FILES

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


def _read_manifest(data_dir: Path) -> dict | None:
    try:
        manifest = json.loads((data_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def _up_to_date(cfg: PrepareConfig, source_id: dict) -> bool:
    manifest = _read_manifest(cfg.data_dir)
    if not manifest or manifest.get("input") != source_id:
        return False
    outputs = manifest.get("outputs", {}).keys()
    if manifest.get("options") != manifest_options(cfg) or outputs != set(SPLIT_FILES.values()):
        return False
    return all((cfg.data_dir / name).is_file() and sha256_file(cfg.data_dir / name) == digest
               for name, digest in manifest["outputs"].items())


def _write_outputs(cfg: PrepareConfig, parts: dict[str, pd.DataFrame], manifest: dict) -> None:
    """Write every output to a temporary file first, then rename the CSVs, manifest last.

    A failure while writing leaves the old outputs untouched and no temporary file; the
    old manifest is removed just before the renames, so a failure between them can never
    pair a manifest with CSVs it does not describe (the next run then rebuilds).
    """
    payloads = {name: parts[split].to_csv(index=False).encode("utf-8")
                for split, name in SPLIT_FILES.items()}
    manifest["outputs"] = {name: hashlib.sha256(data).hexdigest()
                           for name, data in payloads.items()}
    with contextlib.ExitStack() as stack:  # exits run in reverse: CSVs renamed, then manifest
        manifest_tmp = stack.enter_context(atomic_path(cfg.data_dir / MANIFEST))
        for name, data in payloads.items():
            stack.enter_context(atomic_path(cfg.data_dir / name)).write_bytes(data)
        manifest_tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        (cfg.data_dir / MANIFEST).unlink(missing_ok=True)


def summarize(parts: dict[str, pd.DataFrame]) -> str:
    """One screen: sizes, label balance, duplicates and review lengths per split."""
    lines = [f"{'split':<11}{'rows':>8}{'positive':>10}{'dummy':>8}{'dup rows':>10}"
             "   chars p10 / p50 / p90 / p99"]
    majority = int(parts["train"]["label"].mean() > 0.5)  # what DummyClassifier predicts
    for split, part in parts.items():
        pos = part["label"].mean()
        p = np.percentile(part["text"].str.len(), [10, 50, 90, 99]).astype(int)
        lines.append(f"{split:<11}{len(part):>8,}{pos:>10.2%}"
                     f"{pos if majority else 1 - pos:>8.2%}"
                     f"{int(part['text'].duplicated().sum()):>10}   "
                     f"{p[0]:>9,} / {p[1]:,} / {p[2]:,} / {p[3]:,}")
    sets = {split: set(part["text"]) for split, part in parts.items()}
    shared = ", ".join(f"{a}&{b} {len(sets[a] & sets[b])}" for a, b in
                       (("train", "validation"), ("train", "test"), ("validation", "test")))
    lines.append(f"texts in more than one split: {shared}")
    lines.append("dummy = accuracy of always predicting train's majority label; dup rows = "
                 "rows repeating an earlier text of the same split")
    return "\n".join(lines)


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
    """Write train/validation/test CSVs and manifest.json into ``cfg.data_dir``."""
    started = time.perf_counter()
    source_id, archive, digests = _source_id(cfg)
    if not cfg.force and _up_to_date(cfg, source_id):
        print(f"{cfg.data_dir}: up to date ({MANIFEST} matches the input, options and CSV "
              "checksums; use --force to rebuild)")
        return _read_manifest(cfg.data_dir) or {}
    if archive is None:
        archive, digests = _fetch_with_hint(cfg)
    frame, subsets = read_archive(archive)
    reviews = len(frame)
    if cfg.dedupe:
        keep = ~frame["text"].duplicated(keep="first").to_numpy()
        frame, subsets = frame[keep].reset_index(drop=True), subsets[keep]
    parts = split_frame(frame, subsets, cfg)
    manifest = {
        "schema": "sentibench.prepare/1", "sentibench_version": __version__,
        "source": cfg.source, "input": source_id,
        "archive": {"path": str(archive), "bytes": archive.stat().st_size, **(digests or {})},
        "options": manifest_options(cfg), "reviews": reviews,
        "duplicates_dropped": reviews - len(frame),
        "rows": {split: len(part) for split, part in parts.items()},
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    try:
        _write_outputs(cfg, parts, manifest)
    except OSError as exc:
        raise SentibenchError(f"{cfg.data_dir}: cannot write the split files "
                              f"({exc.strerror or exc})") from None
    dropped = f", {reviews - len(frame)} duplicates dropped" if cfg.dedupe else ""
    print(f"Prepared {cfg.data_dir} ({cfg.split} split of {reviews:,} reviews{dropped}) "
          f"in {time.perf_counter() - started:.1f} s")
    print(summarize(parts))
    return manifest


def ensure_prepared(data_dir: str | Path, source: str | None = None) -> Path:
    """Prepare the reference split if a CSV is missing (used by ``bench``)."""
    data_dir = Path(data_dir)
    if not all((data_dir / name).is_file() for name in SPLIT_FILES.values()):
        prepare(PrepareConfig(source=source, data_dir=data_dir))
    return data_dir
