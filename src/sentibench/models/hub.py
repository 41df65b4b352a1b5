"""Where model files come from: GPT-2's preset names and Hub repos, downloads through the
Hugging Face cache, local directories in the Hub layout, and JSON reading with one-line
errors. Shared by the GPT-2 model and its tokenizer, which therefore need not import
each other. No torch here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sentibench.core.errors import SentibenchError

# Reference name -> (emb_dim, n_layers, n_heads, Hugging Face Hub repo).
PRESETS: dict[str, tuple[int, int, int, str]] = {
    "gpt2-small (124M)": (768, 12, 12, "openai-community/gpt2"),
    "gpt2-medium (355M)": (1024, 24, 16, "openai-community/gpt2-medium"),
    "gpt2-large (774M)": (1280, 36, 20, "openai-community/gpt2-large"),
    "gpt2-xl (1558M)": (1600, 48, 25, "openai-community/gpt2-xl"),
}
_ALIASES = {"gpt2": "gpt2-small (124M)"}
for _name, (_e, _l, _h, _repo) in PRESETS.items():
    _ALIASES.update({k.lower(): _name for k in (_name, _name.split(" ")[0], _repo)})


def preset_name(name: str) -> str | None:
    """The reference name for any accepted spelling of a preset, or None."""
    return _ALIASES.get(name.strip().lower())


def hub_repo_id(name: str) -> str:
    """The Hub repo of a preset name; any other string is taken as a repo id itself."""
    preset = preset_name(name)
    return PRESETS[preset][3] if preset else name


def download_hub_file(repo_id: str, filename: str) -> Path:
    """A Hub file through the standard HF cache (so ``HF_HUB_OFFLINE=1`` works)."""
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(repo_id, filename))
    except Exception as exc:  # hub, network, cache and validation errors share no base class
        raise SentibenchError(
            f"cannot get {filename} of {repo_id!r} from the HF Hub ({type(exc).__name__}):"
            " the Hub is unreachable or has no such file; pass a local directory with config.json"
            " and model.safetensors instead"
        ) from exc


def model_file(name_or_path: str, filename: str) -> Path:
    local = Path(name_or_path)
    if local.is_dir():
        if not (local / filename).is_file():
            raise SentibenchError(f"{local}: no {filename} (need config.json + model.safetensors)")
        return local / filename
    return download_hub_file(hub_repo_id(name_or_path), filename)


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SentibenchError(f"{path}: cannot read JSON ({exc})") from exc

