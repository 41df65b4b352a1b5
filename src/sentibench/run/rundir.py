"""Run and bench directories: checked before use, locked while written, cleaned on failure.

* A directory that already holds something (another run's results, model or checkpoint)
  is refused unless ``--overwrite`` is given; so two runs never mix their files in one
  directory. ``--overwrite`` moves the old run into ``.sentibench-previous`` inside the
  directory and deletes it only once the new run has a checkpoint or results; a new run
  that fails (or is killed) before that gets the old run back, now or at the next start.
  So the directory never holds neither the old run nor a resumable new one.
* Each start first settles what a killed process left: a checkpoint swap cut between its
  renames is completed, and ``checkpoint.new/``, ``checkpoint.old/``, ``.hf-save.*/`` and
  ``.*.tmp`` are removed (under the lock, so no live writer owns them).
* While a command writes a directory it holds an exclusive lock on ``.sentibench.lock``
  inside it (``fcntl.flock``, released by the OS even when the process dies); a second
  writer gets a one-line error naming the holder's pid.
* When a start fails before anything worth keeping exists, what the start created is
  removed: a failed attempt leaves no empty ``runs/<model>-<stamp>`` behind. A checkpoint
  or a results.json is never removed by this.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from sentibench.core.errors import SentibenchError
from sentibench.core.fileio import PREVIOUS_RUN
from sentibench.engine.config import CHECKPOINT_DIR
from sentibench.run.results import FAILURES_FILE, RESULTS_FILE

LOCK_FILE = ".sentibench.lock"
KEEP = (RESULTS_FILE, CHECKPOINT_DIR, FAILURES_FILE)  # finished or resumable work
# engine.checkpoint's staging names (not imported: that module imports torch)
NEW, OLD = CHECKPOINT_DIR + ".new", CHECKPOINT_DIR + ".old"
STATE_FILE = "state.json"

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no locking
    fcntl = None  # type: ignore[assignment]


def check_target(path: Path, flag: str = "--out") -> None:
    """One-line errors for a path that can never be a directory we write."""
    if path.exists() and not path.is_dir():
        raise SentibenchError(f"{flag} {path}: exists and is not a directory")
    parent = path
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise SentibenchError(f"{flag} {path}: cannot be created ({parent} is not a directory)")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise SentibenchError(f"{flag} {path}: cannot be created or written ({parent} is "
                              "not writable)")


def contents(path: Path) -> list[str]:
    """What a directory holds, apart from our lock file and a run set aside."""
    if not path.is_dir():
        return []
    return sorted(p.name for p in path.iterdir() if p.name not in (LOCK_FILE, PREVIOUS_RUN))


def refuse_other_run(path: Path, overwrite: bool, flag: str = "--out") -> None:
    held = contents(path)
    if held and not overwrite:
        what = "a finished run" if RESULTS_FILE in held else \
            "an interrupted run (resume it with --resume)" if CHECKPOINT_DIR in held else \
            f"other files ({', '.join(held[:3])}{', ...' if len(held) > 3 else ''})"
        raise SentibenchError(f"{flag} {path} already holds {what}; choose another "
                              "directory, or pass --overwrite to replace it")


def _remove(target: Path) -> None:
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)
    else:
        target.unlink(missing_ok=True)


def _settle_checkpoint(path: Path) -> None:
    """Finish a checkpoint swap a kill cut between its renames (engine.checkpoint's
    ``checkpoint_folder`` reads the same state), then drop the staging directories."""
    final, staged, old = path / CHECKPOINT_DIR, path / NEW, path / OLD
    if not final.exists() and old.is_dir():
        (staged if (staged / STATE_FILE).is_file() else old).rename(final)
    for leftover in (staged, old, *path.glob(".hf-save.*"), *path.glob(".*.tmp")):
        _remove(leftover)


def settle(path: Path) -> bool:
    """Clean what a killed writer left, and decide a run set aside by ``--overwrite``: gone
    once the new run has work to keep, else put back in place of the new run's debris
    (then True)."""
    _settle_checkpoint(path)
    previous = path / PREVIOUS_RUN
    if not previous.is_dir():
        return False
    restore = not any(name in KEEP for name in contents(path))
    if restore:
        for name in contents(path):
            _remove(path / name)
        for item in previous.iterdir():
            item.rename(path / item.name)
    shutil.rmtree(previous)
    return restore


def _set_aside(path: Path) -> None:
    """--overwrite: move the old run into ``.sentibench-previous`` (kept until the new run
    has a checkpoint or results)."""
    held = contents(path)
    if not held:
        return
    try:
        (path / PREVIOUS_RUN).mkdir()
        for name in held:
            (path / name).rename(path / PREVIOUS_RUN / name)
    except OSError as exc:
        with contextlib.suppress(OSError):  # put back what was moved
            for item in (path / PREVIOUS_RUN).iterdir():
                item.rename(path / item.name)
            (path / PREVIOUS_RUN).rmdir()
        raise SentibenchError(f"{path}: cannot set the old run aside ({exc.strerror or exc}); "
                              "nothing was replaced") from None


@contextlib.contextmanager
def lock(path: Path) -> Iterator[None]:
    """Hold ``path/.sentibench.lock`` exclusively; the pid of a holder is in the file."""
    if fcntl is None:  # pragma: no cover
        yield
        return
    lock_path = path / LOCK_FILE
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise SentibenchError(f"{path} is being written by another sentibench process "
                                  f"(pid {holder}); wait for it or use another directory"
                                  ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                os.unlink(lock_path)
    finally:
        os.close(fd)


@contextlib.contextmanager
def run_directory(path: Path, *, overwrite: bool = False, resume: bool = False,
                  flag: str = "--out") -> Iterator[Path]:
    """Create (or reuse, when resuming) a run directory, locked while the block runs.

    On an exception, a directory this call created is removed again unless it holds
    work to keep (a checkpoint or results); a reused directory keeps what it had.
    """
    path = Path(path)
    if os.environ.get("RANK", "0") != "0":  # torchrun: rank 0 checks, locks and cleans
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    check_target(path, flag)
    new = [p for p in (path, *path.parents) if not p.exists()]  # what mkdir will create
    path.mkdir(parents=True, exist_ok=True)
    try:
        with lock(path):
            settle(path)
            if not resume:
                refuse_other_run(path, overwrite, flag)
                if overwrite:
                    _set_aside(path)
            try:
                yield path
            except BaseException as exc:
                if settle(path) and isinstance(exc, SentibenchError):
                    raise SentibenchError(f"{exc}; {path} keeps the run --overwrite would "
                                          "have replaced") from None
                raise
            settle(path)
    except BaseException:
        if new and not any(name in KEEP for name in contents(path)):
            shutil.rmtree(path, ignore_errors=True)
            for parent in new[1:]:  # e.g. runs/, if this start made it and it is empty
                with contextlib.suppress(OSError):
                    parent.rmdir()
        raise
