"""Run before the CLI when the tests cannot mount a small tmpfs (not root, no mount
namespace): a disk of ``LIMIT`` bytes at ``ROOT``, for real files. Every file opened for
writing under ROOT fails with ENOSPC, as the kernel's would, once the files there would
hold more than LIMIT bytes; safetensors' Rust writer is routed through Python's files.

Read by tests/test_full_disk.py only; never imported by the package.
"""

from __future__ import annotations

import builtins
import errno
import io
import os

ROOT, _, _limit = os.environ["SENTIBENCH_TEST_DISK"].rpartition(":")
LIMIT = int(_limit)


def _used() -> int:
    return sum(os.lstat(os.path.join(top, name)).st_size
               for top, _, names in os.walk(ROOT) for name in names)


def _under(file: object) -> bool:
    if not isinstance(file, str | bytes | os.PathLike):
        return False
    path = os.path.abspath(os.fsdecode(file))
    return path == ROOT or path.startswith(ROOT + os.sep)


class _Disk(io.FileIO):
    def write(self, data) -> int:  # type: ignore[override]
        if _used() + memoryview(data).nbytes > LIMIT:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return super().write(data)


_real_open = io.open


def _open(file, mode="r", buffering=-1, encoding=None, errors=None, newline=None,
          closefd=True, opener=None):
    if not (set(mode) & set("wax+")) or not _under(file):
        return _real_open(file, mode, buffering, encoding, errors, newline, closefd, opener)
    raw = _Disk(file, "".join(c for c in mode if c in "rwxa+"), closefd, opener)
    buffered = io.BufferedRandom(raw) if "+" in mode else io.BufferedWriter(raw)
    if "b" in mode:
        return buffered
    return io.TextIOWrapper(buffered, encoding, errors, newline)


builtins.open = io.open = _open


def _serialize_file(tensors, filename, metadata=None):
    from safetensors import serialize

    with _open(filename, "wb") as fh:
        fh.write(serialize(tensors, metadata))


import safetensors.torch  # noqa: E402  (imports torch: only in this fallback)

safetensors.torch.serialize_file = _serialize_file
