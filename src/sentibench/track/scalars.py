"""The numbers of a finished run, as (tag, step, value) scalars: one list that TensorBoard
and MLflow both receive, so the two trackers never disagree with each other or with
``results.json``, whose dict is the only input.

Per logged step (``eval_freq``): the reference's training and validation loss, the
learning rate, the examples seen and training tokens/s (``pace``); per ``--eval-every``
evaluation: the whole validation split's loss and accuracy; per epoch: the monitored
accuracies; at the end: every split's accuracy with its 95 % Wilson interval, macro-F1
and the run's seconds.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

from sentibench.core.metrics import wilson_interval

# history key -> tag, for the series logged at each --eval-freq step
STEP_SERIES = {"train_loss": "train/loss", "val_loss": "validation/loss",
               "learning_rate": "train/learning_rate",
               "examples_seen": "train/examples_seen"}
PACE_TAG = "train/tokens_per_second"  # results.json's ``pace`` (timings, not history)
EVAL_SERIES = {"eval_val_loss": "eval/validation_loss",
               "eval_val_accuracy": "eval/validation_accuracy"}
EPOCH_SERIES = {"epoch_train_accuracy": "epoch/train_accuracy",
                "epoch_val_accuracy": "epoch/validation_accuracy"}


@dataclass(frozen=True)
class Scalar:
    tag: str
    step: int
    value: float


def _paired(steps: list[int], values: list[float]) -> list[tuple[int, float]]:
    """Steps and values from the end: a run resumed from a checkpoint written before a
    series existed has fewer values than steps, and they are the latest ones."""
    count = min(len(steps), len(values))
    if count == 0:
        return []
    return list(zip(steps[len(steps) - count:], values[len(values) - count:], strict=True))


def history_scalars(history: dict[str, list], pace: dict[str, list] | None = None
                    ) -> list[Scalar]:
    """The recorded training history and pace, value for value."""
    pace = pace or {}
    out = [Scalar(PACE_TAG, int(s), float(v))
           for s, v in _paired(pace.get("steps", []), pace.get("tokens_per_second", []))]
    for key, tag in STEP_SERIES.items():
        out += [Scalar(tag, int(s), float(v))
                for s, v in _paired(history.get("steps", []), history.get(key, []))]
    for key, tag in EVAL_SERIES.items():
        out += [Scalar(tag, int(s), float(v))
                for s, v in _paired(history.get("eval_steps", []), history.get(key, []))]
    for key, tag in EPOCH_SERIES.items():
        out += [Scalar(tag, epoch, float(v))
                for epoch, v in enumerate(history.get(key, []), start=1)]
    return out


def last_step(history: dict[str, list]) -> int:
    """The step the final figures are logged at: the last one recorded, else 0."""
    return max([0, *history.get("steps", []), *history.get("eval_steps", [])])


def final_scalars(result: dict[str, Any]) -> list[Scalar]:
    """Each split's accuracy (with its 95 % interval) and macro-F1, and the seconds."""
    step = last_step(result.get("history") or {})
    rows = (result.get("data") or {}).get("rows") or {}
    metrics = result.get("metrics") or {}
    out = []
    for split, accuracy in result["accuracy"].items():
        out.append(Scalar(f"final/{split}_accuracy", step, float(accuracy)))
        n = rows.get(split)
        if n:
            low, high = wilson_interval(round(float(accuracy) * n), int(n))
            out += [Scalar(f"final/{split}_accuracy_low", step, low),
                    Scalar(f"final/{split}_accuracy_high", step, high)]
        if "macro_f1" in metrics.get(split, {}):
            out.append(Scalar(f"final/{split}_macro_f1", step,
                              float(metrics[split]["macro_f1"])))
    for key in ("train_seconds", "total_seconds"):
        if isinstance(result.get(key), int | float):
            out.append(Scalar(f"final/{key}", step, float(result[key])))
    return out


def finite(scalars: list[Scalar]) -> list[Scalar]:
    """Non-finite values left out: no tracker stores them alike."""
    return [s for s in scalars if math.isfinite(s.value)]


def run_scalars(result: dict[str, Any]) -> list[Scalar]:
    """Everything a tracker plots of one run."""
    return finite(history_scalars(result.get("history") or {}, result.get("pace"))
                  + final_scalars(result))


def data_fingerprint(result: dict[str, Any]) -> str:
    """A short digest of the data files a run read (their sha256s), for telling runs on
    the same data apart from runs on another at a glance."""
    sums = (result.get("data") or {}).get("sha256") or {}
    text = json.dumps(sums, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def flat_settings(result: dict[str, Any]) -> dict[str, str]:
    """Every resolved setting of a run (``config`` nested keys joined with dots), as text."""
    out: dict[str, str] = {"model": str(result.get("model")), "kind": str(result.get("kind"))}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict) and value:
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        else:
            out[prefix] = value if isinstance(value, str) else json.dumps(value)

    walk("", result.get("config") or {})
    return out
