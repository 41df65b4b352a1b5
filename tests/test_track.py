"""--report-to: TensorBoard event files and MLflow runs, read back with the trackers' own
readers; a real ``mlflow server`` (SQLite backend, a free local port) for MLflow; a port
with nothing listening for a tracker that is down. No tracker is mocked."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from sentibench.bench.plan import plan, row_name
from sentibench.cli import main
from sentibench.core.errors import SentibenchError
from sentibench.run.results import read_results
from tests.helpers import cli_error, synthetic_csvs

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _events(logdir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of an event directory, as TensorBoard's own reader gives it back."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    reader = EventAccumulator(str(logdir), size_guidance={"scalars": 0})
    reader.Reload()
    return {tag: [(e.step, e.value) for e in reader.Scalars(tag)]
            for tag in reader.Tags()["scalars"]}


def f32(value: float) -> float:
    """A number as TensorBoard stores a scalar: a 32-bit float."""
    return float(np.float32(value))


def _series(steps: list[int], values: list[float]) -> list[tuple[int, float]]:
    return [(step, f32(value)) for step, value in zip(steps, values, strict=True)]


def _wall_times(logdir: Path, tag: str) -> list[float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    reader = EventAccumulator(str(logdir), size_guidance={"scalars": 0})
    reader.Reload()
    return [e.wall_time for e in reader.Scalars(tag)]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return synthetic_csvs(tmp_path_factory.mktemp("track") / "data", rows=(160, 40, 40))


def _logreg(data: Path, out: Path, *extra: str) -> list[str]:
    return ["train-logreg", "--data-dir", str(data), "--out", str(out), *extra]


# --- the option ----------------------------------------------------------------------------

def test_an_unknown_tracker_is_one_line_naming_the_choices(data, tmp_path, capsys):
    err = cli_error(capsys, _logreg(data, tmp_path / "run", "--report-to", "tensorboard,wandb"))
    assert "--report-to: unknown tracker 'wandb'; choose from tensorboard, mlflow" in err
    assert not (tmp_path / "run").exists()


def test_without_the_package_the_flag_names_the_extra(data, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if not installed: not importable
    err = cli_error(capsys, _logreg(data, tmp_path / "run", "--report-to", "mlflow"))
    assert 'needs mlflow: pip install "sentibench[track]"' in err


def test_bench_set_takes_the_tracking_keys_and_checks_them_with_the_plan():
    (exp,) = plan("quick", ["logreg"], {"logreg": {"report_to": "tensorboard"}})
    assert exp.settings["report_to"] == "tensorboard"
    with pytest.raises(SentibenchError, match="bench row logreg: --report-to: unknown tracker"):
        plan("quick", ["logreg"], {"logreg": {"report_to": "neptune"}})


def test_nothing_is_tracked_or_imported_unless_asked(data, tmp_path):
    out = tmp_path / "run"
    code = (f"import sys; from sentibench.cli import main; "
            f"assert main({_logreg(data, out)!r}) == 0; "
            f"print(sorted(m for m in ('mlflow', 'tensorboard') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep
                               + str(ROOT), "MLFLOW_TRACKING_URI": "http://127.0.0.1:9"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == []  # no tensorboard, mlruns
    assert not (tmp_path / "mlruns").exists()


# --- TensorBoard ---------------------------------------------------------------------------

def test_tensorboard_final_figures_are_the_results_with_their_intervals(data, tmp_path):
    out, logs = tmp_path / "run", tmp_path / "logs"
    assert main(_logreg(data, out, "--report-to", "tensorboard", "--logging-dir",
                        str(logs))) == 0
    result = read_results(out)
    events = _events(logs)
    for split, accuracy in result.accuracy.items():
        assert events[f"final/{split}_accuracy"] == [(0, f32(accuracy))]
        (_, low), (_, high) = events[f"final/{split}_accuracy_low"][0], \
            events[f"final/{split}_accuracy_high"][0]
        assert low <= f32(accuracy) <= high and low < high
        assert events[f"final/{split}_macro_f1"] == [(0, f32(result.metrics[split]["macro_f1"]))]
    assert not (out / "tensorboard").exists()  # --logging-dir took them
    assert main(_logreg(data, out, "--overwrite", "--report-to", "tensorboard",
                        "--logging-dir", str(logs))) == 0
    assert len(list(logs.iterdir())) == 1  # sent again: replaced, not doubled
    assert _events(logs)["final/test_accuracy"] == [(0, f32(read_results(out).accuracy["test"]))]


@pytest.mark.slow
def test_tensorboard_scalars_equal_the_history_value_for_value(data, tiny_gpt2_dir, tmp_path):
    """A bench row (``eval_freq`` is a --set key), so its events are in its run directory."""
    gpt, bench = str(tiny_gpt2_dir), tmp_path / "bench"
    assert main(["bench", "--models", gpt, "--data-dir", str(data), "--out", str(bench),
                 "--device", "cpu", "--report-to", "tensorboard"] + [
        arg for key, value in (("num_epochs", 2), ("learning_rate", 2e-3), ("eval_freq", 5),
                               ("eval_every", 10), ("trainable_layers", "all"))
        for arg in ("--set", f"{gpt}.{key}={value}")]) == 0
    out = bench / row_name(gpt)
    history, pace = read_results(out).history, read_results(out).pace
    events = _events(out / "tensorboard")
    steps = history["steps"]
    assert len(steps) >= 6 and len(history["eval_steps"]) >= 3
    for key, tag in (("train_loss", "train/loss"), ("val_loss", "validation/loss"),
                     ("learning_rate", "train/learning_rate"),
                     ("examples_seen", "train/examples_seen")):
        assert events[tag] == _series(steps, history[key]), tag
    assert pace["steps"] == steps and all(rate > 0 for rate in pace["tokens_per_second"])
    assert events["train/tokens_per_second"] == _series(steps, pace["tokens_per_second"])
    assert events["eval/validation_accuracy"] == _series(history["eval_steps"],
                                                         history["eval_val_accuracy"])
    assert events["eval/validation_loss"] == _series(history["eval_steps"],
                                                     history["eval_val_loss"])
    epochs = history["epoch_train_accuracy"]
    assert events["epoch/train_accuracy"] == _series(list(range(1, len(epochs) + 1)), epochs)
    last = max(steps + history["eval_steps"])
    assert events["final/test_accuracy"] == [(last, f32(read_results(out).accuracy["test"]))]
    assert not any(name.startswith("tensorboard") for name in read_results(out).files)
    assert main(["predict", str(out), "a great film"]) == 0  # its model files still verify
    walls = _wall_times(out / "tensorboard", "train/loss")  # written as training went
    assert walls == sorted(walls) and walls[0] < walls[-1]
    assert len(list((out / "tensorboard").iterdir())) == 1


@pytest.mark.slow
def test_tensorboards_own_server_shows_the_scalars(data, tmp_path):
    """The scalars reach TensorBoard's page through its default (fast) loader: a format
    only the event-file reader understands would pass the tests above and show nothing."""
    out = tmp_path / "run"
    assert main(_logreg(data, out, "--report-to", "tensorboard")) == 0
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", str(out),
                             "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}/data/plugin/scalars"
    try:
        deadline, tags = time.monotonic() + 180, {}
        while "final/test_accuracy" not in tags.get("tensorboard", {}):
            assert proc.poll() is None and time.monotonic() < deadline, tags
            time.sleep(1)
            try:
                with urllib.request.urlopen(f"{url}/tags", timeout=5) as reply:
                    tags = json.loads(reply.read())
            except OSError:
                continue
        query = f"{url}/scalars?run=tensorboard&tag=final/test_accuracy"
        with urllib.request.urlopen(query, timeout=5) as reply:
            (_, step, value), = json.loads(reply.read())
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    assert (step, value) == (0, f32(read_results(out).accuracy["test"]))


# --- a tracker that is down ------------------------------------------------------------------

def _warnings(err: str) -> list[str]:
    return [line for line in err.splitlines() if "warning" in line]


def test_a_refused_connection_leaves_the_run_complete_with_one_warning(data, tmp_path, capsys):
    port = _free_port()  # nothing listens there
    out = tmp_path / "run"
    began = time.monotonic()
    assert main(_logreg(data, out, "--report-to", "mlflow,tensorboard", "--mlflow-uri",
                        f"http://127.0.0.1:{port}")) == 0
    took = time.monotonic() - began
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    (line,) = _warnings(err)
    assert line.startswith(f"sentibench: warning: mlflow (http://127.0.0.1:{port}) failed: "
                           f"cannot connect to 127.0.0.1:{port}")
    assert f"sentibench report --to mlflow {out}" in line
    assert read_results(out).accuracy["test"] > 0.5
    assert _events(out / "tensorboard")["final/test_accuracy"]  # the other tracker still ran
    assert took < 60


def test_a_bench_against_a_tracker_that_is_down_warns_once(data, tmp_path, capsys):
    port = _free_port()
    bench = tmp_path / "bench"
    assert main(["bench", "--models", "dummy,logreg,logreg-tfidf", "--data-dir", str(data),
                 "--out", str(bench), "--report-to", "mlflow", "--mlflow-uri",
                 f"http://127.0.0.1:{port}"]) == 0
    err = capsys.readouterr().err
    assert len(_warnings(err)) == 1 and err.count("\n") == 1, err
    assert f"sentibench report --to mlflow {bench}" in err
    assert all((bench / row / "results.json").is_file()
               for row in ("dummy", "logreg", "logreg-tfidf"))
    assert (bench / "results.md").is_file()
    assert main(["report", "--to", "mlflow", "--mlflow-uri", f"http://127.0.0.1:{port}",
                 str(bench)]) == 2  # sending is all report --to does: its failure is an error
    assert "mlflow: not sent" in capsys.readouterr().err
    logs = tmp_path / "logs"  # the same bench to TensorBoard, later: one folder per row
    assert main(["report", "--to", "tensorboard", "--logging-dir", str(logs), str(bench)]) == 0
    assert "Sent 3 runs" in capsys.readouterr().out
    for row in ("dummy", "logreg", "logreg-tfidf"):
        assert _events(logs / row)["final/test_accuracy"] == \
            [(0, f32(read_results(bench / row).accuracy["test"]))]


# --- MLflow ----------------------------------------------------------------------------------

def _client(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _runs(uri: str, experiment: str = "sentibench") -> list:
    client = _client(uri)
    found = client.get_experiment_by_name(experiment)
    return client.search_runs([found.experiment_id]) if found else []


def test_the_default_store_is_a_sqlite_file_in_the_run(data, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    assert main(_logreg(data, out, "--report-to", "mlflow")) == 0
    store = out / "mlruns" / "mlflow.db"
    assert store.is_file()
    (run,) = _runs(f"sqlite:///{store}")
    result = read_results(out)
    assert run.data.metrics["final/test_accuracy"] == result.accuracy["test"]
    assert run.data.tags["sentibench.model"] == "logreg"
    artifacts = {a.path for a in _client(f"sqlite:///{store}").list_artifacts(run.info.run_id)}
    assert artifacts == {"results.json", "test_predictions.csv"}
    assert not (tmp_path / "mlruns").exists()  # nothing in the current directory


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory) -> Iterator[str]:
    """A real ``mlflow server`` (SQLite backend, artifacts served by it) on a free port."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    log = open(root / "server.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
         f"sqlite:///{root / 'mlflow.db'}", "--artifacts-destination", str(root / "artifacts"),
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=root)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not start: "
                            f"{(root / 'server.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield uri
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def _tree(uri: str, experiment: str) -> tuple[object, dict[str, object]]:
    """The parent run of an experiment and its children by name."""
    runs = _runs(uri, experiment)
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = {r.info.run_name: r for r in runs
                if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    return parent, children


@pytest.mark.slow
def test_a_bench_is_a_parent_run_with_one_child_per_row(data, tiny_gpt2_dir, mlflow_server,
                                                        tmp_path, capsys):
    bench = tmp_path / "bench"
    gpt = str(tiny_gpt2_dir)
    assert main(["bench", "--models", f"dummy,logreg,{gpt}", "--data-dir", str(data),
                 "--out", str(bench), "--device", "cpu", "--set", f"{gpt}.eval_freq=5",
                 "--set", f"{gpt}.learning_rate=0.002", "--report-to", "mlflow",
                 "--mlflow-uri", mlflow_server, "--mlflow-experiment", "bench-live"]) == 0
    assert "warning" not in capsys.readouterr().err
    first_parent = _tree(mlflow_server, "bench-live")[0].info.run_id
    assert main(["bench", "--models", f"dummy,logreg,{gpt}", "--data-dir", str(data),
                 "--out", str(bench), "--device", "cpu", "--set", f"{gpt}.eval_freq=5",
                 "--set", f"{gpt}.learning_rate=0.002", "--report-to", "mlflow",
                 "--mlflow-uri", mlflow_server, "--mlflow-experiment", "bench-live"]) == 0
    assert "already completed" in capsys.readouterr().out  # continued: the same parent run
    parent, children = _tree(mlflow_server, "bench-live")
    assert parent.info.run_id == first_parent
    assert sorted(children) == sorted(["dummy", "logreg", row_name(gpt)])
    assert parent.info.status == "FINISHED" and parent.data.tags["sentibench.kind"] == "bench"
    client = _client(mlflow_server)
    report = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"results.md", "report.html", "bench.json"} <= report
    downloaded = Path(client.download_artifacts(parent.info.run_id, "results.md", str(tmp_path)))
    assert downloaded.read_bytes() == (bench / "results.md").read_bytes()
    _check_child(client, children[row_name(gpt)], bench / row_name(gpt), tmp_path)
    _check_child(client, children["logreg"], bench / "logreg", tmp_path)

    # sent again later, from the directory alone: the same tree in another experiment
    assert main(["report", "--to", "mlflow", "--mlflow-uri", mlflow_server,
                 "--mlflow-experiment", "bench-later", str(bench)]) == 0
    assert "Sent 3 runs" in capsys.readouterr().out
    later_parent, later = _tree(mlflow_server, "bench-later")
    assert sorted(later) == sorted(children)
    assert later[row_name(gpt)].data.params == children[row_name(gpt)].data.params
    assert later[row_name(gpt)].data.metrics == children[row_name(gpt)].data.metrics
    print(_listing(mlflow_server, "bench-live"))  # the tree, as MLflow's client lists it


def _check_child(client, run, run_dir: Path, tmp_path: Path) -> None:
    """A row's run: every resolved setting a parameter, its figures and history as metrics,
    its files as artifacts, all equal to its directory."""
    result = read_results(run_dir)
    params = run.data.params
    assert params["model"] == result.model and params["kind"] == result.kind
    for key, value in result.config.get("train", {}).items():
        assert params[f"train.{key}"] == (value if isinstance(value, str) else json.dumps(value))
    assert run.data.metrics["final/test_accuracy"] == result.accuracy["test"]
    assert run.data.tags["sentibench.family"] == result.kind
    assert len(run.data.tags["sentibench.data_fingerprint"]) == 16
    if result.history.get("steps"):
        losses = client.get_metric_history(run.info.run_id, "train/loss")
        assert sorted((m.step, m.value) for m in losses) == \
            list(zip(result.history["steps"], result.history["train_loss"], strict=True))
    folder = tmp_path / run.info.run_id
    folder.mkdir()
    saved = Path(client.download_artifacts(run.info.run_id, "results.json", str(folder)))
    assert saved.read_bytes() == (run_dir / "results.json").read_bytes()
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert names == {"results.json", "test_predictions.csv"}


def _listing(uri: str, experiment: str) -> str:
    parent, children = _tree(uri, experiment)
    lines = [f"{parent.info.run_name} ({parent.info.status}, {len(parent.data.params)} params)"]
    for name, run in sorted(children.items()):
        lines.append(f"  {name}: test accuracy {run.data.metrics['final/test_accuracy']:.4f}, "
                     f"{len(run.data.params)} params, {len(run.data.metrics)} metrics")
    return "\n".join(lines)


@pytest.mark.slow
def test_a_tuning_study_is_a_parent_run_with_one_child_per_trial(data, mlflow_server,
                                                                 tmp_path):
    study = tmp_path / "study"
    assert main(["tune", "--model", "logreg", "--data-dir", str(data), "--study-dir",
                 str(study), "--trials", "3", "--space", "C=log:0.1:10", "--report-to",
                 "mlflow", "--mlflow-uri", mlflow_server, "--mlflow-experiment", "study"]) == 0
    parent, children = _tree(mlflow_server, "study")
    assert parent.data.tags["sentibench.kind"] == "study"
    assert sorted(children) == ["trial-0000", "trial-0001", "trial-0002"]
    summary = json.loads((study / "study-summary.json").read_text())
    for trial in summary["trials"]:
        run = children[trial["run_dir"]]
        assert run.data.tags["sentibench.trial"] == str(trial["number"])
        assert run.data.metrics["final/validation_accuracy"] == trial["value"]
