"""The reference's models with random weights at their real sizes (or toy sizes), and the
FLOPs one token costs in each.

Encoders are built from the ``config.json`` values of their Hub checkpoints, shipped as
package data in ``configs/<registry name>.json`` (``config``: the values, ``tiny``: what
``--tiny`` replaces), through transformers' ``AutoConfig.for_model``; GPT-2 is our own
model at the sizes of :mod:`sentibench.models.hub`. Nothing is downloaded.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from sentibench.core.errors import SentibenchError
from sentibench.models import count_parameters
from sentibench.speed.args import CONFIG_DIR, GPT2_SIZES

TINY_GPT2 = {"emb_dim": 64, "n_layers": 2, "n_heads": 4}
SEED = 123


@dataclass
class SpeedModel:
    """A classifier and the shape figures its FLOPs are counted from."""

    name: str
    model: nn.Module
    params: int  # every parameter
    non_embedding: int  # those the matmuls use: N of 6N per token
    width: int
    windows: list[int | None]  # per layer: attention window (None: the whole sequence)
    vocab_size: int
    pad_id: int

    def spans(self, seq_len: int) -> list[int]:
        """Keys each query attends to, per layer (ModernBERT's local layers: its window)."""
        return [seq_len if w is None else min(seq_len, w) for w in self.windows]

    def flops_per_token(self, seq_len: int, train: bool) -> float:
        """Training 6N + 12 d sum(spans), evaluation 2N + 4 d sum(spans) (PaLM's count,
        appendix B): per layer and token, QK^T and AV are 2 d span multiply-adds forward,
        backward twice that. Causal GPT-2 is counted at full span, as PaLM does."""
        attention = self.width * sum(self.spans(seq_len))
        return 6.0 * self.non_embedding + 12.0 * attention if train \
            else 2.0 * self.non_embedding + 4.0 * attention


def encoder_file(name: str) -> dict[str, Any]:
    path = CONFIG_DIR / f"{name}.json"
    if not path.is_file():
        raise SentibenchError(f"{path}: no shipped configuration for model {name!r}")
    return json.loads(path.read_text(encoding="utf-8"))


def hf_config(name: str, tiny: bool = False) -> Any:
    """The transformers configuration of a shipped encoder, with a 2-way head."""
    from transformers import AutoConfig

    data = encoder_file(name)
    values = {**data["config"], **(data["tiny"] if tiny else {})}
    model_type = values.pop("model_type")
    return AutoConfig.for_model(model_type, num_labels=2, **values)


def _embedding_count(model: nn.Module) -> int:
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Embedding))


def _windows(config: Any, layers: int) -> list[int | None]:
    types = getattr(config, "layer_types", None) or ["full_attention"] * layers
    window = getattr(config, "local_attention", None) or getattr(config, "sliding_window", None)
    return [window if kind == "sliding_attention" else None for kind in types]


def build_gpt2(name: str, tiny: bool, seed: int = SEED) -> SpeedModel:
    from sentibench.models.gpt2 import GPT2, GPTConfig
    from sentibench.models.gpt2_classifier import GPT2Classifier
    from sentibench.models.registry import gpt_checkpoint

    cfg = GPTConfig.from_name(gpt_checkpoint(name))
    cfg = dataclasses.replace(cfg, **TINY_GPT2) if tiny else cfg
    torch.manual_seed(seed)
    model = GPT2Classifier(GPT2(cfg), num_classes=2, pooling="last", seed=seed)
    model.set_trainable("all")
    total = count_parameters(model)[0]
    return SpeedModel(name, model, total, total - _embedding_count(model), cfg.emb_dim,
                      [None] * cfg.n_layers, cfg.vocab_size, model.pad_id)


def build_encoder(name: str, tiny: bool, seed: int = SEED) -> SpeedModel:
    from transformers import AutoModelForSequenceClassification

    from sentibench.models.encoders import HFClassifier, set_trainable
    from sentibench.models.hf_errors import quiet_transformers

    config = hf_config(name, tiny)
    torch.manual_seed(seed)
    with quiet_transformers():
        hf_model = AutoModelForSequenceClassification.from_config(config)
    model = HFClassifier(hf_model, pad_id=int(config.pad_token_id or 0))
    set_trainable(model, "all")
    total = count_parameters(model)[0]
    layers = int(getattr(config, "num_hidden_layers", None) or config.n_layers)
    width = int(getattr(config, "hidden_size", None) or config.dim)
    return SpeedModel(name, model, total, total - _embedding_count(model), width,
                      _windows(config, layers), int(config.vocab_size), model.pad_id)


def build(name: str, tiny: bool, seed: int = SEED) -> SpeedModel:
    """Model ``name`` with random weights (the same weights for the same seed)."""
    return build_gpt2(name, tiny, seed) if name in GPT2_SIZES else build_encoder(name, tiny, seed)


def meta_model(name: str) -> SpeedModel:
    """Model ``name`` at its real size on the meta device: its figures, no memory."""
    with torch.device("meta"):
        return build(name, tiny=False)
