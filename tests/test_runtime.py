"""The sentibench command chooses short OpenMP spins unless the environment chose, rarer
cycle collections and large blocks from the heap."""

from __future__ import annotations

import ctypes
import gc
import os
import subprocess
import sys

import pytest

from sentibench.cli import main
from sentibench.core import runtime


@pytest.mark.parametrize("chosen", [None, *runtime.THREAD_WAIT])
def test_the_cli_sets_short_spins_unless_the_environment_chose(monkeypatch, chosen):
    for name in runtime.THREAD_WAIT:
        monkeypatch.delenv(name, raising=False)
    if chosen is not None:
        monkeypatch.setenv(chosen, "mine")
    with pytest.raises(SystemExit):
        main(["--help"])
    expected = runtime.THREAD_WAIT if chosen is None else {chosen: "mine"}
    assert {k: os.environ.get(k) for k in runtime.THREAD_WAIT} == \
        {k: expected.get(k) for k in runtime.THREAD_WAIT}


def test_configure_runs_before_torch_is_imported():
    """In a fresh interpreter the policy is in the environment by the time torch (and so
    OpenMP) loads for a command."""
    code = ("import os, sys\n"
            "from sentibench import cli\n"
            "assert 'torch' not in sys.modules\n"
            "try:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules\n"
            "print(os.environ['OMP_WAIT_POLICY'], os.environ['GOMP_SPINCOUNT'])\n")
    env = {k: v for k, v in os.environ.items() if k not in runtime.THREAD_WAIT}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True)
    assert done.stdout.splitlines()[-1] == "PASSIVE 10000"


def test_the_cli_collects_cycles_less_often(monkeypatch):
    monkeypatch.setattr(gc, "set_threshold", lambda *t: calls.append(t))
    calls: list[tuple[int, ...]] = []
    with pytest.raises(SystemExit):
        main(["--help"])
    assert calls == [runtime.GC_THRESHOLDS]
    assert runtime.GC_THRESHOLDS[0] > 700  # rarer than Python's default young threshold


_MAPPED_BYTES = """
import ctypes, sys
from sentibench.core import runtime
if sys.argv[1] == "configure":
    runtime.configure()
libc = ctypes.CDLL(None)
class Info(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks",
                "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc.mallinfo2.restype = Info
libc.malloc.restype = ctypes.c_void_p
before = libc.mallinfo2().hblkhd
block = libc.malloc(47 << 20)  # MiniLM's word-embedding gradient
print(libc.mallinfo2().hblkhd - before)
"""


@pytest.mark.skipif(not hasattr(ctypes.CDLL(None), "mallinfo2"),
                    reason="needs glibc 2.33+ (mallinfo2) to see where malloc put a block")
@pytest.mark.parametrize(("how", "env", "mapped"), [
    ("plain", {}, True),  # glibc's default: a 47 MB block is mapped from the kernel
    ("configure", {}, False),  # sentibench: from the heap
    ("configure", {"MALLOC_MMAP_THRESHOLD_": str(1 << 20)}, True),  # the user's choice stands
    ("configure", {"GLIBC_TUNABLES": f"glibc.malloc.mmap_threshold={1 << 20}"}, True),
])
def test_configure_serves_large_blocks_from_the_heap(how, env, mapped):
    clean = {k: v for k, v in os.environ.items()
             if k not in (*runtime.MALLOC_ENV, runtime.TUNABLES_ENV)}
    done = subprocess.run([sys.executable, "-c", _MAPPED_BYTES, how], env={**clean, **env},
                          capture_output=True, text=True, check=True)
    assert (int(done.stdout) >= 47 << 20) is mapped
