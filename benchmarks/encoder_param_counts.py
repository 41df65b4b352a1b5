"""Parameter counts of every registered Hugging Face encoder, without downloading anything.

Each model is built from its published configuration (the ``config.json`` of its Hub
repository, written out below) on the meta device, so no memory is allocated and no weights
are needed; :func:`sentibench.models.encoders.set_trainable` then says what each
``--trainable_layers`` mode trains.

    python benchmarks/encoder_param_counts.py
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from sentibench.models import count_parameters
from sentibench.models.encoders import HFClassifier, set_trainable
from sentibench.models.registry import MODELS


def _bert(**overrides: Any) -> Any:
    from transformers import BertConfig

    base = dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                intermediate_size=3072, max_position_embeddings=512, type_vocab_size=2,
                pad_token_id=0, layer_norm_eps=1e-12)
    return BertConfig(**{**base, **overrides})


def _distilbert() -> Any:
    from transformers import DistilBertConfig

    return DistilBertConfig(vocab_size=30522, dim=768, n_layers=6, n_heads=12, hidden_dim=3072,
                            max_position_embeddings=512, sinusoidal_pos_embds=False,
                            pad_token_id=0)


def _roberta_large() -> Any:
    from transformers import RobertaConfig

    return RobertaConfig(vocab_size=50265, hidden_size=1024, num_hidden_layers=24,
                         num_attention_heads=16, intermediate_size=4096,
                         max_position_embeddings=514, type_vocab_size=1, pad_token_id=1,
                         bos_token_id=0, eos_token_id=2, layer_norm_eps=1e-5)


def _deberta_v3_base() -> Any:
    from transformers import DebertaV2Config

    return DebertaV2Config(vocab_size=128100, hidden_size=768, num_hidden_layers=12,
                           num_attention_heads=12, intermediate_size=3072,
                           max_position_embeddings=512, relative_attention=True,
                           position_buckets=256, norm_rel_ebd="layer_norm", share_att_key=True,
                           pos_att_type=["p2c", "c2p"], layer_norm_eps=1e-7,
                           max_relative_positions=-1, position_biased_input=False,
                           type_vocab_size=0, pooler_hidden_size=768, pooler_dropout=0,
                           pooler_hidden_act="gelu", pad_token_id=0)


def _modernbert(hidden: int, intermediate: int, layers: int, heads: int) -> Any:
    from transformers import ModernBertConfig

    return ModernBertConfig(vocab_size=50368, hidden_size=hidden, intermediate_size=intermediate,
                            num_hidden_layers=layers, num_attention_heads=heads,
                            max_position_embeddings=8192, global_attn_every_n_layers=3,
                            local_attention=128, norm_eps=1e-5, norm_bias=False,
                            attention_bias=False, mlp_bias=False, classifier_bias=False,
                            classifier_pooling="mean", classifier_activation="gelu",
                            pad_token_id=50283, bos_token_id=50281, eos_token_id=50282,
                            cls_token_id=50281, sep_token_id=50282)


# Registry name -> its checkpoint's published configuration.
REAL_CONFIGS: dict[str, Callable[[], Any]] = {
    "distilbert": _distilbert,                                       # distilbert-base-uncased
    "bert": _bert,                                                   # bert-base-uncased
    "bert-large": lambda: _bert(hidden_size=1024, num_hidden_layers=24,
                                num_attention_heads=16, intermediate_size=4096),
    "roberta": _roberta_large,                                       # FacebookAI/roberta-large
    "deberta-v3-base": _deberta_v3_base,                             # microsoft/deberta-v3-base
    "modernbert-base": lambda: _modernbert(768, 1152, 22, 12),       # answerdotai/ModernBERT-base
    "modernbert-large": lambda: _modernbert(1024, 2624, 28, 16),     # answerdotai/ModernBERT-large
    "minilm": lambda: _bert(hidden_size=384, num_hidden_layers=6,    # all-MiniLM-L6-v2
                            num_attention_heads=12, intermediate_size=1536),
}


def real_config(name: str) -> Any:
    """The published configuration of registry model ``name``, with a 2-way head."""
    config = REAL_CONFIGS[name]()
    config.num_labels = 2
    return config


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
