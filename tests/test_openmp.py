"""The sentibench command chooses sleeping OpenMP waits unless the environment chose."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sentibench import openmp
from sentibench.cli import main


def test_the_cli_sets_passive_waiting_unless_a_policy_is_set(monkeypatch, capsys):
    monkeypatch.delenv(openmp.WAIT_POLICY_ENV, raising=False)
    with pytest.raises(SystemExit):
        main(["--help"])
    assert os.environ[openmp.WAIT_POLICY_ENV] == "PASSIVE"
    monkeypatch.setenv(openmp.WAIT_POLICY_ENV, "ACTIVE")
    with pytest.raises(SystemExit):
        main(["--help"])
    assert os.environ[openmp.WAIT_POLICY_ENV] == "ACTIVE"


def test_configure_runs_before_torch_is_imported():
    """In a fresh interpreter the policy is in the environment by the time torch (and so
    OpenMP) loads for a command."""
    code = ("import os, sys\n"
            "from sentibench import cli\n"
            "assert 'torch' not in sys.modules\n"
            "try:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules\n"
            "print(os.environ['OMP_WAIT_POLICY'])\n")
    env = {k: v for k, v in os.environ.items() if k != openmp.WAIT_POLICY_ENV}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True)
    assert done.stdout.splitlines()[-1] == "PASSIVE"
