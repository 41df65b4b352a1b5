"""Process-wide settings of sentibench's own processes, made before torch loads.

**How OpenMP threads wait.**

torch runs its CPU kernels on OpenMP threads (one per core) that spin between parallel
regions, each waiting for the slowest. When the cores are shared with other busy processes,
a spinning thread holds a core that the thread it waits for needs. On the 2-core machine
these benchmarks ran on, under load, MiniLM's feed-forward Linear (384 -> 1536) and GELU,
forward and backward on 4 x 256 tokens with 2 threads, took 107-126 ms of CPU time and
130-430 ms wall by default (libgomp spins about 3 ms), and 38 ms of CPU time and 40-110 ms
wall with ``OMP_WAIT_POLICY=PASSIVE`` (idle threads sleep at once). But a thread that sleeps
at once must be woken for the next kernel, tens of microseconds each time, and a training
step runs thousands of kernels: a MiniLM forward and backward on one 8-token row took 37 ms
passive against 24 ms spinning, and 25 training steps on 8 x 256 tokens 20.3-21.8 s against
18.9-19.1 s. So threads spin for about 0.1 ms (``GOMP_SPINCOUNT``, read by libgomp, the
OpenMP of torch's Linux wheels), enough to bridge the gap between two kernels, then sleep
(``OMP_WAIT_POLICY=PASSIVE``, for other OpenMP runtimes). With two busy processes on the two
cores, 8 steps took 13.5-14.3 s this way, 11.7-15.6 s passive and 21.3-23.0 s with the 3 ms
default. The numbers computed do not change, only how threads wait.

**How often Python's cycle collector runs.** Importing torch and transformers and building a
model create about 400,000 objects that live as long as the process, and with Python's
default thresholds the collector walks all of them again and again while they are created:
0.5-0.7 s of a MiniLM command's 3 s start-up on a 2-core EPYC. Collecting young objects
every 100,000 allocations rather than every 700 removes most of that; nothing computed
changes, and garbage in cycles still goes, a little later.

**Where large blocks come from.** glibc's malloc maps a block of more than 32 MiB fresh
from the kernel and unmaps it when freed, so each use pays a page fault per 4 KiB page.
MiniLM's word-embedding gradient (30,522 x 384 floats, 47 MB) is such a block, made anew by
every micro-batch's backward: 13 ms to allocate and zero against 1.5 ms from the heap. So
blocks up to :data:`MMAP_THRESHOLD` (BERT-base to RoBERTa-large's embedding gradients, GPT-2's
154 MB) come from the heap, and up to :data:`TRIM_THRESHOLD` of freed space at its top is
kept for the next step (glibc already keeps up to 64 MiB). Over 25 MiniLM training steps:
19.97-20.76 s against 20.68-22.62 s, four interleaved pairs, the same peak memory. Only on
glibc, and not where the environment sets malloc's thresholds itself.
"""

from __future__ import annotations

import ctypes
import gc
import os
import sys

THREAD_WAIT = {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "10000"}  # ~0.1 ms of spinning
GC_THRESHOLDS = (100_000, 50, 100)  # allocations before a young collection, then how many
# young (middle) collections before a middle (full) one
MMAP_THRESHOLD = 256 << 20  # bytes: larger blocks are still mapped from the kernel
TRIM_THRESHOLD = 512 << 20  # bytes of free heap top kept rather than given back
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (malloc.h)
MALLOC_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")  # a user's own thresholds,
TUNABLES_ENV, MALLOC_TUNABLES = "GLIBC_TUNABLES", "glibc.malloc."  # or malloc tunables here


def configure() -> None:
    """Short OpenMP spins, unless the environment already chose how threads wait (either
    variable of :data:`THREAD_WAIT`), rarer cycle collections, and large blocks from
    malloc's heap.

    OpenMP reads the variables once, when torch first loads it, so this must run before
    ``import torch`` (the CLI calls it first; they do nothing for an already loaded torch).
    """
    if not any(name in os.environ for name in THREAD_WAIT):
        os.environ.update(THREAD_WAIT)
    gc.set_threshold(*GC_THRESHOLDS)
    _keep_large_blocks()


def _keep_large_blocks() -> bool:
    """glibc's malloc serves blocks up to :data:`MMAP_THRESHOLD` from its heap; True if set."""
    chosen = any(os.environ.get(k) for k in MALLOC_ENV) \
        or MALLOC_TUNABLES in os.environ.get(TUNABLES_ENV, "")
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None) if sys.platform == "linux" else None
    if chosen or mallopt is None:
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)  # 0 where it does nothing (musl)
                and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
