"""One scikit-learn run: fit a registered bag-of-words recipe, score every split, save
``model.skops``, the predictions and results.json (``train-logreg`` and bench rows)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from sentibench.data.config import DataArgs
from sentibench.data.splits import check_trainable, class_weights, load_splits, read_label_names
from sentibench.models import baselines
from sentibench.run import results
from sentibench.run.integrity import model_files
from sentibench.run.results import RunArgs, RunResult
from sentibench.run.rundir import check_target, refuse_other_run, run_directory


def _describe(pipeline: Pipeline) -> dict:
    return {step: repr(est) for step, est in pipeline.steps}


def run_baseline(name: str, data: DataArgs, run: RunArgs,
                 frames: dict[str, pd.DataFrame] | None = None,
                 options: Any = None) -> RunResult:
    """Fit, evaluate, save ``model.skops`` + ``results.json`` for one baseline."""
    started, t0 = results.utc_now_iso(), time.perf_counter()
    frames = frames if frames is not None else load_splits(data)
    check_trainable(frames, data)
    with run_directory(Path(run.out or results.default_run_dir(name)),
                       overwrite=run.overwrite) as run_dir:
        names = read_label_names(data.data_dir)
        weights = class_weights(data, frames["train"], len(names))
        pipeline, predicted, train_seconds, probs = baselines.fit(name, frames, len(names), weights,
                                                                 options)
        baselines.save_pipeline(pipeline, run_dir)
        clf = pipeline.steps[-1][1]
        params = int(np.size(clf.coef_) + np.size(clf.intercept_)) \
            if hasattr(clf, "coef_") else 0
        scored = {split: (frame["label"].to_numpy(), predicted[split])
                  for split, frame in frames.items()}
        result = results.run_result(
            name, baselines.KIND, run, data, names, scored,
            (train_seconds, time.perf_counter() - t0),
            {"pipeline": _describe(pipeline), "class_weights": weights}, "cpu",
            (params, params), started)
        result.files = model_files(run_dir)
        results.save_run_files(run_dir, result, {
            split: (frames[split]["label"].to_numpy(), probs[split])
            for split in frames})
        results.send_to_trackers(run_dir, result, run)
    return result


def run_logreg_command(name: str, data: DataArgs, run: RunArgs) -> RunResult:
    """``sentibench train-logreg``: the dummy line, then the logistic regression ``name``."""
    frames = load_splits(data)
    check_trainable(frames, data)
    run_dir = Path(run.out or results.default_run_dir(name))
    check_target(run_dir)
    refuse_other_run(run_dir, run.overwrite)
    _, dummy_acc, _ = baselines.fit_and_score("dummy", frames)
    print("Dummy classifier:")
    print(results.format_accuracy_lines(dummy_acc))
    result = run_baseline(name, data, RunArgs(out=run_dir, overwrite=run.overwrite,
                                              command=run.command, track=run.track), frames)
    print("\nLogistic regression classifier:")
    print(results.format_accuracy_lines(result.accuracy))
    print(f"\nTrained in {result.train_seconds:.1f} s; saved {run_dir / baselines.MODEL_FILE} and "
          f"{run_dir / 'results.json'}")
    return result
