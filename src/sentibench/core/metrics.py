"""Classification metrics of one split, the same for every kind of run (scikit-learn's own
functions; the labels are the data's ids ``0 .. K-1``, named by ``labels.json``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np


def split_metrics(y_true: Any, y_pred: Any, names: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision / recall / F1 / support and the confusion
    matrix (rows: true class, columns: predicted class, in id order)."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    ids = list(range(len(names)))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=ids, zero_division=0)
    per_class = {name: {"precision": float(precision[i]), "recall": float(recall[i]),
                        "f1": float(f1[i]), "support": int(support[i])}
                 for i, name in enumerate(names)}
    return {"accuracy": float((y_true == y_pred).mean()) if len(y_true) else 0.0,
            "macro_f1": float(np.mean(f1)), "per_class": per_class,
            "confusion_matrix": confusion_matrix(y_true, y_pred, labels=ids).tolist()}


def balanced_class_weights(labels: Any, num_classes: int) -> list[float]:
    """``n_rows / (K * n_rows_of_class)`` per class, scikit-learn's ``balanced`` rule."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)
    if (counts == 0).any():
        missing = int(np.flatnonzero(counts == 0)[0])
        raise ValueError(f"class {missing} has no training rows")
    return (counts.sum() / (num_classes * counts)).astype(float).tolist()


Z95 = 1.959963984540054  # the standard normal's 97.5 % quantile


def wilson_interval(correct: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``correct / n``."""
    if n == 0:
        return (0.0, 1.0)
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (max(0.0, centre - half), min(1.0, centre + half))


def mcnemar_exact(correct_a: Sequence[bool], correct_b: Sequence[bool]) -> float:
    """Two-sided exact McNemar p-value: a binomial test (p = 1/2) on the discordant rows."""
    from scipy.stats import binomtest

    a, b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    if only_a + only_b == 0:
        return 1.0
    return float(binomtest(only_a, only_a + only_b, 0.5).pvalue)
