"""Bag-of-words baselines: the reference's ``train_sklearn_logreg.py`` and a stronger recipe.

Each baseline is a scikit-learn ``Pipeline`` from raw text to label, so the fitted object
that is evaluated is exactly the one saved (``model.skops``) and later used by ``predict``.
skops is used instead of pickle: loading trusts only the types listed in ``TRUSTED``.
"""

from __future__ import annotations

import importlib.abc
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.dummy import DummyClassifier
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from sentibench.core.errors import SentibenchError
from sentibench.core.fileio import atomic_path

MODEL_FILE = "model.skops"
KIND = "sklearn"


class NBWeighting(BaseEstimator, TransformerMixin):
    """Scale each feature by its naive-Bayes log-count ratio (Wang & Manning's NBSVM idea).

    Features that are much more frequent in one class get larger weights, which a linear
    model on TF-IDF alone learns only slowly; ``alpha`` smooths rare features. The ratio
    compares two classes; with more than two, the features are left as they are.
    """

    def __init__(self, alpha: float = 1.0) -> None:
        self.alpha = alpha

    def fit(self, X, y):
        y = np.asarray(y)
        if set(np.unique(y)) - {0, 1}:  # the ratio is defined for two classes: with more,
            self.ratio_ = np.ones(X.shape[1])  # the features pass through unweighted
            return self
        pos = np.asarray(X[y == 1].sum(axis=0)).ravel() + self.alpha
        neg = np.asarray(X[y == 0].sum(axis=0)).ravel() + self.alpha
        self.ratio_ = np.log((pos / pos.sum()) / (neg / neg.sum()))
        return self

    def transform(self, X):
        return sp.csr_matrix(X).multiply(self.ratio_).tocsr()


class _CompactVocabulary:
    """Save a fitted vocabulary as one newline-joined string of terms in index order.

    skops writes a dict entry by entry with its type, which made a 563k-term TF-IDF model
    a 360 MB file taking 20 s to save and to load; as one string it is a few MB. Nothing
    else changes: the fitted object, its features and its predictions are identical.
    """

    def __getstate__(self):
        state = dict(super().__getstate__())
        vocab = state.get("vocabulary_")
        if isinstance(vocab, dict) and vocab:
            terms = sorted(vocab, key=vocab.__getitem__)
            if (all(vocab[term] == i for i, term in enumerate(terms))
                    and not any("\n" in term for term in terms)):
                state["vocabulary_"] = "\n".join(terms)
        return state

    def __setstate__(self, state):
        vocab = state.get("vocabulary_")
        if isinstance(vocab, str):
            state = {**state, "vocabulary_": {t: i for i, t in enumerate(vocab.split("\n"))}}
        super().__setstate__(state)


class CompactCountVectorizer(_CompactVocabulary, CountVectorizer):
    """scikit-learn's ``CountVectorizer``, saved compactly."""


class CompactTfidfVectorizer(_CompactVocabulary, TfidfVectorizer):
    """scikit-learn's ``TfidfVectorizer``, saved compactly."""


def _dummy() -> Pipeline:
    return Pipeline([("clf", DummyClassifier(strategy="most_frequent"))])


def _count_logreg() -> Pipeline:
    return Pipeline([("vectorizer", CompactCountVectorizer()),
                     ("clf", LogisticRegression(max_iter=1000))])


def _tfidf_logreg() -> Pipeline:
    # Word 1-2-grams seen in >= 2 reviews, sublinear tf, NB log-count-ratio weighting, then
    # a weakly regularised logistic regression. alpha and C were chosen on the validation
    # split (trigrams doubled the time for no validation gain): ~92.3 % validation and
    # ~92.4 % test accuracy on the reference split in about half a minute on 2 CPU cores.
    vectorizer = CompactTfidfVectorizer(ngram_range=(1, 2), min_df=2, max_df=0.9,
                                        sublinear_tf=True, dtype=np.float32)
    return Pipeline([("vectorizer", vectorizer), ("nb", NBWeighting(alpha=0.5)),
                     ("clf", LogisticRegression(C=50.0, max_iter=1000, solver="liblinear"))])


BASELINES: dict[str, Callable[[], Pipeline]] = {
    "dummy": _dummy,
    "logreg": _count_logreg,
    "logreg-tfidf": _tfidf_logreg,
}
TRUSTED = [f"{cls.__module__}.{cls.__qualname__}"
           for cls in (NBWeighting, CompactCountVectorizer, CompactTfidfVectorizer)]


def build_pipeline(name: str) -> Pipeline:
    if name not in BASELINES:
        raise SentibenchError(f"unknown baseline {name!r}; known: {', '.join(BASELINES)}")
    return BASELINES[name]()


class _NoTorch(importlib.abc.MetaPathFinder):
    """Makes ``import torch`` fail (ImportError) while it is on ``sys.meta_path``."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == "torch" or name.startswith("torch."):
            raise ImportError(f"{name} is not needed to save or load a scikit-learn model")
        return None


def skops_io() -> Any:
    """``skops.io``, imported without importing torch.

    On import skops lists scikit-learn's estimators with ``sklearn.utils.all_estimators``,
    which imports every sklearn package, including an array-API shim that imports torch
    when torch is installed: 1-2 s of a ``train-logreg`` that never uses it. The package
    walk skips packages that raise ImportError, so torch is refused for that one import
    (where it is not loaded already); the list of estimators is the same.
    """
    if "skops.io" in sys.modules or "torch" in sys.modules:
        import skops.io

        return skops.io
    blocker = _NoTorch()
    sys.meta_path.insert(0, blocker)
    try:
        import skops.io
    finally:
        sys.meta_path.remove(blocker)
    return skops.io


def save_pipeline(pipeline: Pipeline, run_dir: Path) -> Path:
    sio = skops_io()

    path = Path(run_dir) / MODEL_FILE
    with atomic_path(path) as tmp:
        sio.dump(pipeline, tmp)
    return path


def load_pipeline(run_dir: str | Path) -> Pipeline:
    """Load a pipeline this package saved; any type outside scikit-learn's and ours is refused."""
    sio = skops_io()

    path = Path(run_dir) / MODEL_FILE
    if not path.is_file():
        raise SentibenchError(f"{run_dir}: no {MODEL_FILE} (not a scikit-learn run)")
    try:
        found = sio.get_untrusted_types(file=path)
    except Exception as exc:  # skops raises zip, JSON and key errors for a damaged file
        raise SentibenchError(f"{path}: not a readable skops file ({type(exc).__name__})"
                              ) from None
    unexpected = sorted(set(found) - set(TRUSTED))
    if unexpected:
        raise SentibenchError(f"{path}: refusing to load unexpected types "
                              f"{', '.join(unexpected)}")
    pipeline = sio.load(path, trusted=found)
    if not isinstance(pipeline, Pipeline):
        raise SentibenchError(f"{path}: holds a {type(pipeline).__name__}, not a Pipeline")
    return pipeline


def class_probabilities(estimator: Any, inputs: Any, num_classes: int | None = None
                        ) -> np.ndarray:
    """``[n, K]`` probabilities of labels ``0 .. K-1`` (a class unseen in training gets 0).

    ``estimator`` is a fitted pipeline (``inputs``: texts) or its final classifier
    (``inputs``: the features the pipeline's earlier steps produced). ``num_classes``
    defaults to one more than the largest class seen in training.
    """
    raw = estimator.predict_proba(inputs)
    k = num_classes or int(max(estimator.classes_)) + 1
    out = np.zeros((raw.shape[0], k), dtype=np.float64)
    for column, label in enumerate(estimator.classes_):
        out[:, int(label)] = raw[:, column]
    return out


def predict_proba(run_dir: str | Path, texts: Sequence[str], num_classes: int | None = None
                  ) -> np.ndarray:
    """``[n, K]`` class probabilities from a saved baseline run."""
    return class_probabilities(load_pipeline(run_dir), list(texts), num_classes)


def _features(pipeline: Pipeline, texts: list[str]) -> Any:
    """What the pipeline's final classifier sees for ``texts``."""
    features: Any = texts
    for _, step in pipeline.steps[:-1]:
        features = step.transform(features)
    return features


LONG_FIT_ROWS = 5_000  # from this many training rows, fitting says what it is doing


def _progress(message: str, t0: float, rows: int) -> None:
    """One line per stage of a long fit (the full split otherwise runs silently for minutes)."""
    if rows >= LONG_FIT_ROWS:
        print(f"[{time.perf_counter() - t0:6.1f} s] {message}", file=sys.stderr, flush=True)


def adjusted(pipeline: Pipeline, C: float | None = None, ngram_max: int | None = None
             ) -> Pipeline:
    """The recipe with its regularisation or n-gram range changed where asked (the dummy
    has neither, and keeps its own)."""
    clf = pipeline.steps[-1][1]
    if C is not None and "C" in clf.get_params():
        clf.set_params(C=C)
    vectorizer = pipeline.steps[0][1]
    if ngram_max is not None and "ngram_range" in vectorizer.get_params():
        vectorizer.set_params(ngram_range=(1, ngram_max))
    return pipeline


def fit(name: str, frames: dict[str, pd.DataFrame], num_classes: int | None = None,
         weights: list[float] | None = None, options: Any = None
         ) -> tuple[Pipeline, dict[str, np.ndarray], float, dict[str, np.ndarray]]:
    """Fit on train; predicted ids of every split; training seconds; validation and test
    probabilities.

    Fitting step by step is what ``Pipeline.fit`` does, but it keeps the transformed
    training matrix, so train predictions need no second pass of the vectorizer; each
    evaluation split is vectorized once for its predictions and (test) its probabilities.
    """
    pipeline = build_pipeline(name)
    if options is not None:
        adjusted(pipeline, options.C, options.ngram_max)
    clf = pipeline.steps[-1][1]
    if num_classes is not None and num_classes > 2 and clf.get_params().get("solver") \
            == "liblinear":  # liblinear fits two classes only: multinomial lbfgs instead
        clf.set_params(solver="lbfgs")
    if weights is not None and "class_weight" in clf.get_params():
        clf.set_params(class_weight=dict(enumerate(weights)))
    y_train = frames["train"]["label"].to_numpy()
    num_classes = num_classes or int(y_train.max()) + 1
    t0 = time.perf_counter()
    features = frames["train"]["text"].tolist()
    for step_name, step in pipeline.steps[:-1]:
        _progress(f"{name}: {step_name} ({type(step).__name__}) on {len(y_train):,} rows", t0,
                  len(y_train))
        features = step.fit_transform(features, y_train)
    _progress(f"{name}: fitting {type(clf).__name__}", t0, len(y_train))
    clf.fit(features, y_train)
    train_seconds = time.perf_counter() - t0
    _progress(f"{name}: fitted; scoring the splits", t0, len(y_train))
    probs = {"train": class_probabilities(clf, features, num_classes)}
    predicted = {"train": probs["train"].argmax(-1)}
    for split, frame in frames.items():
        if split == "train":
            continue
        features = _features(pipeline, frame["text"].tolist())
        probs[split] = class_probabilities(clf, features, num_classes)
        predicted[split] = probs[split].argmax(-1)
    return pipeline, predicted, train_seconds, probs


def fit_and_score(name: str, frames: dict[str, pd.DataFrame]
                  ) -> tuple[Pipeline, dict[str, float], float]:
    """Fit on train; accuracy on every split; training seconds."""
    pipeline, predicted, train_seconds, _ = fit(name, frames)
    accuracy = {split: float((predicted[split] == frame["label"].to_numpy()).mean())
                for split, frame in frames.items()}
    return pipeline, accuracy, train_seconds
