"""Data sets from the Hugging Face Hub (``--dataset hf:NAME[:CONFIG]``), through the
``datasets`` library, an optional extra: ``pip install "sentibench[datasets]"``.

NAME is whatever ``datasets.load_dataset`` takes: a Hub id, or a local directory of data
files named by split (``train.csv``, ``test.parquet``, ...). Its ``train`` split is
required; ``validation`` (or ``valid`` / ``dev``) and ``test`` are used when present and
cut from train otherwise. A ``ClassLabel`` label column keeps its names and order.
"""

from __future__ import annotations

import time

import pandas as pd

from sentibench.core.errors import SentibenchError
from sentibench.data.config import PrepareConfig
from sentibench.data.files import columns, finish

VALIDATION_NAMES = ("validation", "valid", "dev")


def _load(spec: str):
    name, _, config = spec.partition(":")
    try:
        import datasets
    except ImportError:
        raise SentibenchError(f"--dataset hf:{spec} needs the datasets library: pip install "
                              '"sentibench[datasets]"') from None
    try:
        return datasets.load_dataset(name, config or None)
    except Exception as exc:  # hub, network, cache and format errors share no base class
        reason = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise SentibenchError(f"--dataset hf:{spec}: cannot load ({reason})") from None


def prepare_hf(cfg: PrepareConfig) -> dict:
    started = time.perf_counter()
    spec = cfg.dataset.removeprefix("hf:")
    loaded = _load(spec)
    if "train" not in loaded:
        raise SentibenchError(f"--dataset hf:{spec}: no train split (has: "
                              f"{', '.join(loaded)})")
    feature = loaded["train"].features.get(cfg.label_column)
    names = list(getattr(feature, "names", None) or []) or None
    tables = {}
    for split, key in (("train", "train"), ("validation", _first(loaded, VALIDATION_NAMES)),
                       ("test", "test" if "test" in loaded else None)):
        if key is None:
            continue
        frame = pd.DataFrame(loaded[key].to_dict())
        if names and cfg.label_column in frame:
            frame[cfg.label_column] = [names[int(i)] if str(i).lstrip("-").isdigit() and
                                       int(i) >= 0 else "" for i in frame[cfg.label_column]]
        tables[split] = columns(frame, f"hf:{spec} ({key})", cfg)
    fingerprints = {split: getattr(loaded[key], "_fingerprint", None)
                    for split, key in (("train", "train"),) if key in loaded}
    return finish(cfg, f"hf:{spec}", tables, f"hf:{spec}", {"hf": spec, **fingerprints},
                  started, names)


def _first(loaded, keys: tuple[str, ...]) -> str | None:
    return next((k for k in keys if k in loaded), None)
