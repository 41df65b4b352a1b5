"""Reading prepared splits (sentibench.data.splits.load_split): types, row limits, and
errors that name the file and row."""

from __future__ import annotations

import pytest

from sentibench.core.errors import SentibenchError
from sentibench.data.splits import load_split

BAD_CSVS = {
    "bad label": ("text,label\ngood,1\nmeh,2\n", "row 2: label '2' is not 0 or 1"),
    "label after a multi-line text": ('text,label\n"a\nb",1\nc,yes\n',
                                      "row 2: label 'yes' is not 0 or 1"),
    "empty label": ("text,label\ngood,\n", "row 1: label '' is not 0 or 1"),
    "empty text": ('text,label\ngood,1\n"",0\n', "row 2: empty text"),
    "blank text": ("text,label\ngood,1\nfine,0\n   ,1\n", "row 3: empty text"),
    "missing column": ("review,label\ngood,1\n", "missing column(s) text"),
    "no columns": ("", "not a valid split CSV"),
    "bad quoting": ('text,label\n"unterminated,1\n', "not a valid split CSV"),
}


@pytest.mark.parametrize("case", list(BAD_CSVS))
def test_load_split_errors_name_the_file_and_row(case, tmp_path):
    content, message = BAD_CSVS[case]
    (tmp_path / "train.csv").write_text(content, encoding="utf-8")
    with pytest.raises(SentibenchError) as info:
        load_split(tmp_path, "train")
    assert str(info.value).startswith(f"{tmp_path / 'train.csv'}: ")
    assert message in str(info.value)


def test_load_split_reads_types_limits_and_refuses_missing_or_binary(tmp_path):
    (tmp_path / "test.csv").write_text('text,label,extra\n"x, ""y""",1,a\nz,0,b\nw,1,c\n',
                                       encoding="utf-8")
    frame = load_split(tmp_path, "test", max_rows=2)
    assert frame.to_dict("list") == {"text": ['x, "y"', "z"], "label": [1, 0]}
    assert str(frame["label"].dtype) == "int64"
    with pytest.raises(SentibenchError, match="validation.csv: not found; run `sentibench "):
        load_split(tmp_path, "validation")
    with pytest.raises(SentibenchError, match="unknown split 'dev'"):
        load_split(tmp_path, "dev")
    (tmp_path / "train.csv").write_bytes(b"text,label\n\xff\xfe,1\n")
    with pytest.raises(SentibenchError, match="train.csv: not a valid split CSV"):
        load_split(tmp_path, "train")
