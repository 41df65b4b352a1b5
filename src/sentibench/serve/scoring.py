"""Class probabilities from one saved run (not an ensemble), scored as the run was
evaluated unless predict's settings say otherwise.

A bag-of-words run reads whole texts (no length limit, windows or quantization); a neural
run is loaded by its family and scored by the engine's inference code, with the run's own
length and truncation rule, its windows if it used them, and optionally int8 weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sentibench.core.errors import SentibenchError
from sentibench.engine.config import PredictConfig
from sentibench.models.registry import Family, get_family
from sentibench.models.truncation import HEAD, Truncation
from sentibench.run.integrity import verify_model_files
from sentibench.run.results import RunResult

if TYPE_CHECKING:
    from torch import nn

DEFAULT_MAX_LENGTH = 256


def run_proba(run_dir: Path, result: RunResult, texts: list[str], device: str,
              settings: PredictConfig) -> np.ndarray:
    """``[n, C]`` probabilities of ``texts`` from the model saved in ``run_dir``."""
    family = get_family(result.kind)
    verify_model_files(run_dir, result.files)
    if settings.quantize != "none" and not family.engine:
        raise SentibenchError(f"--quantize {settings.quantize}: {run_dir} is a "
                              f"{result.kind} run; only neural runs have Linear layers")
    if not family.engine:
        from sentibench.models.baselines import class_probabilities

        return class_probabilities(family.load(run_dir), texts, len(result.labels))
    train = result.config.get("train", {})
    windows = bool(train.get("eval_windows", False)) if settings.windows == "auto" \
        else settings.windows == "on"
    return neural_proba(
        family, run_dir, texts, device,
        int(result.config.get("max_length", DEFAULT_MAX_LENGTH)),
        Truncation(train.get("truncation", "head"), train.get("head_tokens")),
        windows=windows, window_stride=train.get("window_stride"),
        quantize=settings.quantize, int8_recheck=settings.int8_recheck)


def neural_proba(family: Family, run_dir: Path, texts: list[str], device: str,
                 max_length: int, truncation: Truncation | None = None, *,
                 windows: bool = False, window_stride: int | None = None,
                 quantize: str = "none", int8_recheck: float = 0.0) -> np.ndarray:
    """A neural run's probabilities; with int8 weights, rows whose int8 label is unsure
    (margin below ``int8_recheck``) are scored again in full precision."""
    from sentibench.engine.inference import class_probabilities, quantize_int8, rechecked

    model, tokenizer = family.load(run_dir)

    def score(scorer: nn.Module, rows: list[str]) -> Any:
        return class_probabilities(scorer, tokenizer, rows, max_length, device, None,
                                   truncation or HEAD, windows, window_stride)

    if quantize != "int8":
        return score(model, texts)
    return rechecked(score(quantize_int8(model), texts),
                     lambda rows: score(model, [texts[i] for i in rows]), int8_recheck)
