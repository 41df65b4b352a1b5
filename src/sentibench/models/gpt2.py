"""Our own GPT-2 (nanoGPT-style) and a checked loader for OpenAI's weights in the Hub layout.

The classifier built on it is in ``gpt2_classifier``, the BPE tokenizer in ``gpt2_tokenizer``
(re-exported here as ``load_tokenizer``), and where model files come from in ``hub``.

The model is written out rather than taken from ``transformers`` so that the architecture the
benchmark measures is readable in one file, matches the reference's own implementation, and
loads checkpoints through an explicit, fully checked key map (no pickle, no TF).

Shapes: B batch, T sequence length, E embedding size, H heads, D = E // H, V vocabulary.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from sentibench.core.errors import SentibenchError
from sentibench.models.gpt2_tokenizer import load_tokenizer
from sentibench.models.hub import PRESETS, hub_repo_id, model_file, preset_name, read_json

__all__ = ["GPT2", "GPTConfig", "from_pretrained", "hub_repo_id", "load_tokenizer"]

@dataclass
class GPTConfig:
    """Sizes of a GPT-2 model; the defaults of the first three are those of every OpenAI size."""

    emb_dim: int
    n_layers: int
    n_heads: int
    vocab_size: int = 50257
    context_length: int = 1024
    drop_rate: float = 0.0
    qkv_bias: bool = True
    causal: bool = True  # False: every token attends to every other (book's ablation row 17)

    def __post_init__(self) -> None:
        for name in ("emb_dim", "n_layers", "n_heads", "vocab_size", "context_length"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise SentibenchError(
                    f"GPT-2 config: {name} must be a positive integer, got {value!r}"
                )
        if self.emb_dim % self.n_heads:
            raise SentibenchError(
                f"GPT-2 config: emb_dim {self.emb_dim} is not divisible by n_heads {self.n_heads}"
            )
        if not 0.0 <= self.drop_rate < 1.0:
            raise SentibenchError(f"GPT-2 config: drop_rate {self.drop_rate} is not in [0, 1)")

    @classmethod
    def from_name(cls, name: str, **overrides: Any) -> GPTConfig:
        """A preset by reference name, short name (``gpt2-medium``) or Hub id."""
        preset = preset_name(name)
        if preset is None:
            known = ", ".join(repr(n) for n in PRESETS)
            raise SentibenchError(f"unknown GPT-2 model size {name!r} (known: {known})")
        emb_dim, n_layers, n_heads, _ = PRESETS[preset]
        return cls(emb_dim=emb_dim, n_layers=n_layers, n_heads=n_heads, **overrides)

    @classmethod
    def from_hf_config(cls, hf: dict[str, Any], **overrides: Any) -> GPTConfig:
        """Read a Hugging Face GPT-2 ``config.json``; refuse variants this model does not build."""
        try:
            cfg = cls(emb_dim=hf["n_embd"], n_layers=hf["n_layer"], n_heads=hf["n_head"],
                      vocab_size=hf["vocab_size"], context_length=hf["n_positions"], **overrides)
        except (KeyError, TypeError) as exc:
            raise SentibenchError(f"GPT-2 config.json lacks or mistypes {exc}") from exc
        supported = {"activation_function": ("gelu_new", "gelu_pytorch_tanh"),
                     "n_inner": (None, 4 * cfg.emb_dim), "layer_norm_epsilon": (1e-5,)}
        for key, values in supported.items():
            if hf.get(key, values[0]) not in values:
                raise SentibenchError(f"GPT-2 config: unsupported {key} {hf[key]!r}")
        return cfg


class CausalSelfAttention(nn.Module):
    """Multi-head attention with one fused qkv projection; the causal mask comes from SDPA.

    Without the causal mask (``config.causal`` False) a token also attends to later ones,
    and then padding would be seen too: ``key_mask`` [B,T] (1 = real token) hides it. With
    the causal mask, padding after a token never reaches it, so no mask is needed.
    """

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.n_heads = cfg.n_heads
        self.drop_rate = cfg.drop_rate
        self.causal = cfg.causal
        self.qkv = nn.Linear(cfg.emb_dim, 3 * cfg.emb_dim, bias=cfg.qkv_bias)
        self.proj = nn.Linear(cfg.emb_dim, cfg.emb_dim)
        self.resid_drop = nn.Dropout(cfg.drop_rate)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        B, T, E = x.shape
        q, k, v = (self._heads(t) for t in self.qkv(x).split(E, dim=2))  # 3 x [B,H,T,D]
        dropout_p = self.drop_rate if self.training else 0.0
        causal = self.causal
        mask = None if causal or key_mask is None else key_mask.bool()[:, None, None, :]
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p,
                                           is_causal=causal)
        # y: [B,H,T,D]
        y = y.transpose(1, 2).reshape(B, T, E)  # [B,T,E]
        return self.resid_drop(self.proj(y))

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        """[B,T,E] -> [B,H,T,D] (a view)."""
        B, T, E = t.shape
        return t.view(B, T, self.n_heads, E // self.n_heads).transpose(1, 2)

    def at(self, x: torch.Tensor, index: torch.Tensor,
           key_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The output at one position per row, ``index`` [B]: [B,1,E] from [B,T,E]. Keys and
        values come from every position (the causal mask hides those after ``index``)."""
        B, T, E = x.shape
        qkv = self.qkv(x)  # [B,T,3E]: through the module, so that adapters on it apply
        q = self._heads(qkv[torch.arange(B, device=x.device), index, :E].unsqueeze(1))
        k, v = (self._heads(t) for t in qkv[..., E:].split(E, dim=2))  # 2 x [B,H,T,D]
        if self.causal:
            mask = torch.arange(T, device=x.device) <= index[:, None]  # [B,T]
        else:
            mask = None if key_mask is None else key_mask.bool()
        y = F.scaled_dot_product_attention(  # [B,H,1,D]
            q, k, v, attn_mask=None if mask is None else mask[:, None, None, :],
            dropout_p=self.drop_rate if self.training else 0.0)
        return self.resid_drop(self.proj(y.reshape(B, 1, E)))


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(cfg.emb_dim, 4 * cfg.emb_dim)
        self.proj = nn.Linear(4 * cfg.emb_dim, cfg.emb_dim)
        self.drop = nn.Dropout(cfg.drop_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.proj(F.gelu(self.fc(x), approximate="tanh")))  # [B,T,E]


class Block(nn.Module):
    """Pre-LayerNorm transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.emb_dim, eps=1e-5)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.emb_dim, eps=1e-5)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), key_mask)
        return x + self.mlp(self.ln_2(x))

    def forward_at(self, x: torch.Tensor, index: torch.Tensor,
                   key_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``forward(x)[arange(B), index]`` as [B,1,E], computed at those positions only
        (attention still reads every key): a head that reads one position needs no more
        of the last block."""
        x_at = x[torch.arange(x.shape[0], device=x.device), index].unsqueeze(1)  # [B,1,E]
        x_at = x_at + self.attn.at(self.ln_1(x), index, key_mask)
        return x_at + self.mlp(self.ln_2(x_at))


class GPT2(nn.Module):
    """GPT-2 language model; the LM head shares its Parameter with the token embedding."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.config = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.emb_dim)
        self.wpe = nn.Embedding(cfg.context_length, cfg.emb_dim)
        self.drop = nn.Dropout(cfg.drop_rate)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(cfg.emb_dim, eps=1e-5)
        self.lm_head: nn.Module = nn.Linear(cfg.emb_dim, cfg.vocab_size, bias=False)
        self.tie_weights()
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2: residual projections scaled by depth
            if name.endswith("proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layers))

    def tie_weights(self) -> None:
        self.lm_head.weight = self.wte.weight

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        """GPT-2's init for ``weights="random"``: N(0, 0.02) weights, zero biases."""
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def set_causal(self, causal: bool) -> None:
        """Switch the causal mask on or off in every block (recorded in the config)."""
        self.config.causal = causal
        for block in self.blocks:
            block.attn.causal = causal

    def residual(self, input_ids: torch.Tensor, n_blocks: int | None = None,
                 key_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The residual stream [B,T,E] after the first ``n_blocks`` blocks (default: all);
        ``key_mask`` hides padding from attention when the causal mask is off."""
        T = input_ids.shape[1]
        if T > self.config.context_length:
            raise SentibenchError(
                f"{T} tokens exceed the model's context length {self.config.context_length}"
            )
        pos = torch.arange(T, device=input_ids.device)  # [T]
        x = self.drop(self.wte(input_ids) + self.wpe(pos))  # [B,T,E]
        for block in self.blocks[:n_blocks]:
            x = block(x, key_mask)
        return x

    def hidden_states(self, input_ids: torch.Tensor,
                      key_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Final-LayerNorm outputs [B,T,E] for input ids [B,T] (what any head reads)."""
        return self.ln_f(self.residual(input_ids, key_mask=key_mask))

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.lm_head(self.hidden_states(input_ids))  # [B,T,V]


# ---------------------------------------------------------------- Hugging Face checkpoints

_CONV1D = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")  # HF stores these [in, out]
_BLOCK_MAP = {"ln_1": "ln_1", "attn.c_attn": "attn.qkv", "attn.c_proj": "attn.proj",
              "ln_2": "ln_2", "mlp.c_fc": "mlp.fc", "mlp.c_proj": "mlp.proj"}


_MASK_BUFFER = re.compile(r"h\.\d+\.attn\.(bias|masked_bias)")


def hf_key_map(cfg: GPTConfig) -> dict[str, tuple[str, bool]]:
    """HF GPT2Model key (no ``transformer.`` prefix) -> (our key, transpose?)."""
    keys = {"wte.weight": ("wte.weight", False), "wpe.weight": ("wpe.weight", False),
            "ln_f.weight": ("ln_f.weight", False), "ln_f.bias": ("ln_f.bias", False)}
    for i in range(cfg.n_layers):
        for hf_name, ours in _BLOCK_MAP.items():
            keys[f"h.{i}.{hf_name}.weight"] = (f"blocks.{i}.{ours}.weight", hf_name in _CONV1D)
            keys[f"h.{i}.{hf_name}.bias"] = (f"blocks.{i}.{ours}.bias", False)
    if not cfg.qkv_bias:
        for i in range(cfg.n_layers):
            del keys[f"h.{i}.attn.c_attn.bias"]
    return keys


def _listing(keys: set[str], limit: int = 8) -> str:
    shown = sorted(keys)[:limit]
    return ", ".join(shown) + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")


def check_state_dict(
    state: dict[str, torch.Tensor], expected: dict[str, tuple[int, ...]], source: str
) -> None:
    """Raise one SentibenchError naming every missing, unexpected or wrongly shaped key."""
    problems = []
    if missing := set(expected) - set(state):
        problems.append(f"missing keys: {_listing(missing)}")
    if unexpected := set(state) - set(expected):
        problems.append(f"unexpected keys: {_listing(unexpected)}")
    bad = {f"{k} {tuple(state[k].shape)} != {expected[k]}" for k in set(state) & set(expected)
           if tuple(state[k].shape) != expected[k]}
    if bad:
        problems.append(f"wrong shapes: {_listing(bad)}")
    if problems:
        raise SentibenchError(f"{source}: checkpoint does not fit the model; {'; '.join(problems)}")


def convert_hf_state_dict(hf: dict[str, torch.Tensor], cfg: GPTConfig, source: str = "checkpoint"
                          ) -> dict[str, torch.Tensor]:
    """Map a HF GPT2LMHeadModel/GPT2Model state dict onto our keys (checked, float32)."""
    state: dict[str, torch.Tensor] = {}
    lm_head = None
    for key, tensor in hf.items():
        name = key.removeprefix("transformer.")
        if _MASK_BUFFER.fullmatch(name):
            continue  # causal-mask buffers of old HF versions, not weights
        if name == "lm_head.weight":
            lm_head = tensor
            continue
        if name in state:
            raise SentibenchError(f"{source}: key {name} appears with and without 'transformer.'")
        state[name] = tensor
    keys = hf_key_map(cfg)
    shapes = _meta_shapes(cfg)
    expected = {k: shapes[ours][::-1] if t else shapes[ours] for k, (ours, t) in keys.items()}
    check_state_dict(state, expected, source)
    if lm_head is not None and not torch.equal(lm_head, state["wte.weight"]):
        raise SentibenchError(f"{source}: lm_head.weight differs from wte.weight (untied head)")
    out = {ours: (state[k].t() if t else state[k]).float().contiguous()
           for k, (ours, t) in keys.items()}
    out["lm_head.weight"] = out["wte.weight"]
    return out


def _meta_shapes(cfg: GPTConfig) -> dict[str, tuple[int, ...]]:
    """Our parameter shapes for ``cfg``, from a weightless model on the meta device."""
    with torch.device("meta"):
        model = GPT2(cfg)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(path)
    except Exception as exc:  # safetensors raises its own error type for corrupt files
        raise SentibenchError(f"{path}: cannot read safetensors ({exc})") from exc


def from_pretrained(name_or_path: str | os.PathLike[str], weights: str = "pretrained") -> GPT2:
    """Build a GPT-2 from a preset name, a Hub repo id or a local HF-layout directory.

    ``name_or_path``: ``"gpt2-small (124M)"``-style reference names, ``gpt2``/``gpt2-medium``/
    ``gpt2-large``/``gpt2-xl``, any Hub repo id (``openai-community/gpt2``...), or a directory
    with ``config.json`` + ``model.safetensors`` as written by ``GPT2LMHeadModel.
    save_pretrained``. ``weights="random"`` builds from the config only (presets download
    nothing). Hub files go through the HF cache; a failed download raises SentibenchError.
    """
    if weights not in ("pretrained", "random"):
        raise SentibenchError(f"weights must be 'pretrained' or 'random', got {weights!r}")
    name_or_path = str(name_or_path)
    is_dir = Path(name_or_path).is_dir()
    if weights == "random" and not is_dir and preset_name(name_or_path):
        return GPT2(GPTConfig.from_name(name_or_path))
    cfg = GPTConfig.from_hf_config(read_json(model_file(name_or_path, "config.json")))
    if weights == "random":
        return GPT2(cfg)
    path = model_file(name_or_path, "model.safetensors")
    state = convert_hf_state_dict(load_safetensors(path), cfg, source=str(path))
    with torch.device("meta"):  # no init work or memory for weights about to be replaced
        model = GPT2(cfg)
    model.load_state_dict(state, strict=True, assign=True)
    model.tie_weights()
    return model
