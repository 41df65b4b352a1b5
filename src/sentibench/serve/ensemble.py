"""``bench --ensemble K``: one more row that averages the class probabilities of the K
runs best on **validation**.

The choice reads validation accuracy only (from each run's results.json); test labels and
test predictions are never used to choose, so the ensemble's test figures are as honest as
any single run's. Members are weighted equally. The row is a run directory like the others
(results.json, every split's predictions), and ``predict`` scores new text by averaging its
members' probabilities.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from sentibench.core.errors import SentibenchError
from sentibench.core.fileio import atomic_write_json
from sentibench.engine.config import PredictConfig
from sentibench.run.results import (
    PREDICTION_FILES,
    RESULTS_FILE,
    RunArgs,
    read_predictions,
    read_results,
    recorded_data,
    run_result,
    save_run_files,
    utc_now_iso,
)
from sentibench.serve.scoring import run_proba

KIND = "ensemble"
MEMBERS_FILE = "members.json"


def candidates(bench_dir: Path) -> list[Path]:
    """Finished runs of a bench that saved every split's predictions (ensembles excluded)."""
    out = []
    for child in sorted(Path(bench_dir).iterdir()):
        if not (child / RESULTS_FILE).is_file():
            continue
        if read_results(child).kind == KIND:
            continue
        if all((child / name).is_file() for name in PREDICTION_FILES.values()):
            out.append(child)
    return out


def choose(runs: list[Path], k: int) -> list[Path]:
    """The ``k`` runs with the best validation accuracy (name breaks ties), among those
    scored on the same validation rows as the best of them."""
    if k < 2:
        raise SentibenchError(f"--ensemble {k}: an ensemble needs two or more runs")
    results = {r: read_results(r) for r in runs}  # each run's results.json read once
    scored = sorted(runs, key=lambda r: (-results[r].accuracy["validation"], r.name))
    if not scored:
        raise SentibenchError(f"--ensemble {k}: no finished run saved its predictions")
    labels = results[scored[0]].labels
    anchor = read_predictions(scored[0], labels, "validation")[0]
    same = [r for r in scored if results[r].labels == labels and np.array_equal(
        read_predictions(r, labels, "validation")[0], anchor)]
    if len(same) < k:
        raise SentibenchError(f"--ensemble {k}: only {len(same)} finished runs share the "
                              "best run's validation rows")
    return same[:k]


def build_ensemble(bench_dir: Path, k: int, command: list[str]) -> Path:
    """Write ``bench_dir/ensemble-top<k>``: results, predictions and its members' names."""
    started, t0 = utc_now_iso(), time.perf_counter()
    members = choose(candidates(bench_dir), k)
    results = [read_results(m) for m in members]
    labels = results[0].labels
    predictions = {}
    for split in PREDICTION_FILES:
        saved = [read_predictions(m, labels, split) for m in members]
        truth = saved[0][0]
        if any(len(s[0]) != len(truth) or not np.array_equal(s[0], truth) for s in saved):
            raise SentibenchError(f"--ensemble {k}: the chosen runs scored different "
                                  f"{split} rows")
        predictions[split] = (truth, np.mean([s[1] for s in saved], axis=0))
    out = Path(bench_dir) / f"ensemble-top{k}"
    out.mkdir(exist_ok=True)
    result = run_result(
        f"ensemble-top{k}", KIND, RunArgs(out=out, command=command),
        recorded_data(results[0]), labels,
        {split: (y, p.argmax(1)) for split, (y, p) in predictions.items()},
        (sum(r.train_seconds for r in results), time.perf_counter() - t0),
        {"members": [m.name for m in members], "chosen_by": "validation accuracy",
         "weights": "equal"}, "cpu",
        (sum(r.params or 0 for r in results), 0), started)
    atomic_write_json(out / MEMBERS_FILE, {"members": [m.name for m in members]})
    save_run_files(out, result, predictions)
    return out


def member_dirs(run_dir: Path) -> list[Path]:
    """The member runs of a saved ensemble (siblings in its bench directory)."""
    names = json.loads((Path(run_dir) / MEMBERS_FILE).read_text(encoding="utf-8"))["members"]
    return [Path(run_dir).parent / name for name in names]


def predict_proba(run_dir: Path, texts: list[str], device: str,
                  settings: PredictConfig | None = None) -> np.ndarray:
    """The mean of the members' class probabilities for ``texts`` (each member scored with
    ``settings`` as predict would score it alone)."""
    settings = settings or PredictConfig()
    return np.mean([run_proba(m, read_results(m), texts, device, settings)
                    for m in member_dirs(run_dir)], axis=0)
