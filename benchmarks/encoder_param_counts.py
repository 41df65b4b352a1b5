"""Parameter counts of every registered Hugging Face encoder, without downloading anything.

Each model is built from its published configuration (the ``config.json`` values of its
Hub repository, shipped in ``sentibench/speed/configs``) on the meta device, so no memory is
allocated and no weights are needed; :func:`sentibench.models.encoders.set_trainable` then
says what each ``--trainable_layers`` mode trains.

    python benchmarks/encoder_param_counts.py
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch

from sentibench.models import count_parameters
from sentibench.models.encoders import HFClassifier, set_trainable
from sentibench.models.registry import MODELS
from sentibench.speed.models import hf_config

# Registry name -> its checkpoint's published configuration (shipped with the speedtest).
REAL_CONFIGS: dict[str, Callable[[], Any]] = {
    name: functools.partial(hf_config, name)
    for name, spec in MODELS.items() if spec.family == "hf"}


def real_config(name: str) -> Any:
    """The published configuration of registry model ``name``, with a 2-way head."""
    return REAL_CONFIGS[name]()


def meta_classifier(name: str) -> HFClassifier:
    """Registry model ``name`` as an :class:`HFClassifier` on the meta device (no memory)."""
    from transformers import AutoModelForSequenceClassification

    config = real_config(name)
    with torch.device("meta"):
        hf_model = AutoModelForSequenceClassification.from_config(config)
    return HFClassifier(hf_model, pad_id=int(config.pad_token_id))


def counts(name: str) -> dict[str, int]:
    """Total, backbone and per-mode trainable parameter counts of registry model ``name``."""
    model = meta_classifier(name)
    backbone = getattr(model.hf_model, model.hf_model.base_model_prefix)
    row = {"params": count_parameters(model)[0], "backbone": count_parameters(backbone)[0]}
    for mode in ("all", "last_block", "last_layer"):
        set_trainable(model, mode)
        row[mode] = count_parameters(model)[1]
    return row


def main() -> None:
    names = [name for name, spec in MODELS.items() if spec.family == "hf"]
    header = (f"| {'model':<17}| {'checkpoint':<29}| {'params':>12} | {'backbone':>12} | "
              f"{'last_block':>11} | {'last_layer':>10} |")
    print(header)
    print("|" + "|".join("-" * (len(cell)) for cell in header.split("|")[1:-1]) + "|")
    for name in names:
        row = counts(name)
        print(f"| {name:<17}| {MODELS[name].checkpoint:<29}| {row['params']:>12,} | "
              f"{row['backbone']:>12,} | {row['last_block']:>11,} | {row['last_layer']:>10,} |")


if __name__ == "__main__":
    main()
