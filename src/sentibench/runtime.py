"""Process-wide settings of sentibench's own processes, made before torch loads.

**How OpenMP threads wait.**

torch runs its CPU kernels on OpenMP threads (one per core) that spin between parallel
regions, each waiting for the slowest. When the cores are shared with other busy processes,
a spinning thread holds a core that the thread it waits for needs. On the 2-core machine
these benchmarks ran on, under load, MiniLM's feed-forward Linear (384 -> 1536) and GELU,
forward and backward on 4 x 256 tokens with 2 threads, took 107-126 ms of CPU time and
130-430 ms wall by default, and 38 ms of CPU time and 40-110 ms wall with
``OMP_WAIT_POLICY=PASSIVE`` (idle threads sleep at once); one thread took the same 38 ms
of CPU time. The numbers computed do not change, only how threads wait.

**How often Python's cycle collector runs.** Importing torch and transformers and building a
model create about 400,000 objects that live as long as the process, and with Python's
default thresholds the collector walks all of them again and again while they are created:
0.5-0.7 s of a MiniLM command's 3 s start-up on a 2-core EPYC. Collecting young objects
every 100,000 allocations rather than every 700 removes most of that; nothing computed
changes, and garbage in cycles still goes, a little later.
"""

from __future__ import annotations

import gc
import os

WAIT_POLICY_ENV = "OMP_WAIT_POLICY"
WAIT_POLICY = "PASSIVE"
GC_THRESHOLDS = (100_000, 50, 100)  # allocations before a young collection, then how many
# young (middle) collections before a middle (full) one


def configure() -> None:
    """Sleeping OpenMP waits, unless the environment already chose a policy, and rarer
    cycle collections.

    OpenMP reads the variable once, when torch first loads it, so this must run before
    ``import torch`` (the CLI calls it first; the policy does nothing for an already loaded
    torch).
    """
    os.environ.setdefault(WAIT_POLICY_ENV, WAIT_POLICY)
    gc.set_threshold(*GC_THRESHOLDS)
