"""How the OpenMP threads of sentibench's own processes wait, set before torch loads them.

torch runs its CPU kernels on OpenMP threads (one per core) that spin between parallel
regions, each waiting for the slowest. When the cores are shared with other busy processes,
a spinning thread holds a core that the thread it waits for needs. On the 2-core machine
these benchmarks ran on, under load, MiniLM's feed-forward Linear (384 -> 1536) and GELU,
forward and backward on 4 x 256 tokens with 2 threads, took 107-126 ms of CPU time and
130-430 ms wall by default, and 38 ms of CPU time and 40-110 ms wall with
``OMP_WAIT_POLICY=PASSIVE`` (idle threads sleep at once); one thread took the same 38 ms
of CPU time. The numbers computed do not change, only how threads wait.
"""

from __future__ import annotations

import os

WAIT_POLICY_ENV = "OMP_WAIT_POLICY"
WAIT_POLICY = "PASSIVE"


def configure() -> None:
    """Sleeping OpenMP waits, unless the environment already chose a policy.

    OpenMP reads the variable once, when torch first loads it, so this must run before
    ``import torch`` (the CLI calls it first; it does nothing for an already loaded torch).
    """
    os.environ.setdefault(WAIT_POLICY_ENV, WAIT_POLICY)
