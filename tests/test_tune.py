"""``sentibench tune``: studies on the real SMS Spam Collection (logistic regression) and a
tiny GPT-2, through the real CLI; the study's record is checked against the trial run
directories it made."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest

from sentibench.bench.tune import JOURNAL_FILE, SUMMARY_FILE, _pruner
from sentibench.cli import main
from sentibench.run.results import read_results
from tests.helpers import cli_error, synthetic_csvs


def _cli(*argv: str) -> list[str]:
    return [sys.executable, "-m", "sentibench", *argv]


@pytest.fixture(scope="module")
def spam(sms_spam_file, tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("tune") / "sms"
    assert main(["prepare", "--dataset", "sms-spam", "--source", str(sms_spam_file),
                 "--data-dir", str(data)]) == 0
    return data


def _tune(data: Path, study: Path, *extra: str) -> list[str]:
    return ["tune", "--model", "logreg-tfidf", "--preset", "spam", "--data-dir", str(data),
            "--study-dir", str(study), *extra]


def _summary(study: Path) -> dict:
    return json.loads((study / SUMMARY_FILE).read_text())


def _stored(study: Path) -> list:
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(study / JOURNAL_FILE)))
    (summary,) = optuna.get_all_study_summaries(storage)
    return optuna.load_study(study_name=summary.study_name, storage=storage).trials


def test_the_best_trial_is_the_best_trial_directory(spam, tmp_path, capsys):
    study = tmp_path / "study"
    assert main(_tune(spam, study, "--trials", "4")) == 0
    summary = _summary(study)
    assert [t["state"] for t in summary["trials"]] == ["COMPLETE"] * 4
    by_dir = {t["run_dir"]: read_results(study / t["run_dir"]).accuracy["validation"]
              for t in summary["trials"]}
    assert {t["run_dir"]: t["value"] for t in summary["trials"]} == by_dir
    assert summary["best"]["value"] == max(by_dir.values())
    assert by_dir[summary["best"]["run_dir"]] == max(by_dir.values())
    assert summary["space"] == ["C=log:0.01:100", "ngram_max=int:1:3"]
    again = capsys.readouterr().out
    assert f"best: trial {summary['best']['number']}" in again
    assert main(_tune(spam, study, "--trials", "4")) == 0  # a finished study: nothing more
    assert len(_summary(study)["trials"]) == 4


def test_test_labels_take_no_part_in_any_decision(spam, tmp_path, capsys):
    shuffled = Path(shutil.copytree(spam, tmp_path / "shuffled"))
    test = pd.read_csv(shuffled / "test.csv")
    test["label"] = test["label"].sample(frac=1, random_state=7).to_numpy()
    test.to_csv(shuffled / "test.csv", index=False)
    assert main(_tune(spam, tmp_path / "a", "--trials", "3")) == 0
    assert main(_tune(shuffled, tmp_path / "b", "--trials", "3")) == 0
    a, b = _summary(tmp_path / "a"), _summary(tmp_path / "b")
    assert [(t["params"], t["value"]) for t in a["trials"]] == \
        [(t["params"], t["value"]) for t in b["trials"]]
    assert a["best"] == b["best"]
    best = a["best"]["run_dir"]
    assert read_results(tmp_path / "a" / best).accuracy["test"] != \
        read_results(tmp_path / "b" / best).accuracy["test"]  # the test labels did differ


@pytest.mark.parametrize("space, message", [
    ("learning_rate=log:1e-6:1e-4", "--space 'learning_rate=log:1e-6:1e-4': 'learning_rate' "
                                    "is not a setting of this row; settings: C, "),
    ("C=normal:1:2", "--space 'C=normal:1:2': kind 'normal' is not one of log, float, int, "
                     "choice"),
    ("C=log:10:1", "--space 'C=log:10:1': need LOW < HIGH and LOW > 0 for log"),
    ("C=log:0:1", "--space 'C=log:0:1': --C must be positive, got 0.0"),
    ("ngram_max=float:1:3", "--space 'ngram_max=float:1:3': ngram_max is an integer; use int"),
    ("ngram_max=choice:2", "--space 'ngram_max=choice:2': a choice needs two or more values"),
    ("C", "--space 'C': write NAME=KIND:..., e.g. learning_rate=log:1e-6:1e-4 or "
          "batch_size=choice:8|16"),
    ("C=log:1:2,C=log:1:3", "--space names 'C' twice"),
])
def test_a_bad_space_is_one_line_before_anything_runs(spam, tmp_path, capsys, space, message):
    err = cli_error(capsys, _tune(spam, tmp_path / "study", "--space", space))
    assert err.startswith(f"sentibench tune: error: {message}"), err
    assert not (tmp_path / "study").exists()


def test_two_workers_share_one_study_and_its_trial_budget(spam, tmp_path):
    study = tmp_path / "study"
    argv = _cli(*_tune(spam, study, "--trials", "6"))
    workers = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(2)]
    outs = [w.communicate(timeout=600) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], [o[1][-2000:] for o in outs]
    trials = _stored(study)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 6
    assert all(t.user_attrs.get("over_budget") for t in trials if t not in complete)
    assert {t.user_attrs["worker"] for t in complete} == \
        {f"{os.uname().nodename}:{w.pid}" for w in workers}  # both did work
    assert sorted(p.name for p in study.glob("trial-*")) == sorted(
        t.user_attrs["run_dir"] for t in complete)


def test_the_pruner_stops_a_trial_that_reports_a_bad_value():
    study = optuna.create_study(direction="maximize",
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=3))
    for value in (0.9, 0.92, 0.91):
        trial = study.ask()
        trial.report(value, 10)
        study.tell(trial, value)
    good, bad = study.ask(), study.ask()
    _pruner(good, "val_accuracy", optuna)(10, 0.3, 0.95)  # better than the median: goes on
    with pytest.raises(optuna.TrialPruned, match="pruned at step 10"):
        _pruner(bad, "val_accuracy", optuna)(10, 0.3, 0.5)
    with pytest.raises(optuna.TrialPruned):  # val_loss: the loss is what is judged
        lossy = optuna.create_study(direction="minimize",
                                    pruner=optuna.pruners.MedianPruner(n_startup_trials=0))
        first = lossy.ask()
        first.report(0.1, 5)
        lossy.tell(first, 0.1)
        _pruner(lossy.ask(), "val_loss", optuna)(5, 2.0, 0.99)


@pytest.mark.slow
def test_an_interrupted_study_continues_without_repeating_a_trial(tiny_gpt2_dir, tmp_path):
    data = synthetic_csvs(tmp_path / "data", rows=(200, 40, 40))
    study = tmp_path / "study"
    argv = _cli("tune", "--model", str(tiny_gpt2_dir), "--data-dir", str(data), "--study-dir",
                str(study), "--trials", "3", "--device", "cpu",
                "--space", "learning_rate=log:1e-4:1e-2,num_epochs=int:1:2")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith("[trial 1] {"):
            time.sleep(1.0)  # inside trial 1's training
            proc.send_signal(signal.SIGINT)
            break
    proc.stdout.read()
    assert proc.wait(timeout=300) == 130, "".join(seen)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    trials = _stored(study)
    states = [t.state.name for t in trials]
    assert states.count("COMPLETE") == 3 and states[1] == "FAIL"
    assert trials[1].user_attrs["interrupted"] is True
    assert "[trial 0]" not in done.stdout  # trial 0 finished before: not run again
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert [t.number for t in complete] == [0, 2, 3]


def test_a_trial_whose_worker_died_is_failed_and_not_counted(spam, tmp_path):
    study = tmp_path / "study"
    assert subprocess.run(_cli(*_tune(spam, study, "--trials", "1")), capture_output=True,
                          timeout=300).returncode == 0
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(study / JOURNAL_FILE)))
    (name,) = [s.study_name for s in optuna.get_all_study_summaries(storage)]
    left = optuna.load_study(study_name=name, storage=storage).ask()  # "killed" mid-trial
    left.set_user_attr("worker", f"{os.uname().nodename}:{gone.pid}")
    done = subprocess.run(_cli(*_tune(spam, study, "--trials", "2")), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"trial 1: its worker {os.uname().nodename}:{gone.pid} is gone; marked failed" \
        in done.stderr
    assert [t.state.name for t in _stored(study)] == ["COMPLETE", "FAIL", "COMPLETE"]


def test_workers_on_a_shared_postgresql_storage_share_the_budget(spam, tmp_path, postgres_url):
    """Two workers as on two machines: their own study directories, one --storage URL on a
    real PostgreSQL server, on an empty database (they race to create the tables)."""
    workers = [subprocess.Popen(
        _cli(*_tune(spam, tmp_path / f"machine{i}", "--trials", "6", "--storage",
                    postgres_url)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(2)]
    outs = [w.communicate(timeout=600) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], [o[1][-2000:] for o in outs]
    trials = optuna.load_study(study_name="sentibench-logreg-tfidf", storage=postgres_url).trials
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 6
    assert all(t.user_attrs.get("over_budget") for t in trials if t not in complete)
    made = sorted(p.name for i in range(2) for p in (tmp_path / f"machine{i}").glob("trial-*"))
    assert made == sorted(t.user_attrs["run_dir"] for t in complete)


def test_bench_tune_tunes_every_row_the_same_way_and_keeps_the_untuned_twin(spam, tmp_path,
                                                                            capsys):
    bench = tmp_path / "bench"
    argv = ["bench", "--preset", "spam", "--models", "dummy,logreg-tfidf,logreg", "--tune", "3",
            "--data-dir", str(spam), "--out", str(bench)]
    assert main(argv) == 0
    runs = sorted(p.name for p in bench.iterdir() if (p / "results.json").is_file())
    assert runs == ["dummy", "logreg", "logreg-default", "logreg-tfidf", "logreg-tfidf-default"]
    assert sorted(p.name for p in (bench / "tuning").iterdir()) == ["logreg", "logreg-tfidf"]
    for row in ("logreg", "logreg-tfidf"):
        summary = _summary(bench / "tuning" / row)
        assert len(summary["trials"]) == 3  # the same budget for every row
        best = summary["best"]
        assert read_results(bench / row).accuracy["validation"] == best["value"]
        clf = repr(read_results(bench / row).config["pipeline"]["clf"])
        assert f"C={best['params']['C']!r}" in clf or f"C={best['params']['C']}" in clf
    markdown = (bench / "results.md").read_text()
    tuning = markdown[markdown.index("## Tuning"):markdown.index("## Models")]
    assert "| logreg-tfidf (tuned) | C=" in tuning and "| logreg-tfidf-default | " in tuning
    assert "tuning" not in [line.split(" | ")[0].strip("| ") for line in
                            markdown.splitlines() if line.startswith("| ")]
    capsys.readouterr()
    assert main(argv) == 0  # the same command again: nothing trained, no new trial
    again = capsys.readouterr().out
    assert again.count("already completed") == 5 and "[trial" not in again
    assert len(_summary(bench / "tuning" / "logreg")["trials"]) == 3


def test_a_rows_own_space_from_set_is_what_its_study_searches(spam, tmp_path):
    """``--set ROW.tune=SPACE``: that row's study searches those settings only (in their
    bounds), the other row its family's default; bench.json keeps the space."""
    bench = tmp_path / "bench"
    assert main(["bench", "--preset", "spam", "--models", "logreg,logreg-tfidf", "--tune", "3",
                 "--set", "logreg-tfidf.tune=C=log:2:8", "--data-dir", str(spam),
                 "--out", str(bench)]) == 0
    own = _summary(bench / "tuning" / "logreg-tfidf")["trials"]
    assert {k for t in own for k in t["params"]} == {"C"}
    assert all(2 <= t["params"]["C"] <= 8 for t in own)
    default = _summary(bench / "tuning" / "logreg")["trials"]
    assert {k for t in default for k in t["params"]} > {"C"}
    plan = json.loads((bench / "bench.json").read_text())
    assert [e.get("tune") for e in plan["experiments"]] == [None, "C=log:2:8"]


def test_a_bad_row_space_is_one_line_before_anything_runs(spam, tmp_path, capsys):
    out = tmp_path / "bench"
    message = cli_error(capsys, ["bench", "--preset", "spam", "--models", "logreg-tfidf",
                                 "--tune", "2", "--set", "logreg-tfidf.tune=num_epochs=int:1:3",
                                 "--data-dir", str(spam), "--out", str(out)])
    assert message.startswith("sentibench bench: error: logreg-tfidf.tune: --space ")
    assert "num_epochs" in message and not out.exists()


def test_a_preset_rows_space_reaches_its_experiment(monkeypatch):
    from sentibench.bench import plan as bench_plan
    from sentibench.bench.presets import PRESETS, Preset, PresetRow

    preset = Preset("a row with its own space", (PresetRow("logreg", tune="C=log:0.5:2"),))
    monkeypatch.setitem(PRESETS, "own-space", preset)
    (exp,) = bench_plan.plan("own-space", None, {})
    assert exp.tune == "C=log:0.5:2"
    (over,) = bench_plan.plan("own-space", None, {"logreg": {"tune": "C=log:1:4"}})
    assert over.tune == "C=log:1:4"  # --set wins over the preset
