"""predict: reading inputs (one line is one text) and naming what is missing."""

from __future__ import annotations

import pytest

from sentibench.cli import main
from sentibench.errors import SentibenchError
from sentibench.predict import read_inputs


def test_one_line_of_a_file_is_one_text_whatever_separators_it_holds(tmp_path):
    texts = ["a review with a line\u2028separator inside", "next\u0085line mark",
             "form\x0cfeed and vertical\x0btab", "crlf line"]
    path = tmp_path / "reviews.txt"
    path.write_bytes(("\n".join(texts[:3]) + "\n" + texts[3] + "\r\n\n").encode("utf-8"))
    assert read_inputs([], path, None, "text") == texts
    assert len("\n".join(texts).splitlines()) > len(texts)  # what splitlines() would do


def test_texts_and_a_file_together(tmp_path):
    path = tmp_path / "more.txt"
    path.write_text("from the file\n")
    assert read_inputs(["on the command line"], path, None, "text") == [
        "on the command line", "from the file"]


def test_bad_inputs_are_one_line_errors(tmp_path):
    with pytest.raises(SentibenchError, match="nothing to predict"):
        read_inputs([], None, None, "text")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe not utf-8\n")
    with pytest.raises(SentibenchError, match="bad.txt: cannot read"):
        read_inputs([], bad, None, "text")


def test_a_missing_run_directory_is_named(tmp_path, capsys):
    missing = tmp_path / "runs" / "nope"
    assert main(["predict", str(missing), "great film"]) == 2
    err = capsys.readouterr().err
    assert err == f"sentibench predict: error: {missing}: no such run directory\n"
    (tmp_path / "empty").mkdir()
    assert main(["predict", str(tmp_path / "empty"), "great film"]) == 2
    assert "empty: not a sentibench run (no results.json)" in capsys.readouterr().err
