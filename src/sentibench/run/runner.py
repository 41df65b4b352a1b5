"""Run or resume one row by its family: the engine's loop for neural families, the
family's own one-call fit where it has one (SetFit), a scikit-learn fit for the
bag-of-words ones. The only place that chooses between them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sentibench.data.config import DataArgs
from sentibench.engine.config import CHECKPOINT_DIR, TrainConfig
from sentibench.models.registry import check_installed, get_family
from sentibench.run.results import RunArgs, RunResult
from sentibench.track.options import TrackArgs


def run_row(model: str, family_name: str, model_args: Any, train: TrainConfig | None,
            data: DataArgs, run: RunArgs,
            on_evaluation: Callable[[int, float, float], None] | None = None) -> RunResult:
    """Train, evaluate and save one run of registered (or custom) ``model``.
    ``on_evaluation(step, validation loss, accuracy)`` hears each ``--eval-every``
    evaluation of a neural run (a tuner's pruner); raising from it stops the run."""
    family = get_family(family_name)
    check_installed(family)
    if family.engine:
        from sentibench.run.neural import run_neural

        return run_neural(model, family.name, model_args, train, data, run,
                          on_evaluation=on_evaluation)
    if family.fit is not None:
        from sentibench.run.fitted import run_fitted

        return run_fitted(model, family.name, model_args, data, run)
    from sentibench.run.sklearn import run_baseline

    return run_baseline(model, data, run, options=model_args)


def resumable(family_name: str, run_dir: Path) -> bool:
    """Whether ``run_dir`` holds an interrupted run that ``resume_row`` can continue."""
    return get_family(family_name).engine and (Path(run_dir) / CHECKPOINT_DIR).is_dir()


def resume_row(run_dir: Path, track: TrackArgs | None = None) -> RunResult:
    """Continue an interrupted neural run from its checkpoint, with its own settings."""
    from sentibench.run.neural import resume_neural

    return resume_neural(run_dir, track)
