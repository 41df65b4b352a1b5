"""Fetching the IMDb archive: a shared cache, resumable downloads, checksums before use.

A download goes to ``<cache>/<hash>-<name>.part`` and becomes ``<cache>/<hash>-<name>``
only after its md5/sha256 match. An interrupted download is resumed with an HTTP
``Range`` request; a server that ignores the range gets a clean restart.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import posixpath
import re
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from tqdm import tqdm

from sentibench import __version__
from sentibench.core.errors import SentibenchError
from sentibench.core.fileio import cache_dir

OFFICIAL_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
OFFICIAL_MD5 = "7c2ac02c03563afcf9b574c7e56c153a"
HEX_DIGITS = {"md5": 32, "sha256": 64}
TIMEOUT_S = 60


def normalize_digest(algo: str, value: str | None) -> str | None:
    """Lower-case hex of the right length, or a one-line error naming the flag."""
    if value is None:
        return None
    clean = value.strip().lower()
    if not re.fullmatch(f"[0-9a-f]{{{HEX_DIGITS[algo]}}}", clean):
        raise SentibenchError(f"--{algo} must be {HEX_DIGITS[algo]} hex digits, got {value!r}")
    return clean


def is_url(source: str) -> bool:
    return urlsplit(source).scheme in ("http", "https", "ftp")


def cached_download_path(url: str) -> Path:
    """Where ``url`` is cached (its ``.part`` sibling holds an interrupted download)."""
    name = posixpath.basename(urlsplit(url).path) or "archive.tar.gz"
    return cache_dir() / f"{hashlib.sha256(url.encode()).hexdigest()[:10]}-{name}"


def partial_path(url: str) -> Path:
    target = cached_download_path(url)
    return target.with_name(target.name + ".part")


def file_digests(path: Path) -> dict[str, str]:
    """md5 and sha256 in one pass over the file."""
    md5, sha = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            md5.update(chunk)
            sha.update(chunk)
    return {"md5": md5.hexdigest(), "sha256": sha.hexdigest()}


def check_digests(name: str, got: Mapping[str, str], expected: Mapping[str, str | None],
                  note: str = "") -> None:
    """Raise naming ``name`` when a given expected digest differs from the computed one."""
    for algo in HEX_DIGITS:
        want = expected.get(algo)
        if want is not None and got[algo] != want:
            raise SentibenchError(f"{name}: {algo} {got[algo]} does not match the expected "
                                  f"{want}{note}")


def fetch(url: str, md5: str | None = None, sha256: str | None = None
          ) -> tuple[Path, dict[str, str]]:
    """Download ``url`` into the cache (resuming a ``.part``), verified before it is kept."""
    expected = {"md5": md5, "sha256": sha256}
    target = cached_download_path(url)
    if target.is_file():
        digests = file_digests(target)
        try:
            check_digests(str(target), digests, expected)
            print(f"Using cached download {target}")
            return target, digests
        except SentibenchError:
            print(f"{target}: cached copy fails its checksum; downloading again")
            target.unlink()
    part = partial_path(url)
    _download(url, part)
    digests = file_digests(part)
    try:
        check_digests(url, digests, expected, note="; the download was deleted")
    except SentibenchError:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, target)
    return target, digests


def _open_ranged(url: str, offset: int):
    """Open ``url`` from byte ``offset``; returns (response or None if complete, offset)."""
    request = urllib.request.Request(url, headers={"User-Agent": f"sentibench/{__version__}"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # nothing left to send: complete if sizes agree
            if (exc.headers.get("Content-Range") or "").endswith(f"/{offset}"):
                return None, offset
            return _open_ranged(url, 0)
        raise SentibenchError(f"{url}: download failed: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SentibenchError(f"{url}: download failed: {reason}") from None
    content_range = response.headers.get("Content-Range") or ""
    if offset and (response.status != 206 or not content_range.startswith(f"bytes {offset}-")):
        offset = 0  # the server ignored the Range request: start over
    return response, offset


def _download(url: str, part: Path) -> None:
    part.parent.mkdir(parents=True, exist_ok=True)
    response, offset = _open_ranged(url, part.stat().st_size if part.exists() else 0)
    if response is None:
        return
    length = response.headers.get("Content-Length")
    total = offset + int(length) if length and length.isdigit() else None
    with response, open(part, "ab" if offset else "wb") as fh, tqdm(
        total=total, initial=offset, unit="B", unit_scale=True, desc=part.name[:-5], disable=None
    ) as bar:
        try:
            for chunk in iter(lambda: response.read(1 << 16), b""):
                fh.write(chunk)
                bar.update(len(chunk))
        except (OSError, http.client.HTTPException) as exc:  # timeouts, resets, short reads
            raise SentibenchError(f"{url}: download interrupted ({type(exc).__name__}); run "
                                  f"again to resume from {part}") from None
    if total is not None and part.stat().st_size != total:
        raise SentibenchError(f"{url}: download interrupted at {part.stat().st_size} of "
                              f"{total} bytes; run again to resume from {part}")
