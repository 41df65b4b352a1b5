"""Class probabilities from one saved run (not an ensemble), scored as the run was
evaluated unless predict's settings say otherwise.

A run trained outside the engine (a bag-of-words pipeline, a SetFit encoder and head) is
loaded by its family as an estimator that scores texts itself (its own length limit; no
windows or quantization); a neural run is loaded by its family and scored by the engine's
inference code, with the run's own length and truncation rule, its windows if it used
them, and optionally int8 weights.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sentibench.core.errors import SentibenchError
from sentibench.engine.config import PredictConfig
from sentibench.models.registry import get_family
from sentibench.models.truncation import HEAD, Truncation
from sentibench.run.integrity import verify_model_files
from sentibench.run.results import RunResult

if TYPE_CHECKING:
    from torch import nn

DEFAULT_MAX_LENGTH = 256


class LoadedRun:
    """One saved run loaded once (weights verified against results.json first), scoring
    any number of text lists as ``predict`` does: ``predict`` makes one per call, the
    server one per run for its lifetime."""

    def __init__(self, run_dir: Path, result: RunResult, device: str,
                 settings: PredictConfig) -> None:
        self.family = get_family(result.kind)
        self.num_classes = len(result.labels)
        verify_model_files(run_dir, result.files)
        if settings.quantize != "none" and not self.family.engine:
            raise SentibenchError(f"--quantize {settings.quantize}: {run_dir} is a "
                                  f"{result.kind} run; only neural runs have Linear layers")
        self.device, self.settings = device, settings
        loaded = self.family.load(run_dir)
        if not self.family.engine:
            self.pipeline = loaded
            return
        self.model, self.tokenizer = loaded
        train = result.config.get("train", {})
        self.windows = bool(train.get("eval_windows", False)) \
            if settings.windows == "auto" else settings.windows == "on"
        self.window_stride = train.get("window_stride")
        self.max_length = int(result.config.get("max_length", DEFAULT_MAX_LENGTH))
        self.truncation = Truncation(train.get("truncation", "head"), train.get("head_tokens"))
        self.int8 = None
        if settings.quantize == "int8":
            from sentibench.engine.inference import quantize_int8

            self.int8 = quantize_int8(self.model)

    def proba(self, texts: list[str]) -> np.ndarray:
        """``[n, C]`` probabilities; with int8 weights, rows whose int8 label is unsure
        (margin below ``--int8-recheck``) are scored again in full precision."""
        if not self.family.engine:
            from sentibench.models.baselines import class_probabilities

            return class_probabilities(self.pipeline, texts, self.num_classes)
        if self.int8 is None:
            return np.asarray(self._score(self.model, texts))
        from sentibench.engine.inference import rechecked

        return np.asarray(rechecked(self._score(self.int8, texts),
                                    lambda rows: self._score(self.model,
                                                             [texts[i] for i in rows]),
                                    self.settings.int8_recheck))

    def _score(self, scorer: nn.Module, rows: list[str]) -> Any:
        from sentibench.engine.inference import class_probabilities

        return class_probabilities(scorer, self.tokenizer, rows, self.max_length, self.device,
                                   None, self.truncation or HEAD, self.windows,
                                   self.window_stride)


class OnnxRun:
    """A run's exported ONNX model (``sentibench export``) under onnxruntime, scoring as
    :class:`LoadedRun` does: the run's tokenizer, length rule and windows, length-sorted
    batches; only the forward pass differs. Built around a loaded run (whose model it
    replaces in a copy), so the exporter checks several files with one load.

    ``recheck_file``: the float32 export beside an int8 ``model_file``; rows whose int8
    label is unsure (margin below ``settings.int8_recheck`` of the loaded run) are scored
    again with it, as ``--quantize int8`` does with the PyTorch model."""

    def __init__(self, loaded: LoadedRun, model_file: Path, meta: dict[str, Any],
                 device: str = "cpu", recheck_file: Path | None = None) -> None:
        self.loaded = copy.copy(loaded)
        module = _onnx_module_class()
        self.loaded.model = module(_session(model_file, device), meta["pad_id"],
                                   meta["fixed_padding"])
        self.loaded.int8 = None
        if recheck_file is not None:
            self.loaded.int8 = self.loaded.model
            self.loaded.model = module(_session(recheck_file, device), meta["pad_id"],
                                       meta["fixed_padding"])

    @classmethod
    def of_run(cls, run_dir: Path, result: RunResult, device: str,
               settings: PredictConfig) -> OnnxRun:
        """The model ``sentibench export`` wrote into ``run_dir`` (its int8 file with
        ``--quantize int8``, rechecked with the float32 one), checked against export.json."""
        from sentibench.serve.onnx_files import read_export

        int8 = settings.quantize == "int8"
        model_file, meta = read_export(run_dir, int8)
        recheck = read_export(run_dir, False)[0] if int8 and settings.int8_recheck > 0 \
            else None
        loaded = LoadedRun(run_dir, result, "cpu",
                           PredictConfig(windows=settings.windows,
                                         int8_recheck=settings.int8_recheck))
        return cls(loaded, model_file, meta, device, recheck)

    def proba(self, texts: list[str]) -> np.ndarray:
        return self.loaded.proba(texts)


def _session(model_file: Path, device: str) -> Any:
    import onnxruntime

    providers = ["CUDAExecutionProvider"] if device.startswith("cuda") else []
    return onnxruntime.InferenceSession(str(model_file),
                                        providers=[*providers, "CPUExecutionProvider"])


@functools.cache
def _onnx_module_class() -> type:
    """Defined on first use: this module stays importable without torch."""
    import torch
    from torch import nn

    class OnnxModule(nn.Module):
        """``model(input_ids, attention_mask)`` answered by an onnxruntime session."""

        def __init__(self, session: Any, pad_id: int, fixed_padding: bool) -> None:
            super().__init__()
            self.session, self.pad_id, self.fixed_padding = session, pad_id, fixed_padding

        def forward(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            out = self.session.run(["logits"], {"input_ids": input_ids.cpu().numpy(),
                                                "attention_mask": mask.cpu().numpy()})[0]
            return torch.from_numpy(out)

    return OnnxModule


def load_run(run_dir: Path, result: RunResult, device: str,
             settings: PredictConfig) -> LoadedRun | OnnxRun:
    """The scorer ``settings.backend`` asks for."""
    if settings.backend == "onnx":
        if not get_family(result.kind).engine:
            raise SentibenchError(f"--backend onnx: {run_dir} is a {result.kind} run; "
                                  "only neural runs are exported")
        return OnnxRun.of_run(run_dir, result, device, settings)
    return LoadedRun(run_dir, result, device, settings)


def run_proba(run_dir: Path, result: RunResult, texts: list[str], device: str,
              settings: PredictConfig) -> np.ndarray:
    """``[n, C]`` probabilities of ``texts`` from the model saved in ``run_dir``."""
    return load_run(run_dir, result, device, settings).proba(texts)
