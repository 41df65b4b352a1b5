"""One ``results.json`` per run: the only input that tables, plots and ``bench`` read.

The format is designed once here and shared by every kind of run (scikit-learn,
GPT-2, Hugging Face encoders), so that a report never needs to know how a row was made.
"""

from __future__ import annotations

import datetime as _dt
import json
import platform
import sys
from dataclasses import asdict, dataclass, field, fields
from importlib import metadata
from pathlib import Path
from typing import Any

from sentibench.core.errors import SentibenchError
from sentibench.core.fileio import atomic_path, atomic_write_json
from sentibench.core.options import option, to_dict, validate
from sentibench.data.config import DataArgs
from sentibench.track.mlflow_store import STORE_DIR
from sentibench.track.options import TrackArgs

SCHEMA = "sentibench.run/1"
RESULTS_FILE = "results.json"
FAILURES_FILE = "failures.json"  # a bench's {row: error} for rows that did not finish
PLAN_FILE = "bench.json"  # a bench's plan: command, rows and their settings, data set
TUNING_DIR = "tuning"  # a bench's tuning studies, one directory per row (bench --tune)
NOT_ROWS = (TUNING_DIR, STORE_DIR)  # directories of a bench that are not its rows (mlruns:
# the default MLflow store of --report-to mlflow)
STUDY_SUMMARY_FILE = "study-summary.json"  # a tuning study's trials and best (sentibench tune)
DEFAULT_SUFFIX = "-default"  # bench --tune: the row at its untuned settings, <row>-default
SEED_SUFFIX = "-seed"  # the run directory of one seed of a bench row: <row>-seed<N>
SPLITS = ("train", "validation", "test")
_PACKAGES = ("sentibench", "torch", "transformers", "scikit-learn", "pandas", "numpy", "tiktoken")


def utc_stamp() -> str:
    """A filesystem-safe UTC timestamp used in default run directory names."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def utc_now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def safe_name(name: str) -> str:
    """A file-system-safe directory name: 'gpt2-small (124M)' -> 'gpt2-small-124M'."""
    kept = "".join(c if c.isalnum() or c in "-_." else "-" for c in name)
    return "-".join(part for part in kept.split("-") if part).strip(".") or "run"


def short_name(model: str) -> str:
    """A model's name for run directories and bench rows: a registered name stays as is;
    'gpt2-small (124M)' -> 'gpt2-small'; a path or Hub id -> its last component."""
    last = model.split(" (")[0].rstrip("/\\").replace("\\", "/").split("/")[-1]
    return safe_name(last or model)


def default_run_dir(model: str, root: str | Path = "runs") -> Path:
    return Path(root) / f"{short_name(model)}-{utc_stamp()}"


@dataclass
class RunArgs:
    """Where a run writes its artefacts and how it was invoked."""

    out: Path | None = option(None, "run directory (default: runs/<model>-<UTC timestamp>)")
    overwrite: bool = option(False, "replace what --out already holds (another run's files)")
    command: list[str] = field(default_factory=list)
    track: TrackArgs = field(default_factory=TrackArgs)  # --report-to and its companions

    def __post_init__(self) -> None:
        validate(self)


def environment(device: str = "cpu") -> dict[str, Any]:
    """Versions and hardware, so a reader can tell where a number came from."""
    packages = {}
    for name in _PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    env: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "processor": platform.machine(),
        "packages": packages,
        "device": device,
    }
    if device.startswith("cuda"):
        import torch

        env["device_name"] = torch.cuda.get_device_name(torch.device(device))
    return env


@dataclass
class RunResult:
    """What a finished run reports. Accuracies are fractions in [0, 1]."""

    model: str
    kind: str
    command: list[str]
    accuracy: dict[str, float]
    train_seconds: float
    total_seconds: float
    config: dict[str, Any]
    data: dict[str, Any]
    environment: dict[str, Any]
    params: int | None = None
    trainable_params: int | None = None
    history: dict[str, list[float]] = field(default_factory=dict)
    pace: dict[str, list[float]] = field(default_factory=dict)  # tokens/s at logged steps
    labels: list[str] = field(default_factory=lambda: ["negative", "positive"])
    metrics: dict[str, Any] = field(default_factory=dict)  # split -> metrics.split_metrics
    started_at: str = ""
    finished_at: str = field(default_factory=utc_now_iso)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # model files: size, sha256
    schema: str = SCHEMA

    def __post_init__(self) -> None:
        missing = [s for s in SPLITS if s not in self.accuracy]
        if missing:
            raise ValueError(f"accuracy lacks splits {missing}")
        for split, value in self.accuracy.items():
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"accuracy[{split}]={value} is not a fraction in [0, 1]")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


PREDICTIONS_FILE = "test_predictions.csv"
# every split's predictions: an ensemble chooses its members on validation alone
PREDICTION_FILES = {"train": "train_predictions.csv",
                    "validation": "validation_predictions.csv", "test": PREDICTIONS_FILE}


def write_predictions(run_dir: str | Path, labels: Any, probs: Any,
                      names: list[str], split: str = "test") -> Path:
    """Keep a run's own test predictions: the true label, the predicted one and every
    class's probability (``prob_<name>``), so ``predict`` and reports can be checked."""
    import numpy as np
    import pandas as pd

    probs = np.asarray(probs, dtype=np.float64)
    frame = pd.DataFrame({"row": range(len(probs)), "label": np.asarray(labels),
                          "prediction": probs.argmax(-1),
                          **{f"prob_{name}": probs[:, i] for i, name in enumerate(names)}})
    path = Path(run_dir) / PREDICTION_FILES[split]
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6f")
    return path


def run_result(name: str, kind: str, run: RunArgs, data: Any, labels: list[str],
               scored: dict[str, tuple[Any, Any]], seconds: tuple[float, float],
               config: dict[str, Any], device: str, params: tuple[int, int],
               started_at: str, history: dict[str, list] | None = None,
               pace: dict[str, list] | None = None) -> RunResult:
    """The one way every kind of run reports. ``scored``: split -> (true ids, predicted
    ids); ``seconds`` = (training, total); ``params`` = (total, trainable). The data
    options, the data read and every split's metrics are recorded alike."""
    from sentibench.core.metrics import split_metrics

    metrics = {split: split_metrics(y, p, labels) for split, (y, p) in scored.items()}
    return RunResult(
        model=name, kind=kind, command=run.command,
        accuracy={split: m["accuracy"] for split, m in metrics.items()},
        train_seconds=seconds[0], total_seconds=seconds[1],
        config={**config, "data": data_settings(data)},
        data=data_record(data, {split: len(y) for split, (y, _) in scored.items()}),
        environment=environment(device), params=params[0], trainable_params=params[1],
        history=history or {}, pace=pace or {}, labels=list(labels), metrics=metrics,
        started_at=started_at)


def save_run_files(run_dir: str | Path, result: RunResult,
                   predictions: dict[str, tuple[Any, Any]]) -> Path:
    """Predictions ({split: (true ids, class probabilities)}) first, results.json last: its
    presence marks the run finished."""
    for split, (labels, probs) in predictions.items():
        write_predictions(run_dir, labels, probs, result.labels, split)
    return write_results(run_dir, result)


def send_to_trackers(run_dir: str | Path, result: RunResult, run: RunArgs,
                     live: Any = None) -> None:
    """A finished run to the trackers ``--report-to`` asked for (none: nothing happens,
    nothing is imported); its results.json and test predictions go to MLflow as files.
    ``live``: the :class:`~sentibench.track.send.LiveRun` that followed its training."""
    if not run.track.trackers:
        return
    from sentibench.track.send import send_run

    run_dir = Path(run_dir)
    send_run(run_dir, result.to_dict(), run.track,
             [run_dir / RESULTS_FILE, run_dir / PREDICTIONS_FILE], live)


def read_predictions(run_dir: str | Path, names: list[str], split: str = "test"
                     ) -> tuple[Any, Any] | None:
    """(true ids, ``[n, K]`` probabilities) a run saved for ``split``, or None. Runs saved
    before every class was written (only ``prob_positive``) are read as two classes."""
    import numpy as np
    import pandas as pd

    path = Path(run_dir) / PREDICTION_FILES[split]
    if not path.is_file():
        return None
    frame = pd.read_csv(path)
    columns = [f"prob_{name}" for name in names]
    if all(c in frame for c in columns):
        probs = frame[columns].to_numpy(dtype=float)
    elif "prob_positive" in frame and len(names) == 2:
        probs = np.stack([1 - frame["prob_positive"], frame["prob_positive"]], 1)
    else:
        raise SentibenchError(f"{path}: no probability columns for {', '.join(names)}")
    return frame["label"].to_numpy(), probs


def data_record(data: Any, rows: dict[str, int]) -> dict[str, Any]:
    """What a run read: the data set, its directory, CSV checksums and rows of each split."""
    from sentibench.data.splits import data_checksums, dataset_name, subset_record

    record = {"dataset": dataset_name(data.data_dir), "data_dir": str(data.data_dir),
              "sha256": data_checksums(data.data_dir), "rows": rows}
    subset = subset_record(data)
    if subset is not None:  # which training rows, so the draw can be checked and redone
        record["train_subset"] = subset
    return record


def data_settings(data: Any) -> dict[str, Any]:
    """The data options a run was given (recorded under ``config.data``)."""
    return to_dict(data)


def recorded_data(result: RunResult) -> DataArgs:
    """The data options a run was given, rebuilt from its results.json (the inverse of
    :func:`data_settings`, with the data directory it recorded)."""
    settings = result.config.get("data", {})
    known = {f.name for f in fields(DataArgs)} - {"data_dir"}
    return DataArgs(Path(result.data["data_dir"]),
                    **{k: v for k, v in settings.items() if k in known})


def write_results(run_dir: str | Path, result: RunResult) -> Path:
    path = Path(run_dir) / RESULTS_FILE
    atomic_write_json(path, result.to_dict())
    return path


def read_results(run_dir: str | Path) -> RunResult:
    """Load a run's results, with a one-line error when the directory is not a run."""
    path = Path(run_dir)
    if not path.exists():
        raise SentibenchError(f"{path}: no such run directory")
    if path.is_dir():
        path = path / RESULTS_FILE
    if not path.is_file():
        raise SentibenchError(f"{path.parent}: not a sentibench run (no {RESULTS_FILE})")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SentibenchError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(raw, dict) or raw.get("schema") != SCHEMA:
        raise SentibenchError(f"{path}: not a sentibench results file (schema != {SCHEMA})")
    known = set(RunResult.__dataclass_fields__)
    try:
        return RunResult(**{k: v for k, v in raw.items() if k in known})
    except (TypeError, ValueError) as exc:
        raise SentibenchError(f"{path}: malformed results ({exc})") from None


def format_accuracy_lines(accuracy: dict[str, float]) -> str:
    """The reference's final three lines."""
    return (
        f"Training accuracy: {accuracy['train'] * 100:.2f}%\n"
        f"Validation accuracy: {accuracy['validation'] * 100:.2f}%\n"
        f"Test accuracy: {accuracy['test'] * 100:.2f}%"
    )
