"""GPT-2 as a sequence classifier (the reference's train_gpt.py model), saved and reloaded.

Shapes: B batch, T sequence length, E embedding size, C classes.
"""

from __future__ import annotations

import os
from dataclasses import asdict, fields
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from sentibench.core.errors import SentibenchError
from sentibench.core.fileio import atomic_path, atomic_write_json
from sentibench.models import LAST_BLOCKS, TOKEN_POSITIONS, TRAINABLE_LAYERS
from sentibench.models.gpt2 import GPT2, GPTConfig, check_state_dict, load_safetensors
from sentibench.models.gpt2_tokenizer import GPT2BPETokenizer, tokenizer_from_dir
from sentibench.models.hub import read_json

CLASSIFIER_KIND = "gpt2-classifier"


class GPT2Classifier(nn.Module):
    """GPT-2 whose LM head is replaced by ``Linear(E, num_classes)`` applied to a pooled state.

    ``pooling``: ``"last"`` reads each sequence's true last token (last position where
    ``attention_mask`` is 1); causal attention means later padding never changes it, so no mask
    enters attention. ``"first"`` reads position 0; ``"last_padded"`` reads position -1 of the
    padded batch, the reference's behaviour (``fixed_padding`` then tells the trainer to pad to
    max_length as the reference does). ``average`` means over real tokens instead, except with
    ``"last_padded"``, where it is the reference's plain mean over every position.
    """

    def __init__(self, gpt: GPT2, num_classes: int = 2, pooling: str = "last",
                 average: bool = False, pad_id: int = 50256, seed: int | None = None) -> None:
        super().__init__()
        if pooling not in TOKEN_POSITIONS:
            raise SentibenchError(f"pooling (--trainable_token_pos) must be one of "
                                  f"{', '.join(TOKEN_POSITIONS)}, got {pooling!r}")
        if num_classes < 2:
            raise SentibenchError(f"num_classes must be at least 2, got {num_classes}")
        self.gpt = gpt
        self.num_classes, self.pooling, self.average = num_classes, pooling, bool(average)
        self.pad_id = pad_id
        self.fixed_padding = pooling == "last_padded"
        if seed is not None:
            torch.manual_seed(seed)  # the reference seeds right before building the head
        head = nn.Linear(gpt.config.emb_dim, num_classes)  # built on CPU like the reference
        gpt.lm_head = head.to(gpt.wte.weight.device)  # unties: wte stays the only vocab matrix

    @property
    def head(self) -> nn.Module:
        return self.gpt.lm_head

    def pool(self, hidden: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        """One vector per sequence [B,E] from hidden states [B,T,E] and a mask [B,T]."""
        mask = None if self.pooling == "last_padded" else attention_mask
        if self.average:
            if mask is None:
                return hidden.mean(dim=1)
            m = mask.to(torch.float32).unsqueeze(-1)  # [B,T,1]
            mean = (hidden.float() * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)
            return mean.to(hidden.dtype)
        index = self.read_positions(hidden.shape[:2], attention_mask, hidden.device)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), index]

    def read_positions(self, shape: torch.Size, attention_mask: torch.Tensor | None,
                       device: torch.device) -> torch.Tensor:
        """The position [B] that a non-averaging head reads in each row of a [B,T] batch."""
        B, T = shape
        mask = None if self.pooling == "last_padded" else attention_mask
        if self.pooling == "first" or mask is None:
            return torch.full((B,), 0 if self.pooling == "first" else T - 1, device=device)
        positions = torch.arange(1, T + 1, device=device)  # [T], 0 marks padding below
        return (mask.to(torch.long) * positions).argmax(dim=1)  # [B] last real token

    def _read_last_block(self, x: torch.Tensor,
                         attention_mask: torch.Tensor | None) -> torch.Tensor:
        """Pooled [B,E] from the last block's input [B,T,E]: that block and the final norm at
        the read positions only (``Block.forward_at``), or everywhere when averaging."""
        key_mask = self.key_mask(attention_mask)
        if self.average:
            return self.pool(self.gpt.ln_f(self.gpt.blocks[-1](x, key_mask)), attention_mask)
        index = self.read_positions(x.shape[:2], attention_mask, x.device)
        return self.gpt.ln_f(self.gpt.blocks[-1].forward_at(x, index, key_mask))[:, 0]

    def cache_level(self) -> str | None:
        """Where the engine may cut the model to cache the frozen part (see feature_cache).

        ``"pooled"`` when only the head trains; ``"tokens"`` (the last block's input) when
        only the last block, final norm and head train; None otherwise.
        """
        trainable = {name for name, p in self.named_parameters() if p.requires_grad}
        head = {f"gpt.lm_head.{name}" for name, _ in self.head.named_parameters()}
        if trainable <= head:
            return "pooled"
        if not self.gpt.config.causal:
            return None  # the last block's input would depend on the padding around it
        tail = (f"gpt.blocks.{len(self.gpt.blocks) - 1}.", "gpt.ln_f.")
        if all(name in head or name.startswith(tail) for name in trainable):
            return "tokens"
        return None

    def feature_cache_exact(self) -> bool:
        """Caching is exact when the frozen part is deterministic (GPT-2 here: dropout 0)."""
        return self.cache_level() is not None and self.gpt.config.drop_rate == 0.0

    def features(self, input_ids: torch.Tensor,
                 attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The frozen part's output: pooled [B,E], or the last block's input [B,T,E]."""
        if self.cache_level() == "tokens":
            return self.gpt.residual(input_ids, len(self.gpt.blocks) - 1)
        return self._pooled(input_ids, attention_mask)

    def classify(self, features: torch.Tensor,
                 attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits [B,C] from ``features()``'s output; causal attention ignores later padding."""
        if features.dim() == 3:
            features = self._read_last_block(features, attention_mask)
        return self.head(features)  # [B,C]

    def forward(self, input_ids: torch.Tensor,
                attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self._pooled(input_ids, attention_mask))

    def _pooled(self, input_ids: torch.Tensor,
                attention_mask: torch.Tensor | None) -> torch.Tensor:
        """[B,E]: every block but the last, then :meth:`_read_last_block`."""
        x = self.gpt.residual(input_ids, len(self.gpt.blocks) - 1, self.key_mask(attention_mask))
        return self._read_last_block(x, attention_mask)  # x: [B,T,E]

    def whole_forward(self, input_ids: torch.Tensor,
                      attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Every block at every position, then pooled, as the reference computes: ``forward``
        up to rounding, without the read-position shortcut (benchmarks' reference side)."""
        hidden = self.gpt.hidden_states(input_ids, self.key_mask(attention_mask))  # [B,T,E]
        return self.head(self.pool(hidden, attention_mask))

    def key_mask(self, attention_mask: torch.Tensor | None) -> torch.Tensor | None:
        """What attention must not see: nothing under the causal mask (padding only
        follows a token); without it, the padding, except with ``last_padded``, where the
        book's model attends to its padding as it reads position -1 of it."""
        if self.gpt.config.causal or self.pooling == "last_padded":
            return None
        return attention_mask

    def set_trainable(self, mode: str) -> None:
        """Freeze all, then unfreeze as the reference: head / last block(s) + final norm + head
        / all (``last_two_blocks``: the book's ablation row 4)."""
        if mode not in TRAINABLE_LAYERS:
            raise SentibenchError(
                f"--trainable_layers must be one of {', '.join(TRAINABLE_LAYERS)}, got {mode!r}"
            )
        self.requires_grad_(mode == "all")
        last = LAST_BLOCKS.get(mode, 0)
        if last:
            for block in self.gpt.blocks[-last:]:
                block.requires_grad_(True)
            self.gpt.ln_f.requires_grad_(True)
        self.head.requires_grad_(True)


def save_classifier(model: GPT2Classifier, tokenizer: GPT2BPETokenizer,
                    directory: str | os.PathLike[str]) -> None:
    """Write model.safetensors, tokenizer files and, last, config.json (each atomically).

    config.json is removed first and written last, so an interrupted save leaves a directory
    that :func:`load_classifier` refuses rather than a mix of old and new files.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").unlink(missing_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(directory / "model.safetensors") as tmp:
        save_file(state, str(tmp), metadata={"format": "pt"})
    tokenizer.save(directory)
    config = {"sentibench_kind": CLASSIFIER_KIND, **asdict(model.gpt.config),
              "num_classes": model.num_classes, "pooling": model.pooling,
              "average": model.average, "pad_id": model.pad_id, "tokenizer": tokenizer.name}
    atomic_write_json(directory / "config.json", config)


def load_classifier(directory: str | os.PathLike[str]) -> tuple[GPT2Classifier, GPT2BPETokenizer]:
    """Reload what :func:`save_classifier` wrote (offline: the tokenizer files are inside)."""
    directory = Path(directory)
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise SentibenchError(f"{directory}: no config.json (not a saved classifier, or a save "
                              "was interrupted)")
    config = read_json(config_path)
    if config.get("sentibench_kind") != CLASSIFIER_KIND:
        raise SentibenchError(f"{config_path}: sentibench_kind is not {CLASSIFIER_KIND!r}")
    try:
        cfg = GPTConfig(**{f.name: config[f.name] for f in fields(GPTConfig)
                           if f.name in config or f.name != "causal"})  # older saves: causal
        options = {k: config[k] for k in ("num_classes", "pooling", "average", "pad_id")}
    except KeyError as exc:
        raise SentibenchError(f"{config_path}: missing field {exc}") from exc
    tokenizer = tokenizer_from_dir(directory)
    if tokenizer.name != config.get("tokenizer"):
        raise SentibenchError(f"{directory}: tokenizer files are {tokenizer.name}, the model was "
                              f"saved with {config.get('tokenizer')}")
    with torch.device("meta"):
        model = GPT2Classifier(GPT2(cfg), **options)
    path = directory / "model.safetensors"
    state = load_safetensors(path)
    check_state_dict(state, {k: tuple(v.shape) for k, v in model.state_dict().items()}, str(path))
    model.load_state_dict(state, strict=True, assign=True)
    return model, tokenizer
