"""The last encoder block computed for the first token only, where the head reads no other.

A sequence classifier of the BERT family (BERT, RoBERTa, MiniLM, ELECTRA, ...) classifies
from the first token's final hidden state. The last block's outputs at the other positions
are computed and thrown away: its queries, attention output, output projection and
feed-forward network at T - 1 of T positions, about a seventh of the arithmetic of a
6-block MiniLM, in the forward pass and again in the backward pass. Only its keys and values
need every position. :func:`first_token_forward` runs that block for the first position
alone and returns ``[B, 1, E]``; what the head sees, and so every logit and gradient, is
the same up to float rounding (training-mode dropout in that block then draws masks for one
position instead of T, so a run's later masks differ, as they would under another seed).

Nothing here is told which models qualify. :func:`shortcut_is_exact` looks for the BERT
layout in the last block of the backbone and then *checks* the shortcut: the logits of a
small random batch, with padding, must come out the same both ways, so a head that pools
over all tokens (ModernBERT's ``mean``), a block of another layout (DistilBERT, DeBERTa) or
an architecture that changes in a later transformers release keeps the whole block.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

_PROBE_SHAPE = (2, 7)  # two rows of seven tokens, the second with three padding tokens
_PROBE_TOLERANCE = 1e-4  # relative to the logits' size; rounding is ~1e-7 in float32
_LAYOUT = ("attention.self.query", "attention.self.key", "attention.self.value",
           "attention.output", "intermediate", "output")


def first_token_forward(block: nn.Module, hidden_states: torch.Tensor,
                        attention_mask: torch.Tensor | None = None, *args: Any,
                        **kwargs: Any) -> torch.Tensor:
    """A BERT-layout block's output at the first position: ``[B, 1, E]`` from ``[B, T, E]``.

    Anything beyond a plain encoder call (cross-attention inputs, a key/value cache, a mask
    that is not ``None`` or 4-D, e.g. flash attention's ``[B, T]``) runs the whole block."""
    encoder_states = args[0] if args else kwargs.get("encoder_hidden_states")
    plain = (encoder_states is None and kwargs.get("past_key_values") is None
             and (attention_mask is None or attention_mask.dim() == 4))
    if not plain:
        return type(block).forward(block, hidden_states, attention_mask, *args, **kwargs)
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
    from transformers.models.bert.modeling_bert import eager_attention_forward

    attention = block.attention.self
    batch = hidden_states.shape[0]
    first = hidden_states[:, :1]  # [B, 1, E]
    heads = (batch, -1, attention.num_attention_heads, attention.attention_head_size)
    query = attention.query(first).view(heads).transpose(1, 2)  # [B, H, 1, D]
    key = attention.key(hidden_states).view(heads).transpose(1, 2)  # [B, H, T, D]
    value = attention.value(hidden_states).view(heads).transpose(1, 2)
    if attention_mask is not None:
        attention_mask = attention_mask[:, :, :1]  # [B, 1 or H, 1, T]: the first query's row
    attend = ALL_ATTENTION_FUNCTIONS.get_interface(attention.config._attn_implementation,
                                                   eager_attention_forward)
    context, _ = attend(attention, query, key, value, attention_mask,
                        dropout=attention.dropout.p if attention.training else 0.0,
                        scaling=attention.scaling)
    attended = block.attention.output(context.reshape(batch, 1, -1), first)  # [B, 1, E]
    return block.output(block.intermediate(attended), attended)


def _has_layout(block: nn.Module) -> bool:
    for path in _LAYOUT:
        try:
            block.get_submodule(path)
        except AttributeError:
            return False
    attention = block.get_submodule("attention.self")
    return all(hasattr(attention, name) for name in
               ("num_attention_heads", "attention_head_size", "scaling", "config", "dropout"))


@contextlib.contextmanager
def shortened(block: nn.Module | None) -> Iterator[None]:
    """Within the block, ``block`` computes its first position only (``None``: no change).

    The switch is an instance attribute, so parameter names, saved weights and the class are
    untouched. Calls from several threads may overlap: one that finds the switch already
    removed runs the whole block, whose first position is the same."""
    if block is None or torch.compiler.is_compiling():
        yield
        return
    block.forward = functools.partial(first_token_forward, block)
    try:
        yield
    finally:
        block.__dict__.pop("forward", None)


def shortcut_is_exact(forward: Callable[..., torch.Tensor], block: nn.Module, vocab_size: int,
                      pad_id: int) -> bool:
    """Whether ``block`` has the BERT layout and ``forward(ids, mask)``'s logits stay the
    same when it computes the first position only. Call it in eval mode; it runs without
    gradients on a fixed random batch (its own generator: the global RNG is untouched)."""
    if not _has_layout(block):
        return False
    parameter = next(block.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(min(5, vocab_size - 1), vocab_size, _PROBE_SHAPE, generator=generator)
    mask = torch.ones(_PROBE_SHAPE, dtype=torch.long)
    mask[1, -3:] = 0
    ids[1, -3:] = pad_id
    ids, mask = ids.to(device), mask.to(device)
    try:
        with torch.no_grad():
            whole = forward(ids, mask)
            with shortened(block):
                first = forward(ids, mask)
    except (RuntimeError, TypeError, ValueError, IndexError, AttributeError):
        return False  # a layout that only looked like BERT's
    if first.shape != whole.shape:
        return False
    scale = max(1.0, float(whole.abs().max()))
    return float((first - whole).abs().max()) <= _PROBE_TOLERANCE * scale
