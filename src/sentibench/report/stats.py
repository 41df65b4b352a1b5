"""Which differences between models are real: intervals, paired tests, calibration.

Everything here works on a run's own test predictions (true ids, predicted ids, class
probabilities), so a report computes it from run directories alone. Methods:

- accuracy interval: Wilson score interval (95 %), for one run's test accuracy;
- macro-F1 interval: percentile bootstrap over test rows (seeded, 2,000 resamples);
- paired comparison of two runs on the same rows: the exact McNemar test (a two-sided
  binomial test on the rows where exactly one of them is right) and a paired-bootstrap
  interval of the accuracy difference; p-values across rows are Holm-corrected;
- calibration: log-loss, Brier score (summed over classes, averaged over rows) and expected
  calibration error over 15 equal-width confidence bins.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sentibench.core.metrics import (  # noqa: F401  (defined below report: serve uses them)
    Z95,
    mcnemar_exact,
    wilson_interval,
)

BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
ECE_BINS = 15


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> float:
    """Mean over classes of F1 (a class with no true and no predicted row scores 0, as
    scikit-learn's ``zero_division=0``)."""
    return float(_macro_f1_many(y_true[None, :], y_pred[None, :], num_classes)[0])


def _macro_f1_many(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> np.ndarray:
    """Macro-F1 of each row of ``[resamples, n]`` label arrays, vectorised."""
    tp = np.stack([((y_true == c) & (y_pred == c)).sum(1) for c in range(k)], 1)
    true = np.stack([(y_true == c).sum(1) for c in range(k)], 1)
    pred = np.stack([(y_pred == c).sum(1) for c in range(k)], 1)
    denom = true + pred
    f1 = np.divide(2 * tp, denom, out=np.zeros(tp.shape, dtype=float), where=denom > 0)
    return f1.mean(1)


def _resamples(n: int, seed: int, count: int = BOOTSTRAP_RESAMPLES) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(count, n))


def bootstrap_macro_f1(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int,
                       seed: int = BOOTSTRAP_SEED, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of macro-F1 over the test rows."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if len(y_true) == 0:
        return (0.0, 0.0)
    idx = _resamples(len(y_true), seed)
    values = np.concatenate([_macro_f1_many(y_true[chunk], y_pred[chunk], num_classes)
                             for chunk in np.array_split(idx, max(1, len(idx) // 250))])
    tail = (1 - level) / 2 * 100
    return tuple(float(v) for v in np.percentile(values, [tail, 100 - tail]))  # type: ignore


def paired_bootstrap_difference(correct_a: Sequence[bool], correct_b: Sequence[bool],
                                seed: int = BOOTSTRAP_SEED, level: float = 0.95
                                ) -> tuple[float, float]:
    """Percentile interval of accuracy(a) - accuracy(b), resampling the same rows for both."""
    diff = np.asarray(correct_a, float) - np.asarray(correct_b, float)
    if len(diff) == 0:
        return (0.0, 0.0)
    means = diff[_resamples(len(diff), seed)].mean(1)
    tail = (1 - level) / 2 * 100
    return tuple(float(v) for v in np.percentile(means, [tail, 100 - tail]))  # type: ignore


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order."""
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    adjusted = [0.0] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(pvalues) - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def log_loss(y_true: Sequence[int], probs: np.ndarray, eps: float = 1e-15) -> float:
    probs = np.asarray(probs, float)
    picked = np.clip(probs[np.arange(len(probs)), np.asarray(y_true)], eps, 1.0)
    return float(-np.log(picked).mean())


def brier(y_true: Sequence[int], probs: np.ndarray) -> float:
    """Mean over rows of the squared distance between the probabilities and the one-hot
    truth (for two classes, twice the usual binary Brier score)."""
    probs = np.asarray(probs, float)
    onehot = np.eye(probs.shape[1])[np.asarray(y_true)]
    return float(((probs - onehot) ** 2).sum(1).mean())


def reliability(y_true: Sequence[int], probs: np.ndarray, bins: int = ECE_BINS
                ) -> list[tuple[float, float, int]]:
    """Per equal-width confidence bin: (mean confidence, accuracy, rows); empty bins omitted."""
    probs = np.asarray(probs, float)
    confidence, predicted = probs.max(1), probs.argmax(1)
    right = predicted == np.asarray(y_true)
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    return [(float(confidence[which == b].mean()), float(right[which == b].mean()),
             int((which == b).sum())) for b in range(bins) if (which == b).any()]


def expected_calibration_error(y_true: Sequence[int], probs: np.ndarray,
                               bins: int = ECE_BINS) -> float:
    """Sum over bins of (rows in bin / rows) x |accuracy - mean confidence|."""
    table = reliability(y_true, probs, bins)
    n = sum(count for _, _, count in table)
    return float(sum(count / n * abs(acc - conf) for conf, acc, count in table)) if n else 0.0
