"""The SMS Spam Collection, prepared exactly as the book's classification chapter (ch06).

The book reads ``SMSSpamCollection`` with pandas' default quoting (which merges a few
lines that hold quote characters: 5,572 rows, 4,825 ham and 747 spam), keeps every spam
message and as many ham messages sampled with ``random_state=123`` (ham first), maps
ham -> 0 and spam -> 1, shuffles with ``random_state=123`` and cuts 70 % / 10 % / rest
with ``int()``: 1,045 / 149 / 300 rows, the same rows in the same order as its CSVs.
``--balance none`` keeps all 5,572 messages (13 % spam) in a stratified split of the
same proportions.
"""

from __future__ import annotations

import hashlib
import io
import time
import zipfile
from pathlib import Path

import pandas as pd

from sentibench.core.errors import SentibenchError
from sentibench.data.config import PrepareConfig
from sentibench.data.download import fetch, file_digests, is_url
from sentibench.data.prepared import (
    check_parts,
    cut,
    new_manifest,
    read_manifest,
    report,
    stratified_split,
    up_to_date,
    write_prepared,
)
from sentibench.data.splits import MANIFEST

URLS = ("https://archive.ics.uci.edu/static/public/228/sms+spam+collection.zip",
        "https://f001.backblazeb2.com/file/LLMs-from-scratch/sms%2Bspam%2Bcollection.zip")
MEMBER = "SMSSpamCollection"
MEMBER_MD5 = "1949b64a224790d01335c2bf8a0e48b2"
NAMES = ["ham", "spam"]
SEED = 123
FRACTIONS = (0.7, 0.1)


def read_collection(raw: bytes, where: str) -> pd.DataFrame:
    """The book's ``read_csv(sep="\\t", header=None, names=["Label", "Text"])``, as
    ``text`` and ``label`` (ham 0, spam 1)."""
    frame = pd.read_csv(io.BytesIO(raw), sep="\t", header=None, names=["Label", "Text"],
                        encoding="utf-8")
    unknown = sorted(set(frame["Label"]) - set(NAMES))
    if unknown:
        raise SentibenchError(f"{where}: label {unknown[0]!r} is neither ham nor spam "
                              "(not the SMS Spam Collection?)")
    return pd.DataFrame({"text": frame["Text"].astype(str),
                         "label": frame["Label"].map({"ham": 0, "spam": 1})})


def book_split(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Balance (all spam, as many ham; ham first), shuffle, cut 70 / 10 / rest."""
    spam = frame[frame["label"] == 1]
    ham = frame[frame["label"] == 0].sample(len(spam), random_state=SEED)
    balanced = pd.concat([ham, spam]).sample(frac=1, random_state=SEED)
    return cut(balanced.reset_index(drop=True), FRACTIONS)


def _member_bytes(path: Path) -> bytes:
    """The collection from the UCI zip or a bare ``SMSSpamCollection``, md5-checked."""
    data = path.read_bytes()
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            if MEMBER not in archive.namelist():
                raise SentibenchError(f"{path}: no {MEMBER} in this zip")
            data = archive.read(MEMBER)
    got = hashlib.md5(data, usedforsecurity=False).hexdigest()
    if got != MEMBER_MD5:
        raise SentibenchError(f"{path}: {MEMBER} has md5 {got}, not the original's "
                              f"{MEMBER_MD5}")
    return data


def _download(given: str | None) -> Path:
    """The given URL, else the UCI archive, else the book's backup copy."""
    errors = []
    for url in (given,) if given else URLS:
        try:
            return fetch(url)[0]
        except SentibenchError as exc:
            errors.append(str(exc))
    raise SentibenchError(f"{'; '.join(errors)}. Without internet, use a local copy: "
                          "--source PATH/sms+spam+collection.zip or PATH/SMSSpamCollection")


def prepare_sms_spam(cfg: PrepareConfig) -> dict:
    started = time.perf_counter()
    source = cfg.source if cfg.source and not is_url(cfg.source) else None
    path = Path(source).expanduser() if source else None
    if path is not None and not path.is_file():
        raise SentibenchError(f"{path}: not found (--source)")
    options = {"balance": cfg.balance, "seed": SEED, "fractions": list(FRACTIONS)}
    source_id = {"sha256": file_digests(path)["sha256"]} if path else \
        {"urls": [cfg.source] if cfg.source else list(URLS)}
    if not cfg.force and up_to_date(cfg.data_dir, source_id, options):
        print(f"{cfg.data_dir}: up to date ({MANIFEST} matches the input and options; use "
              "--force to rebuild)")
        return read_manifest(cfg.data_dir) or {}
    path = path or _download(cfg.source if cfg.source and is_url(cfg.source) else None)
    frame = read_collection(_member_bytes(path), str(path))
    parts = book_split(frame) if cfg.balance == "book" else \
        stratified_split(frame, FRACTIONS, SEED)
    check_parts(parts, NAMES, str(path))
    manifest = new_manifest("sms-spam", str(path), source_id, options, parts,
                            messages=len(frame))
    write_prepared(cfg.data_dir, parts, NAMES, manifest)
    report(cfg.data_dir, f"SMS spam, {cfg.balance} balance, {len(frame):,} messages", parts,
           NAMES, started)
    return manifest
