"""Progress: a bar on a terminal, ten plain lines per task in a log."""

from __future__ import annotations

from sentibench.core import progress as progress_module
from sentibench.core.progress import LOG_LINES, LineProgress, progress


def test_off_a_terminal_a_task_prints_a_few_plain_lines(capsys, monkeypatch):
    monkeypatch.setattr(progress_module, "on_terminal", lambda: False)
    with progress(total=256, desc="training", unit="step") as bar:
        assert isinstance(bar, LineProgress)
        for _ in range(256):
            bar.update(1)
            bar.set_postfix(loss="0.512")
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert "\r" not in err
    assert len(lines) == LOG_LINES + 1  # every 25 steps, and the end
    assert lines[-1].startswith("training: 256/256 step (") and "loss=0.512" in lines[-1]


def test_transient_and_disabled_bars_print_nothing_off_a_terminal(capsys, monkeypatch):
    monkeypatch.setattr(progress_module, "on_terminal", lambda: False)
    assert list(progress(range(5), desc="eval", leave=False)) == [0, 1, 2, 3, 4]
    assert list(progress(range(3), desc="x", disable=True)) == [0, 1, 2]
    assert capsys.readouterr().err == ""


def test_a_resumed_task_counts_from_where_it_was(capsys, monkeypatch):
    monkeypatch.setattr(progress_module, "on_terminal", lambda: False)
    with progress(total=20, initial=15, desc="training", unit="step") as bar:
        for _ in range(5):
            bar.update(1)
    assert capsys.readouterr().err.splitlines()[-1].startswith("training: 20/20 step")
