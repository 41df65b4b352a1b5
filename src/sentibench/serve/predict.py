"""``sentibench predict``: label new text with any saved run (GPT-2, encoder, scikit-learn)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from sentibench.core.errors import SentibenchError
from sentibench.engine.config import PredictConfig
from sentibench.run.results import read_results
from sentibench.serve import ensemble
from sentibench.serve.scoring import run_proba


def predict_proba(run_dir: Path, texts: Sequence[str], device: str = "cpu",
                  settings: PredictConfig | None = None) -> np.ndarray:
    """``[n, C]`` class probabilities from the run (or ensemble) saved in ``run_dir``, scored
    as the run was evaluated unless ``settings`` say otherwise (windows, int8
    quantization)."""
    settings = settings or PredictConfig()
    result = read_results(run_dir)
    if not texts:
        return np.zeros((0, len(result.labels)))
    if settings.quantize != "none" and device != "cpu":
        raise SentibenchError(f"--quantize {settings.quantize} runs on the CPU (torch's "
                              f"dynamic quantization has no {device} kernels); use --device cpu")
    if result.kind == ensemble.KIND:
        return ensemble.predict_proba(Path(run_dir), list(texts), device, settings)
    return np.asarray(run_proba(Path(run_dir), result, list(texts), device, settings))


def read_inputs(texts: Sequence[str], file: Path | None, csv: Path | None,
                column: str) -> list[str]:
    """Texts from the command line, a one-review-per-line file, or a CSV column."""
    items = list(texts)
    if file is not None:
        try:
            raw = Path(file).read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise SentibenchError(f"{file}: cannot read ({exc})") from None
        items.extend(_file_lines(file, raw))
    if csv is not None:
        try:
            frame = pd.read_csv(csv, dtype=str, keep_default_na=False)
        except (OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
            raise SentibenchError(f"{csv}: cannot read CSV ({exc})") from None
        if column not in frame.columns:
            raise SentibenchError(f"{csv}: no column {column!r} (columns: "
                                  f"{', '.join(frame.columns)})")
        items.extend(frame[column].tolist())
    empty = [i for i, t in enumerate(items) if not t.strip()]
    if empty:
        raise SentibenchError(f"input {empty[0] + 1} is empty")
    if not items:
        raise SentibenchError("nothing to predict: give texts, --file or --csv")
    return items


def _file_lines(file: Path, raw: str) -> list[str]:
    """The texts of a one-review-per-line file. Blank lines are skipped, and a note on
    stderr says how many, since a file's line numbers then no longer match the output's.

    One line is one text: str.splitlines() would also cut at U+0085, U+2028 and other
    separators that occur inside reviews. The empty string after the last newline is the
    file's end, not a blank line."""
    lines = [line.removesuffix("\r") for line in raw.split("\n")]
    if lines and lines[-1] == "":
        lines.pop()
    texts = [line for line in lines if line.strip()]
    blank = len(lines) - len(texts)
    if blank:
        print(f"note: skipped {blank} blank line{'s' if blank != 1 else ''} in {file}",
              file=sys.stderr)
    return texts


def run_predict(run_dir: Path, texts: list[str], device: str = "cpu",
                settings: PredictConfig | None = None) -> list[tuple[str, float]]:
    """Print ``label<TAB>probability<TAB>every class's probability<TAB>text`` per input;
    return (label, probability)."""
    names = read_results(run_dir).labels
    probs = predict_proba(run_dir, texts, device=device, settings=settings)
    rows = []
    for text, p in zip(texts, probs, strict=True):
        label = int(np.argmax(p))
        rows.append((names[label], float(p[label])))
        snippet = " ".join(text.split())
        snippet = snippet if len(snippet) <= 70 else snippet[:67] + "..."
        every = " ".join(f"{name}={q:.4f}" for name, q in zip(names, p, strict=True))
        print(f"{names[label]}\t{p[label]:.4f}\t{every}\t{snippet}")
    return rows
