"""Resumable runs: model, optimizer, RNG and loop position in safetensors + one JSON.

No pickle: tensors go to safetensors files and everything else (step counters, history,
optimizer hyper-parameters, how the run was configured) to ``state.json``. A checkpoint is
written to a sibling directory and swapped in, so a crash mid-save keeps the previous one.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, load_model, save_file, save_model
from torch import nn

from sentibench.core.errors import SentibenchError
from sentibench.core.fileio import atomic_write_json
from sentibench.engine.config import CHECKPOINT_DIR
from sentibench.engine.state import History, Resume, TrainState

STATE_FILE = "state.json"
BEST_FILE = "best.safetensors"


def _flatten_optimizer(state_dict: dict) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, values in state_dict["state"].items():
        for key, value in values.items():
            if torch.is_tensor(value):
                tensors[f"{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": state_dict["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    for index, values in meta["scalars"].items():
        state.setdefault(int(index), {}).update(values)
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(run_dir: Path, run_spec: dict[str, Any], model: nn.Module,
                    optimizer: torch.optim.Optimizer, state: TrainState,
                    history: History, best: dict[str, torch.Tensor] | None = None) -> Path:
    """Write ``run_dir/checkpoint`` (replacing any previous one only once complete)."""
    final = Path(run_dir) / CHECKPOINT_DIR
    staging = final.with_name(CHECKPOINT_DIR + ".new")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    save_model(model, str(staging / "model.safetensors"))
    opt_tensors, opt_meta = _flatten_optimizer(optimizer.state_dict())
    save_file(opt_tensors, str(staging / "optimizer.safetensors"))
    save_file({"cpu": torch.get_rng_state()}, str(staging / "rng.safetensors"))
    if best:  # --select-best: the weights of the best evaluation so far
        save_file({k: v.contiguous() for k, v in best.items()}, str(staging / BEST_FILE))
    atomic_write_json(staging / STATE_FILE, {
        "run": run_spec, "state": asdict(state), "history": history.to_dict(),
        "optimizer": opt_meta})
    old = final.with_name(CHECKPOINT_DIR + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    staging.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def read_run_spec(run_dir: Path) -> dict[str, Any]:
    """How the interrupted run was configured (to rebuild the same model and data)."""
    path = Path(run_dir) / CHECKPOINT_DIR / STATE_FILE
    if not path.is_file():
        raise SentibenchError(f"{run_dir}: no checkpoint to resume ({path} not found)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))["run"]
    except (json.JSONDecodeError, KeyError) as exc:
        raise SentibenchError(f"{path}: malformed checkpoint state ({exc})") from None


def load_checkpoint(run_dir: Path, model: nn.Module) -> Resume:
    """Load the weights into ``model``; return the optimizer/RNG/loop state to continue."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    meta = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
    device = str(next(model.parameters()).device)
    load_model(model, str(folder / "model.safetensors"), device=device)
    optimizer_state = _unflatten_optimizer(load_file(str(folder / "optimizer.safetensors")),
                                           meta["optimizer"])
    rng = load_file(str(folder / "rng.safetensors"))["cpu"]
    best = load_file(str(folder / BEST_FILE)) if (folder / BEST_FILE).is_file() else None
    return Resume(TrainState(**meta["state"]), History(**meta["history"]), optimizer_state,
                  rng, best)
