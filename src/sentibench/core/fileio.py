"""Small file helpers shared by every module that writes artefacts.

Everything the project writes goes through :func:`atomic_path` so that an interrupted
or failed command never leaves a half-written file that a later run could trust.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from sentibench.core.errors import SentibenchError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: temporary files are not locked nor swept
    fcntl = None  # type: ignore[assignment]

CACHE_ENV = "SENTIBENCH_CACHE"
FULL = (errno.ENOSPC, errno.EDQUOT)  # a full disk, or the user's quota reached
PREVIOUS_RUN = ".sentibench-previous"  # inside a run directory: the run --overwrite replaces


class DiskFull(SentibenchError):
    """A write failed for want of space. ``path`` is what could not be written; the message
    says what was kept, which only the caller knows (a checkpoint, a previous file)."""

    def __init__(self, path: str | os.PathLike[str], kept: str) -> None:
        super().__init__(f"{path}: no space left on device ({kept})")
        self.path = Path(path)


def disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` means "no space left". Rust writers (safetensors, tokenizers) raise
    their own exception types that only name the OS error in their text."""
    if isinstance(exc, DiskFull):
        return True
    if isinstance(exc, OSError):
        return exc.errno in FULL
    return any(f"(os error {code})" in str(exc) for code in FULL)


def cache_dir() -> Path:
    """Where downloads and token ids are cached: env SENTIBENCH_CACHE (or the older
    SENTIBENCH_CACHE_DIR), else ``$XDG_CACHE_HOME/sentibench`` or ``~/.cache/sentibench``.
    Never the data directory, which may be shared or read-only."""
    for name in (CACHE_ENV, "SENTIBENCH_CACHE_DIR"):
        if os.environ.get(name):
            return Path(os.environ[name])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sentibench"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def usual_mode(path: Path) -> None:
    """Give ``path`` the mode a plain ``open()`` would (some libraries write 0600 files)."""
    os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~_umask())


def _temp_pattern(target: Path) -> str:
    return f".{target.name}.*.tmp"


def sweep_temps(target: Path) -> None:
    """Remove the temporary files of ``target`` that a killed process left behind.

    Each writer holds an exclusive ``flock`` on its temporary file until it is renamed,
    and the OS drops the lock of a dead process; so a file we can lock is an orphan, and
    a concurrent writer's file (the token cache is shared by parallel runs) is never
    touched."""
    if fcntl is None:  # pragma: no cover
        return
    for stale in target.parent.glob(_temp_pattern(target)):
        with contextlib.suppress(OSError):
            fd = os.open(stale, os.O_RDONLY)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                if os.fstat(fd).st_ino == os.stat(stale).st_ino:
                    os.unlink(stale)
            finally:
                os.close(fd)


def _locked_temp(target: Path) -> tuple[int, Path]:
    """A new temporary file beside ``target``, locked; retried if a sweeper removed it
    between its creation and our lock."""
    while True:
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        if fcntl is None:  # pragma: no cover
            return fd, Path(name)
        fcntl.flock(fd, fcntl.LOCK_EX)
        if os.fstat(fd).st_nlink:
            return fd, Path(name)
        os.close(fd)


def _new_dirs(path: Path) -> list[Path]:
    """The directories ``mkdir(parents=True)`` of ``path`` would create, deepest first."""
    return [p for p in (path, *path.parents) if not p.exists()]


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` on success.

    On any exception the temporary file, and any directory made for it, is removed and
    ``target`` is left untouched; a full disk becomes :class:`DiskFull`, one line naming
    ``target``. Orphaned temporary files of ``target`` are swept first.
    """
    target = Path(target)
    made, fd, tmp = _new_dirs(target.parent), -1, None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        sweep_temps(target)
        fd, tmp = _locked_temp(target)
        yield tmp
        if tmp.exists():  # mkstemp makes 0600 files; give the usual umask-based mode
            usual_mode(tmp)
        os.replace(tmp, target)
    except BaseException as exc:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        for directory in made:
            with contextlib.suppress(OSError):
                directory.rmdir()
        if disk_full(exc) and not isinstance(exc, DiskFull):
            kept = "wrote nothing; the previous file is kept" if target.exists() else \
                "wrote nothing"
            raise DiskFull(target, kept) from None
        raise
    finally:
        if fd >= 0:
            os.close(fd)


def atomic_write_bytes(target: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(target: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(target, text.encode("utf-8"))


def atomic_write_json(target: str | os.PathLike[str], obj: Any) -> None:
    atomic_write_text(target, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def sha256_file(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def tree_digests(root: str | os.PathLike[str],
                 skip: Callable[[PurePosixPath], bool] = lambda relative: False
                 ) -> dict[str, dict[str, Any]]:
    """Relative path (posix) -> {"bytes", "sha256"} of every file under ``root``, in path
    order, except those ``skip`` (given the relative path) leaves out."""
    base = Path(root)
    out = {}
    for path in sorted(base.rglob("*")):
        relative = PurePosixPath(path.relative_to(base).as_posix())
        if path.is_file() and not skip(relative):
            out[str(relative)] = {"bytes": path.stat().st_size, "sha256": sha256_file(path)}
    return out
