"""``sentibench prepare --dataset files``: CSV, TSV, JSON Lines and Parquet copies of one data
set prepare to the same bytes; labels are numbered in sorted order; given splits are used as
they are and missing ones cut from train; every bad input is one line naming what is wrong."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from sentibench.cli import main
from sentibench.data.splits import SPLIT_FILES, load_split, read_label_names
from tests.helpers import OUTPUTS, cli_error

WORDS = {"neg": ["awful", "boring", "dull", "weak"],
         "neu": ["average", "fine", "okay", "plain"],
         "pos": ["great", "superb", "moving", "lovely"]}
FILLER = ["the", "film", "plot", "actor", "scene", "was", "and", "a", "it", "story"]
# texts that a careless reader or writer of one of the formats would change
TRICKY = ['Says "wow", twice, great', "two\nlines, awful", "Café ☺ naïve, okay", "NA",
          "tab\there", "  leading spaces", "line\u2028separator", "null"]
FORMATS = ("csv", "tsv", "jsonl", "parquet")


def three_classes(per_class: tuple[int, int, int] = (40, 40, 40), seed: int = 0,
                  tag: str = "") -> pd.DataFrame:
    """Distinct texts, three class words among five fillers each; string labels; the first
    rows are TRICKY texts."""
    rng = random.Random(seed)
    rows = []
    for label, count in zip(WORDS, per_class, strict=True):
        for i in range(count):
            words = rng.choices(WORDS[label], k=3) + rng.choices(FILLER, k=5)
            rng.shuffle(words)
            rows.append((f"{tag}{label} {i}: " + " ".join(words) + ".", label))
    rng.shuffle(rows)
    frame = pd.DataFrame(rows, columns=["text", "label"])
    for i, text in enumerate(TRICKY[:len(frame)]):
        frame.loc[i, "text"] = text
    assert frame["text"].is_unique
    return frame


def write(frame: pd.DataFrame, path: Path) -> Path:
    """``frame`` in the format its suffix names, as pandas writes it."""
    kind = path.suffix[1:]
    if kind == "csv":
        frame.to_csv(path, index=False)
    elif kind == "tsv":
        frame.to_csv(path, sep="\t", index=False)
    elif kind == "jsonl":
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
    elif kind == "parquet":
        frame.to_parquet(path, index=False)
    else:
        raise AssertionError(kind)
    return path


def prepare(data_dir: Path, *flags: str) -> int:
    return main(["prepare", "--dataset", "files", *flags, "--data-dir", str(data_dir)])


def prepared(data_dir: Path) -> dict[str, pd.DataFrame]:
    """Each split as (text, label name), through the reading side every run uses."""
    names = read_label_names(data_dir)
    frames = {s: load_split(data_dir, s, num_classes=len(names)) for s in SPLIT_FILES}
    return {s: pd.DataFrame({"text": f["text"], "name": [names[i] for i in f["label"]]})
            for s, f in frames.items()}


def pairs(frame: pd.DataFrame, label: str = "label") -> list[tuple[str, str]]:
    return list(zip(frame["text"], frame[label].astype(str), strict=True))


def output_bytes(data_dir: Path) -> dict[str, bytes]:
    return {name: (data_dir / name).read_bytes() for name in OUTPUTS}


def names_of(data_dir: Path) -> list[str]:
    return json.loads((data_dir / "labels.json").read_text(encoding="utf-8"))["names"]


# --- formats and label names --------------------------------------------------------------

def test_every_format_prepares_to_the_same_bytes(tmp_path, capsys):
    frame = three_classes()
    outputs = {}
    for kind in FORMATS:
        source = write(frame, tmp_path / f"reviews.{kind}")
        assert prepare(tmp_path / kind, "--source", str(source)) == 0, kind
        assert "3 classes from" in capsys.readouterr().out
        outputs[kind] = output_bytes(tmp_path / kind)
    for kind in FORMATS[1:]:
        assert outputs[kind] == outputs["csv"], kind
    assert names_of(tmp_path / "csv") == ["neg", "neu", "pos"]
    parts = prepared(tmp_path / "csv")
    assert {s: len(p) for s, p in parts.items()} == {"train": 84, "validation": 12,
                                                     "test": 24}
    # every input row once, with its own label, the tricky texts unchanged
    assert Counter(p for part in parts.values() for p in pairs(part, "name")) == Counter(
        pairs(frame))
    seen = {t for part in parts.values() for t in part["text"]}
    assert set(TRICKY) <= seen


def test_the_prepared_classes_are_learnable(tmp_path, capsys):
    """Texts keep their labels: bag-of-words learns the three classes (chance is 1/3)."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    source = write(three_classes((60, 60, 60)), tmp_path / "reviews.csv")
    assert prepare(tmp_path / "data", "--source", str(source)) == 0
    train, test = (load_split(tmp_path / "data", s, num_classes=3) for s in ("train", "test"))
    model = make_pipeline(CountVectorizer(), LogisticRegression(max_iter=1000))
    model.fit(train["text"], train["label"])
    assert (model.predict(test["text"]) == test["label"]).mean() >= 0.9


def test_the_seed_orders_the_cut_and_reruns_repeat_it(tmp_path, capsys):
    source = write(three_classes(), tmp_path / "reviews.csv")
    for name, flags in (("a", ()), ("b", ()), ("c", ("--seed", "7"))):
        assert prepare(tmp_path / name, "--source", str(source), *flags) == 0
    assert output_bytes(tmp_path / "a") == output_bytes(tmp_path / "b")
    a, c = prepared(tmp_path / "a"), prepared(tmp_path / "c")
    assert pairs(a["train"], "name") != pairs(c["train"], "name")
    assert Counter(p for part in a.values() for p in pairs(part, "name")) == Counter(
        p for part in c.values() for p in pairs(part, "name"))


@pytest.mark.parametrize("kind", ["csv", "jsonl", "parquet"])
def test_integer_labels_are_named_in_numeric_order(tmp_path, capsys, kind):
    frame = three_classes()
    frame["label"] = frame["label"].map({"neg": 10, "neu": 2, "pos": 3})
    source = write(frame, tmp_path / f"stars.{kind}")
    assert prepare(tmp_path / "data", "--source", str(source)) == 0
    assert names_of(tmp_path / "data") == ["2", "3", "10"]
    for name in SPLIT_FILES.values():  # ids are plain integers, never "2.0" or ""
        ids = pd.read_csv(tmp_path / "data" / name, dtype=str, keep_default_na=False)["label"]
        assert set(ids) == {"0", "1", "2"}, name
    parts = prepared(tmp_path / "data")
    assert Counter(p for part in parts.values() for p in pairs(part, "name")) == Counter(
        pairs(frame))


def test_a_numeric_label_column_is_compared_as_numbers(tmp_path, capsys):
    """1, 01, 1.0 and " 1" are one class (pandas gave "1" and "1.0" two classes)."""
    frame = three_classes()
    spellings = {"neg": ["1", "01", "1.0", " 1"], "neu": ["2", "2.0"], "pos": ["2.5"]}
    frame["label"] = [spellings[lab][i % len(spellings[lab])]
                      for i, lab in enumerate(frame["label"])]
    source = write(frame, tmp_path / "stars.csv")
    assert prepare(tmp_path / "data", "--source", str(source)) == 0
    assert names_of(tmp_path / "data") == ["1", "2", "2.5"]
    counts = Counter(p[1] for part in prepared(tmp_path / "data").values()
                     for p in pairs(part, "name"))
    assert counts == {"1": 40, "2": 40, "2.5": 40}


@pytest.mark.parametrize("kind", ["jsonl", "parquet"])
def test_numbers_and_their_float_twins_are_one_class(tmp_path, capsys, kind):
    frame = three_classes((10, 10, 10))
    frame["label"] = [float(i % 2) if i % 3 else i % 2 for i in range(len(frame))]
    frame["label"] = frame["label"].astype(object)
    source = write(frame, tmp_path / f"mixed.{kind}")
    assert prepare(tmp_path / "data", "--source", str(source)) == 0
    assert names_of(tmp_path / "data") == ["0", "1"]


# --- given and cut splits -----------------------------------------------------------------

def test_given_splits_are_used_as_they_are(tmp_path, capsys):
    frames = {"train": three_classes((20, 20, 20), seed=1, tag="tr "),
              "validation": three_classes((5, 5, 5), seed=2, tag="va "),
              "test": three_classes((6, 6, 6), seed=3, tag="te ")}
    flags = [x for split, frame in frames.items()
             for x in (f"--{split}", str(write(frame, tmp_path / f"{split}.tsv")))]
    assert prepare(tmp_path / "data", *flags) == 0
    parts = prepared(tmp_path / "data")
    for split, frame in frames.items():
        assert pairs(parts[split], "name") == pairs(frame), split
    manifest = json.loads((tmp_path / "data" / "manifest.json").read_text())
    assert manifest["dataset"] == "files"
    assert manifest["rows"] == {"train": 60, "validation": 15, "test": 18}
    assert manifest["inputs"] == {s: str(tmp_path / f"{s}.tsv") for s in frames}


def test_a_missing_test_split_is_cut_from_train(tmp_path, capsys):
    train = three_classes((34, 33, 33), seed=1, tag="tr ")  # 100 rows
    validation = three_classes((5, 5, 5), seed=2, tag="va ")
    assert prepare(tmp_path / "data", "--train", str(write(train, tmp_path / "train.csv")),
                   "--validation", str(write(validation, tmp_path / "val.jsonl"))) == 0
    out = capsys.readouterr().out
    parts = prepared(tmp_path / "data")
    # test takes its share of train + test: 0.2 / 0.9 of 100 rows
    assert {s: len(p) for s, p in parts.items()} == {"train": 77, "validation": 15,
                                                     "test": 23}
    assert pairs(parts["validation"], "name") == pairs(validation)
    assert Counter(pairs(parts["train"], "name") + pairs(parts["test"], "name")) == Counter(
        pairs(train))
    lines = [line.split()[0] for line in out.splitlines()[1:5]]
    assert lines == ["split", "train", "validation", "test"]


def test_a_missing_validation_split_is_cut_from_train(tmp_path, capsys):
    train = three_classes((30, 25, 25), seed=1, tag="tr ")  # 80 rows: 70 / 10 of them
    test = three_classes((4, 4, 4), seed=3, tag="te ")
    assert prepare(tmp_path / "data", "--train", str(write(train, tmp_path / "train.csv")),
                   "--test", str(write(test, tmp_path / "test.csv"))) == 0
    parts = prepared(tmp_path / "data")
    assert {s: len(p) for s, p in parts.items()} == {"train": 70, "validation": 10,
                                                     "test": 12}
    assert pairs(parts["test"], "name") == pairs(test)
    assert Counter(pairs(parts["train"], "name") + pairs(parts["validation"], "name")) == (
        Counter(pairs(train)))
    manifest = json.loads((tmp_path / "data" / "manifest.json").read_text())
    assert list(manifest["rows"]) == ["train", "validation", "test"]


def test_a_lone_train_file_is_cut_in_three(tmp_path, capsys):
    train = three_classes((20, 20, 20))
    assert prepare(tmp_path / "data", "--train", str(write(train, tmp_path / "t.csv")),
                   "--split-fractions", "0.5,0.25,0.25") == 0
    parts = prepared(tmp_path / "data")
    assert {s: len(p) for s, p in parts.items()} == {"train": 30, "validation": 15,
                                                     "test": 15}


def test_stratify_keeps_each_class_share_in_every_split(tmp_path, capsys):
    frame = three_classes((50, 30, 20))
    source = str(write(frame, tmp_path / "reviews.csv"))
    assert prepare(tmp_path / "data", "--source", source, "--stratify") == 0
    parts = prepared(tmp_path / "data")
    counts = {s: p["name"].value_counts().to_dict() for s, p in parts.items()}
    assert counts == {"train": {"neg": 35, "neu": 21, "pos": 14},
                      "validation": {"neg": 5, "neu": 3, "pos": 2},
                      "test": {"neg": 10, "neu": 6, "pos": 4}}
    assert Counter(p for part in parts.values() for p in pairs(part, "name")) == Counter(
        pairs(frame))
    # each split is shuffled, not grouped by class
    assert parts["train"]["name"].tolist() != sorted(parts["train"]["name"])


# --- columns ------------------------------------------------------------------------------

def test_custom_column_names(tmp_path, capsys):
    frame = three_classes()
    plain = write(frame, tmp_path / "plain.csv")
    custom = frame.rename(columns={"text": "review", "label": "sentiment"})
    custom.insert(0, "id", range(len(custom)))
    renamed = write(custom, tmp_path / "custom.parquet")
    assert prepare(tmp_path / "plain", "--source", str(plain)) == 0
    assert prepare(tmp_path / "custom", "--source", str(renamed), "--text-column", "review",
                   "--label-column", "sentiment") == 0
    assert output_bytes(tmp_path / "custom") == output_bytes(tmp_path / "plain")


@pytest.mark.parametrize(("flag", "value"), [("--text-column", "body"),
                                             ("--label-column", "stars")])
def test_an_unknown_column_names_the_existing_ones(tmp_path, capsys, flag, value):
    custom = three_classes().rename(columns={"text": "review", "label": "sentiment"})
    source = write(custom, tmp_path / "custom.csv")
    other = {"--text-column": ("--label-column", "sentiment"),
             "--label-column": ("--text-column", "review")}[flag]
    err = cli_error(capsys, ["prepare", "--dataset", "files", "--source", str(source),
                             flag, value, *other, "--data-dir", str(tmp_path / "data")])
    assert err == (f"sentibench prepare: error: {source}: no column {value!r} ({flag}); "
                   "columns: review, sentiment\n")
    assert not (tmp_path / "data").exists()


def test_drop_empty_skips_empty_texts(tmp_path, capsys):
    frame = three_classes((10, 10, 10))
    frame.loc[2, "text"] = "   "
    frame.loc[5, "text"], frame.loc[5, "label"] = "", ""  # nothing at all: skipped too
    source = write(frame, tmp_path / "reviews.csv")
    assert prepare(tmp_path / "data", "--source", source.as_posix(), "--drop-empty") == 0
    parts = prepared(tmp_path / "data")
    assert sum(len(p) for p in parts.values()) == 28
    kept = frame.drop(index=[2, 5])
    assert Counter(p for part in parts.values() for p in pairs(part, "name")) == Counter(
        pairs(kept))


# --- bad inputs: one line, exit status 2, nothing written ----------------------------------

def _csv(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


GOOD_ROWS = "".join(f"{w} {i},{lab}\n" for i in range(5)
                    for w, lab in (("great", "pos"), ("awful", "neg")))


def bad_inputs(tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    """case: (flags, the error after "sentibench prepare: error: ")."""
    good = _csv(tmp_path / "good.csv", "text,label\n" + GOOD_ROWS)
    xlsx = _csv(tmp_path / "reviews.xlsx", b"PK\x03\x04not really a workbook")
    no_label = _csv(tmp_path / "stars.csv", "text,stars\ngreat,5\nawful,1\n")
    empty_text = _csv(tmp_path / "gap.csv", "text,label\nfine,pos\nbad,neg\n  ,pos\nok,neg\n")
    latin1 = _csv(tmp_path / "latin1.csv", b"text,label\na,pos\nb,neg\nc,pos\n"
                  + "caf\xe9,neg\n".encode("latin-1"))
    zero = _csv(tmp_path / "zero.csv", b"")
    one_class = _csv(tmp_path / "one.csv", "text,label\na,pos\nb,pos\nc,pos\n")
    val_neu = _csv(tmp_path / "val.csv", "text,label\nx,pos\ny,neu\n")
    test_neu = _csv(tmp_path / "test.csv", "text,label\nx,pos\nz,neu\n")
    missing = tmp_path / "nowhere" / "reviews.csv"
    frac = "three positive fractions that sum to 1 (train, validation, test)"
    return {
        "missing file": (["--source", str(missing)], f"{missing}: not found"),
        "unknown extension": (["--source", str(xlsx)], f"{xlsx}: unknown file type '.xlsx'; "
                                                       "use one of .csv, .tsv, .jsonl, .parquet"),
        "missing column": (["--source", str(no_label)],
                           f"{no_label}: no column 'label' (--label-column); columns: text, "
                           "stars"),
        "empty text": (["--source", str(empty_text)],
                       f"{empty_text}: row 3: empty text (--drop-empty skips such rows)"),
        "not utf-8": (["--source", str(latin1)],
                      f"{latin1}: line 5: not valid UTF-8 (byte 0xe9)"),
        "one class in train": (["--train", str(one_class), "--validation", str(good),
                                "--test", str(good)],
                               f"{one_class}, {good}, {good}: the training split has only "
                               "the class 'pos'; a classifier needs two"),
        "label unseen in validation": (["--train", str(good), "--validation", str(val_neu),
                                        "--test", str(good)],
                                       f"{good}, {val_neu}, {good}: the validation split has "
                                       "label 'neu', which never occurs in train"),
        "label unseen in test": (["--train", str(good), "--test", str(test_neu)],
                                 f"{good}, {test_neu}: the test split has label 'neu', which "
                                 "never occurs in train"),
        "fractions sum": (["--source", str(good), "--split-fractions", "0.7,0.2,0.2"],
                          f"--split-fractions '0.7,0.2,0.2': {frac}"),
        "zero share": (["--source", str(good), "--split-fractions", "0.9,0.1,0"],
                       f"--split-fractions '0.9,0.1,0': {frac}"),
        "two fractions": (["--source", str(good), "--split-fractions", "0.8,0.2"],
                          f"--split-fractions '0.8,0.2': {frac}"),
        "fractions not numbers": (["--source", str(good), "--split-fractions", "a,b,c"],
                                  "--split-fractions 'a,b,c': expected three numbers such as "
                                  "0.7,0.1,0.2"),
        "empty file": (["--source", str(zero)], f"{zero}: empty file"),
        "source and train": (["--source", str(good), "--train", str(good)],
                             "give either --source FILE (cut into three splits) or --train "
                             "FILE [--validation FILE] [--test FILE], not both"),
        "no input": ([], "--dataset files needs --train FILE (and optionally --validation / "
                         "--test) or --source FILE"),
    }


BAD_CASES = ("missing file", "unknown extension", "missing column", "empty text",
             "not utf-8", "one class in train", "label unseen in validation",
             "label unseen in test", "fractions sum", "zero share", "two fractions",
             "fractions not numbers", "empty file", "source and train", "no input")


@pytest.mark.parametrize("case", BAD_CASES)
def test_a_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, case):
    cases = bad_inputs(tmp_path)
    assert tuple(cases) == BAD_CASES
    flags, message = cases[case]
    data_dir = tmp_path / "data"
    err = cli_error(capsys, ["prepare", "--dataset", "files", *flags,
                             "--data-dir", str(data_dir)])
    assert err == f"sentibench prepare: error: {message}\n"
    assert capsys.readouterr().out == ""
    assert not data_dir.exists()


def test_the_good_file_of_the_bad_cases_prepares(tmp_path, capsys):
    """The bad cases fail for their one defect: the same flags on good files succeed."""
    flags, _ = bad_inputs(tmp_path)["fractions sum"]
    assert prepare(tmp_path / "data", *flags[:2]) == 0
    assert names_of(tmp_path / "data") == ["neg", "pos"]
    assert sum(len(p) for p in prepared(tmp_path / "data").values()) == 10


# --- inputs that pandas would have read wrongly: one line naming the place ----------------

def _error(tmp_path: Path, capsys, source: Path, *flags: str) -> str:
    data_dir = tmp_path / "data"
    err = cli_error(capsys, ["prepare", "--dataset", "files", "--source", str(source),
                             *flags, "--data-dir", str(data_dir)])
    assert not data_dir.exists()
    return err.removeprefix("sentibench prepare: error: ").rstrip("\n")


def test_a_row_with_an_extra_field_names_its_line(tmp_path, capsys):
    source = _csv(tmp_path / "r.csv", "text,label\ngreat 0,pos\n"
                  + "great, really great,pos\n" + GOOD_ROWS)
    assert _error(tmp_path, capsys, source) == (
        f"{source}: line 3: 3 fields where the header has 2 (a comma inside a text must be "
        "quoted)")


def test_an_unterminated_quote_names_the_line_it_opens(tmp_path, capsys):
    source = _csv(tmp_path / "q.csv", "text,label\ngood,pos\n\"never closed,neg\nx,pos\n")
    assert _error(tmp_path, capsys, source) == (
        f"{source}: line 3: unexpected end of data (a quote opened here is never closed)")


def test_a_header_naming_a_column_twice_is_refused(tmp_path, capsys):
    source = _csv(tmp_path / "h.csv", "text,label,text\na,pos,b\n")
    assert _error(tmp_path, capsys, source) == f"{source}: the header names column 'text' twice"


@pytest.mark.parametrize("value", [["a", "list"], {"an": "object"}, 3.5])
def test_a_text_that_is_not_a_string_names_its_row(tmp_path, capsys, value):
    rows = [{"text": "fine words", "label": "pos"}, {"text": "bad", "label": "neg"},
            {"text": value, "label": "pos"}]
    source = tmp_path / "t.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    kind = type(value).__name__
    assert _error(tmp_path, capsys, source) == (
        f"{source}: row 3: the text is a {kind} ({value!r}), not a string")


def test_a_parquet_list_column_is_not_taken_as_text(tmp_path, capsys):
    source = write(pd.DataFrame({"text": [["a", "b"], ["c"]], "label": ["x", "y"]}),
                   tmp_path / "l.parquet")
    assert _error(tmp_path, capsys, source).startswith(
        f"{source}: row 1: the text is a ")


def test_a_json_lines_array_names_its_line(tmp_path, capsys):
    source = tmp_path / "a.jsonl"
    source.write_text('{"text": "ok", "label": "pos"}\n\n["text", "neg"]\n')
    assert _error(tmp_path, capsys, source) == (
        f"{source}: line 3: a JSON list, not an object of fields")


@pytest.mark.parametrize("spelled", ["NaN", "nan", "NA", "null", "None", "N/A"])
def test_missing_value_spellings_are_missing_labels(tmp_path, capsys, spelled):
    source = _csv(tmp_path / "m.csv", "text,label\n" + GOOD_ROWS + f"odd one,{spelled}\n")
    assert _error(tmp_path, capsys, source) == (
        f"{source}: row 11: no label ({spelled!r} means a missing value) (--drop-empty skips "
        "such rows)")
    assert prepare(tmp_path / "data", "--source", str(source), "--drop-empty") == 0
    assert names_of(tmp_path / "data") == ["neg", "pos"]
    assert sum(len(p) for p in prepared(tmp_path / "data").values()) == 10
