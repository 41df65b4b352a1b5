"""A Hugging Face tokenizer behind the engine's ``encode_batch`` / ``pad_id`` / ``name``,
with the length checks and the truncation rules (head, tail, head+tail)."""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sentibench.core.errors import SentibenchError
from sentibench.models.truncation import HEAD, Truncation

_UNLIMITED = 1_000_000  # tokenizers without a length limit report about 1e30


class HFTokenizer:
    """A Hugging Face tokenizer behind the engine's ``encode_batch`` / ``pad_id`` / ``name``.

    ``name`` is ``hf:<name_or_path>:<16 hex>`` where the hex is a sha256 of the tokenizer's full
    serialisation (vocabulary, normaliser, special-token template; runtime truncation/padding
    state excluded), so it changes whenever the token ids could. ``model_max_length`` is the
    tokenizer's limit (512 for BERT/RoBERTa) or None when it declares none.
    """

    def __init__(self, tokenizer: Any, source: str | None = None) -> None:
        self.hf = tokenizer
        self.source = str(source or tokenizer.name_or_path)
        if tokenizer.pad_token_id is None:
            if tokenizer.eos_token is None:
                raise SentibenchError(f"the tokenizer of {self.source} has no padding or "
                                      "end-of-sequence token, so batches cannot be padded")
            tokenizer.pad_token = tokenizer.eos_token  # decoder-only checkpoints (GPT-2 style)
        self.pad_id = int(tokenizer.pad_token_id)
        self.name = f"hf:{self.source}:{_fingerprint(tokenizer)[:16]}"
        limit = getattr(tokenizer, "model_max_length", None)
        self.model_max_length = int(limit) if limit and 0 < limit < _UNLIMITED else None
        self.num_special_tokens = int(tokenizer.num_special_tokens_to_add())

    def __len__(self) -> int:
        return len(self.hf)

    def encode_batch(self, texts: Sequence[str], max_length: int | None,
                     truncation: Truncation = HEAD) -> list[list[int]]:
        """Ids with the model's special tokens, at most ``max_length`` of them (None: no
        limit); ``truncation`` chooses which text tokens fill the budget."""
        if max_length is not None:
            if max_length <= self.num_special_tokens:
                raise SentibenchError(f"max_length must exceed the {self.num_special_tokens} "
                                      f"special tokens of {self.source}, got {max_length}")
            if self.model_max_length is not None and max_length > self.model_max_length:
                raise SentibenchError(f"max_length {max_length} exceeds the "
                                      f"{self.model_max_length} tokens {self.source} accepts")
        texts = list(texts)
        if not texts:
            return []
        if max_length is not None and truncation.kind != "head":
            content = self.hf(texts, add_special_tokens=False, truncation=False, padding=False,
                              return_attention_mask=False, return_token_type_ids=False,
                              verbose=False)["input_ids"]
            budget = max_length - self.num_special_tokens
            prefix, suffix = self.special_frame
            return [[*prefix, *truncation.keep(ids, budget), *suffix] for ids in content]
        encoded = self.hf(texts, truncation=max_length is not None, max_length=max_length,
                          padding=False, add_special_tokens=True, return_attention_mask=False,
                          return_token_type_ids=False, verbose=False)
        return [list(ids) for ids in encoded["input_ids"]]

    @functools.cached_property
    def special_frame(self) -> tuple[list[int], list[int]]:
        """The special ids the tokenizer puts before and after one text's ids, read off the
        encoding of a sample text with and without them (once per tokenizer)."""
        sample = "a"
        plain = self.hf([sample], add_special_tokens=False)["input_ids"][0]
        full = self.hf([sample], add_special_tokens=True)["input_ids"][0]
        for start in range(len(full) - len(plain) + 1):
            if full[start:start + len(plain)] == plain:
                return list(full[:start]), list(full[start + len(plain):])
        raise SentibenchError(f"{self.source}: cannot tell where its special tokens go; use "
                              "--truncation head")

    def save(self, directory: str | os.PathLike[str]) -> None:
        """``save_pretrained`` into ``directory`` without the runtime truncation state."""
        backend = getattr(self.hf, "backend_tokenizer", None)
        if backend is not None:
            backend.no_truncation()
            backend.no_padding()
        Path(directory).mkdir(parents=True, exist_ok=True)
        self.hf.save_pretrained(str(directory))

    def __repr__(self) -> str:
        return f"HFTokenizer(name={self.name!r}, pad_id={self.pad_id})"


def _fingerprint(tokenizer: Any) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        state = json.loads(backend.to_str())
        state.pop("truncation", None)
        state.pop("padding", None)
    else:  # a pure-Python tokenizer: its vocabulary and special tokens
        state = {"vocab": sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1]),
                 "special": tokenizer.all_special_tokens,
                 "lower": getattr(tokenizer, "do_lower_case", None)}
    payload = json.dumps([type(tokenizer).__name__, state], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()
