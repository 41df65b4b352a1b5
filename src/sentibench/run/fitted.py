"""One run of a family fitted in a single call outside the engine (SetFit): fit on the
training split, score every split with the fitted estimator, save its files, the
predictions and results.json, in the layout every other run has (``train-setfit`` and
bench rows).

The probabilities saved here come from the same estimator method (``predict_proba`` on
texts, through :func:`~sentibench.models.baselines.class_probabilities`) that ``predict``
and ``serve`` call on the reloaded run, so the two agree.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sentibench.data.config import DataArgs
from sentibench.data.splits import check_trainable, class_weights, load_splits, read_label_names
from sentibench.models.baselines import class_probabilities
from sentibench.models.registry import check_installed, get_family
from sentibench.run import results
from sentibench.run.fingerprint import base_model_files
from sentibench.run.integrity import model_files
from sentibench.run.results import RunArgs, RunResult
from sentibench.run.rundir import check_target, refuse_other_run, run_directory


def run_fitted(name: str, family_name: str, model_args: Any, data: DataArgs,
               run: RunArgs) -> RunResult:
    """Fit, evaluate and save one run of ``name`` through its family's ``fit``."""
    family = get_family(family_name)
    check_installed(family)
    if family.fit is None:
        raise ValueError(f"family {family.name} has no fit")  # a registry mistake, not input
    started, t0 = results.utc_now_iso(), time.perf_counter()
    frames = load_splits(data)
    check_trainable(frames, data)
    with run_directory(Path(run.out or results.default_run_dir(name)),
                       overwrite=run.overwrite) as run_dir:
        names = read_label_names(data.data_dir)
        weights = class_weights(data, frames["train"], len(names))
        train = frames["train"]
        fitted = family.fit(model_args, train["text"].tolist(),
                            [int(y) for y in train["label"]], weights)
        probs = {split: class_probabilities(fitted.estimator, frame["text"].tolist(),
                                            len(names))
                 for split, frame in frames.items()}
        fitted.save(run_dir)
        config = {**fitted.config, "class_weights": weights,
                  "model_sha256": base_model_files(fitted.config.get("checkpoint"))}
        scored = {split: (frame["label"].to_numpy(), probs[split].argmax(-1))
                  for split, frame in frames.items()}
        result = results.run_result(
            name, family.name, run, data, names, scored,
            (fitted.train_seconds, time.perf_counter() - t0), config, fitted.device,
            (fitted.params, fitted.params), started)
        result.files = model_files(run_dir)
        results.save_run_files(run_dir, result, {
            split: (frames[split]["label"].to_numpy(), probs[split]) for split in frames})
        results.send_to_trackers(run_dir, result, run)
    return result


def run_fitted_command(name: str, family_name: str, model_args: Any, data: DataArgs,
                       run: RunArgs) -> RunResult:
    """A family's training command (``train-setfit``): the run, then its accuracies."""
    run_dir = Path(run.out or results.default_run_dir(name))
    check_target(run_dir)
    refuse_other_run(run_dir, run.overwrite)
    result = run_fitted(name, family_name, model_args, data,
                        RunArgs(out=run_dir, overwrite=run.overwrite, command=run.command,
                                track=run.track))
    print(results.format_accuracy_lines(result.accuracy))
    print(f"\nTrained in {result.train_seconds:.1f} s; saved {run_dir}")
    return result
