"""The sentibench command chooses sleeping OpenMP waits unless the environment chose, and
rarer cycle collections."""

from __future__ import annotations

import gc
import os
import subprocess
import sys

import pytest

from sentibench import runtime
from sentibench.cli import main


def test_the_cli_sets_passive_waiting_unless_a_policy_is_set(monkeypatch, capsys):
    monkeypatch.delenv(runtime.WAIT_POLICY_ENV, raising=False)
    with pytest.raises(SystemExit):
        main(["--help"])
    assert os.environ[runtime.WAIT_POLICY_ENV] == "PASSIVE"
    monkeypatch.setenv(runtime.WAIT_POLICY_ENV, "ACTIVE")
    with pytest.raises(SystemExit):
        main(["--help"])
    assert os.environ[runtime.WAIT_POLICY_ENV] == "ACTIVE"


def test_configure_runs_before_torch_is_imported():
    """In a fresh interpreter the policy is in the environment by the time torch (and so
    OpenMP) loads for a command."""
    code = ("import os, sys\n"
            "from sentibench import cli\n"
            "assert 'torch' not in sys.modules\n"
            "try:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules\n"
            "print(os.environ['OMP_WAIT_POLICY'])\n")
    env = {k: v for k, v in os.environ.items() if k != runtime.WAIT_POLICY_ENV}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True)
    assert done.stdout.splitlines()[-1] == "PASSIVE"


def test_the_cli_collects_cycles_less_often(monkeypatch):
    monkeypatch.setattr(gc, "set_threshold", lambda *t: calls.append(t))
    calls: list[tuple[int, ...]] = []
    with pytest.raises(SystemExit):
        main(["--help"])
    assert calls == [runtime.GC_THRESHOLDS]
    assert runtime.GC_THRESHOLDS[0] > 700  # rarer than Python's default young threshold
