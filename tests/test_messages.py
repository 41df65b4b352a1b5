"""Messages name the right place, and an interrupted command never reports success.

Unknown flags are the sub-command's error; ``predict --file`` says what it skipped; a
Ctrl-C that reaches ``bench`` while it finishes (the report, the exit) ends it with 130.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import sentibench
from sentibench.cli import build_parser, main
from tests.helpers import synthetic_csvs

SRC = Path(sentibench.__file__).resolve().parents[1]  # the subprocess runs this very code
# a sub-command's required positionals, so that the unknown flag is the only mistake
POSITIONALS = {"predict": ["RUN", "a text"], "report": ["DIR"], "serve": ["RUN"],
               "export": ["RUN"]}


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def _commands() -> list[str]:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return list(sub.choices)


def test_every_command_is_checked():
    assert _commands() == ["prepare", "train-logreg", "train-gpt", "train-hf", "train-setfit",
                           "bench",
                           "tune", "report", "predict", "serve", "export", "speedtest"]


@pytest.mark.parametrize("command", _commands())
def test_an_unknown_flag_is_the_sub_commands_error(capsys, command):
    code, out, err = _cli(capsys, command, *POSITIONALS.get(command, []), "--no-such-flag")
    assert (code, out, err) == (2, "", f"sentibench {command}: error: unrecognized arguments: "
                                       f"--no-such-flag (see `sentibench {command} --help`)\n")


def test_predict_names_the_unknown_flag_not_the_text_after_it(capsys):
    code, out, err = _cli(capsys, "predict", "RUN", "--unknown", "text")
    assert (code, err) == (2, "sentibench predict: error: unrecognized arguments: --unknown "
                              "(see `sentibench predict --help`)\n")


def test_a_stray_positional_is_named_by_its_command(capsys):
    code, out, err = _cli(capsys, "report", "DIR", "extra")
    assert (code, err) == (2, "sentibench report: error: unrecognized arguments: extra "
                              "(see `sentibench report --help`)\n")


@pytest.fixture(scope="module")
def logreg_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("logreg")
    data = synthetic_csvs(root / "data", (80, 20, 20))
    assert main(["train-logreg", "--data-dir", str(data), "--out", str(root / "run")]) == 0
    return root / "run"


def _labels(out: str) -> list[str]:
    return [line.split("\t")[0] for line in out.splitlines()]


def test_predict_takes_texts_after_its_options(logreg_run, capsys):
    capsys.readouterr()
    code, out, err = _cli(capsys, "predict", str(logreg_run), "--device", "cpu",
                          "great superb wonderful film", "awful boring dull film")
    assert (code, err, _labels(out)) == (0, "", ["positive", "negative"])


@pytest.mark.parametrize(("content", "note"), [
    ("great superb film\n\n   \nawful dull film\n", "note: skipped 2 blank lines in {f}\n"),
    ("great superb film\r\n\r\nawful dull film", "note: skipped 1 blank line in {f}\n"),
    ("great superb film\nawful dull film\n", ""),
])
def test_predict_file_says_how_many_blank_lines_it_skipped(logreg_run, capsys, tmp_path,
                                                           content, note):
    capsys.readouterr()
    path = tmp_path / "reviews.txt"
    path.write_bytes(content.encode("utf-8"))
    code, out, err = _cli(capsys, "predict", str(logreg_run), "--file", str(path))
    assert (code, err, _labels(out)) == (0, note.format(f=path), ["positive", "negative"])


# --- a late Ctrl-C ----------------------------------------------------------------------

def _state(pid: int) -> str:
    """The process's scheduler state: T stopped, Z/X exited (waiting to be reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def _interrupt_late(data: Path, out: Path, marker: str, delay: float) -> tuple[bool, int, str]:
    """Run a bench; ``delay`` seconds after it prints ``marker``, stop it, send SIGINT only
    if it is still running (stopped, not exiting), let it go on. Whether the signal reached
    it, its exit status, its stderr."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(SRC)}
    proc = subprocess.Popen([sys.executable, "-m", "sentibench", "bench", "--models", "dummy",
                             "--data-dir", str(data), "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    delivered = False
    for line in proc.stdout:
        if line.startswith(marker):
            time.sleep(delay)
            os.kill(proc.pid, signal.SIGSTOP)  # a stopped process cannot exit meanwhile
            while (state := _state(proc.pid)) not in ("T", "Z", "X", "gone"):
                time.sleep(0.001)  # stopping takes effect when it next runs
            delivered = state == "T"  # else it was already exiting: no signal can reach it
            if delivered:
                os.kill(proc.pid, signal.SIGINT)  # pending until it continues
            os.kill(proc.pid, signal.SIGCONT)
            break
    _, err = proc.communicate(timeout=60)
    return delivered, proc.returncode, err


def test_a_ctrl_c_while_bench_finishes_ends_it_with_130(tmp_path):
    """Three moments: as the report is written ("Data set:" is printed right after
    build_report), at the last line, and 0.1 s after it, on the way out (where Python,
    tearing its modules down with signal handlers off, used to die of the signal: status
    -2). A run the signal reached ends with 130 and says so; one it could not reach (already
    exiting) finished, with 0. The benches run side by side."""
    data = synthetic_csvs(tmp_path / "data", (40, 10, 10))
    moments = [("Data set:", 0.0), ("Wrote", 0.0), ("Wrote", 0.1)]
    with ThreadPoolExecutor(len(moments)) as pool:
        runs = list(pool.map(lambda i: _interrupt_late(data, tmp_path / f"b{i}", *moments[i]),
                             range(len(moments))))
    for (marker, delay), (delivered, code, err) in zip(moments, runs, strict=True):
        expected = (130, "sentibench bench: error: interrupted\n") if delivered else (0, "")
        assert (marker, delay, code, err) == (marker, delay, *expected)
    assert runs[0][0]  # as the report is written, the bench is still running


def test_first_line_quotes_an_exceptions_first_line_or_its_type():
    from sentibench.core.errors import first_line

    assert first_line(ValueError("  bad value\nmore detail\n")) == "bad value"
    assert first_line(RuntimeError()) == "RuntimeError"
