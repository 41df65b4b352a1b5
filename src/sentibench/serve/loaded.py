"""The runs a server holds: each saved run (or ensemble) loaded once, with what ``/info``
reports about it. Scoring is :class:`~sentibench.serve.scoring.LoadedRun`'s, the code
``predict`` runs, so an answer equals ``predict``'s for the same text."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sentibench.core.errors import SentibenchError
from sentibench.core.metrics import wilson_interval
from sentibench.engine.config import PredictConfig
from sentibench.run.results import read_results
from sentibench.serve import ensemble
from sentibench.serve.scoring import LoadedRun, OnnxRun, load_run


@dataclass
class ServedModel:
    """One model of the server: its name (the run directory's), labels, what it reports."""

    name: str
    labels: list[str]
    members: list[LoadedRun | OnnxRun]
    info: dict[str, Any] = field(default_factory=dict)

    def proba(self, texts: list[str]) -> np.ndarray:
        """``[n, C]``: the run's probabilities, or the mean of an ensemble's members'."""
        return np.mean([m.proba(texts) for m in self.members], axis=0)


def _test_metrics(result: Any) -> dict[str, Any]:
    """The run's test accuracy with its 95 % Wilson interval, and its test macro-F1."""
    metrics = result.metrics.get("test", {})
    rows = result.data.get("rows", {}).get("test")  # split metrics carry no row count
    out: dict[str, Any] = {"accuracy": result.accuracy.get("test")}
    if rows and out["accuracy"] is not None:
        out["rows"] = int(rows)
        out["accuracy_interval_95"] = list(wilson_interval(round(out["accuracy"] * rows),
                                                           int(rows)))
    if "macro_f1" in metrics:
        out["macro_f1"] = metrics["macro_f1"]
    return out


def load_model(run_dir: Path, device: str, settings: PredictConfig | None = None
               ) -> ServedModel:
    """A run directory loaded for serving: its weights verified, then kept in memory."""
    settings = settings or PredictConfig()
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise SentibenchError(f"{run_dir}: no such run directory")
    result = read_results(run_dir)
    members = ensemble.member_dirs(run_dir) if result.kind == ensemble.KIND else [run_dir]
    loaded = [load_run(m, read_results(m), device, settings) for m in members]
    info = {"model": result.model, "kind": result.kind, "labels": result.labels,
            "test": _test_metrics(result), "run_dir": str(run_dir.resolve()),
            "finished_at": result.finished_at,
            "members": [m.name for m in members] if len(members) > 1 else None}
    return ServedModel(run_dir.name, list(result.labels), loaded, info)
