"""Loading Hugging Face models quietly: one-line explanations of why a model, tokenizer or
config did not load, and one line (instead of transformers' report) on what did."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sentibench.core.errors import SentibenchError


@contextlib.contextmanager
def hf_errors(source: str, what: str) -> Iterator[None]:
    """Turn loading failures caused by the environment or the input into one-line errors."""
    try:
        yield
    except SentibenchError:
        raise
    except (OSError, ValueError, ImportError, KeyError, json.JSONDecodeError) as exc:
        raise SentibenchError(explain(source, what, exc)) from exc


def explain(source: str, what: str, exc: BaseException) -> str:
    from huggingface_hub import constants
    from huggingface_hub import errors as hub

    chain: list[BaseException] = []
    item: BaseException | None = exc
    while item is not None and item not in chain:
        chain.append(item)
        item = item.__cause__ or item.__context__
    text = " ".join(str(e) for e in chain).lower()

    def has(*types: type) -> bool:
        return any(isinstance(e, types) for e in chain)

    if has(hub.GatedRepoError):
        return (f"{source} is a gated Hub repository: accept its terms on huggingface.co and "
                "log in with `hf auth login`")
    if has(hub.RepositoryNotFoundError) or "not a valid model identifier" in text:
        return (f"{source} is neither a local directory nor a model on the Hugging Face Hub "
                "(private repositories need `hf auth login`)")
    if (has(hub.LocalEntryNotFoundError, hub.OfflineModeIsEnabled)
            or "couldn't connect" in text or "offline mode" in text):
        state = "offline mode is on (HF_HUB_OFFLINE)" if constants.HF_HUB_OFFLINE \
            else "the Hugging Face Hub is unreachable"
        return (f"cannot load {source}: {state} and its files are not in the cache "
                f"{constants.HF_HUB_CACHE}; pass a local model directory instead, or download it "
                "once with network access and then run with HF_HUB_OFFLINE=1")
    missing = missing_packages(text)
    if missing:
        names = " ".join(missing)
        return (f"the {what} of {source} needs the Python package{'s' if len(missing) > 1 else ''}"
                f" {', '.join(missing)}: pip install {names}")
    if "trust_remote_code" in text or "custom code" in text:
        return f"{source} needs custom code from its repository, which sentibench never runs"
    first = next((line.strip() for line in str(exc).splitlines() if line.strip()),
                 type(exc).__name__)
    return f"cannot load the {what} of {source}: {first}"


def missing_packages(text: str) -> list[str]:
    """Optional packages transformers needs for this failure (sentencepiece-model tokenizers)."""
    if not any(word in text for word in ("sentencepiece", "protobuf", "tiktoken", ".model")):
        return []
    from transformers.utils.import_utils import BACKENDS_MAPPING

    return [name for name in ("sentencepiece", "protobuf") if not BACKENDS_MAPPING[name][0]()]


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """transformers' loading bar and its multi-line "LOAD REPORT" (which lists the new head
    as MISSING, as expected) are replaced by :func:`describe_loading`'s one line."""
    from transformers.utils import logging as hf_logging

    verbosity, bar = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bar:
            hf_logging.enable_progress_bar()


def describe_loading(backbone: str, info: dict[str, list]) -> str:
    """One line on what was new or left out when the weights were loaded: the fresh head is
    expected; weights missing from the backbone, or unused, are worth a warning."""
    def names(keys: list) -> str:
        keys = sorted(k if isinstance(k, str) else k[0] for k in keys)
        return ", ".join(keys[:4]) + (f" and {len(keys) - 4} more" if len(keys) > 4 else "")

    missing = list(info.get("missing_keys", []))
    body = [k for k in missing if k.startswith(backbone + ".")]
    head = [k for k in missing if k not in body] + list(info.get("mismatched_keys", []))
    parts = [f"new classification head (randomly initialised): {names(head)}" if head else
             "classification head loaded from the checkpoint"]
    if body:
        parts.append(f"WARNING: {len(body)} backbone weights not in the checkpoint, "
                     f"randomly initialised: {names(body)}")
    return "; ".join(parts)


def check_loaded(path: Path, info: dict[str, Any], meta: dict[str, Any],
                  tokenizer: Any) -> None:
    """The weights must match the config exactly: transformers only warns when a tensor is
    missing (and initialises it at random), unexpected (dropped) or of another shape, which
    is how an edited layer count predicts wrong labels. A tokenizer with another token count
    than the one saved has lost its files (a fallback of a few tokens maps every word to
    [UNK])."""
    for kind in ("missing_keys", "unexpected_keys", "mismatched_keys"):
        keys = [k[0] if isinstance(k, tuple) else k for k in info.get(kind) or []]
        if keys:
            what = kind.replace("_keys", "").replace("mismatched", "of another shape")
            raise SentibenchError(
                f"{path}: the weights do not match config.json: {len(keys)} tensors "
                f"{what} ({', '.join(sorted(keys)[:3])}{', ...' if len(keys) > 3 else ''})")
    saved = meta.get("tokenizer_size")
    if saved is not None and len(tokenizer.hf) != saved:
        raise SentibenchError(f"{path}: the tokenizer has {len(tokenizer.hf):,} tokens where "
                              f"the run saved {saved:,}: its files are missing or wrong")
