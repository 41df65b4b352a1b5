"""Resumable runs: model, optimizer, RNG and loop position in safetensors + one JSON.

No pickle: tensors go to safetensors files and everything else (step counters, history,
optimizer hyper-parameters, how the run was configured) to ``state.json``. A checkpoint is
written to ``checkpoint.new`` (``state.json`` last) and swapped in through
``checkpoint.old``, so a crash mid-save keeps the previous one: a process killed between
the two renames leaves no ``checkpoint`` but a complete ``checkpoint.new`` beside the old
one, which :func:`checkpoint_folder` reads and ``run.rundir`` settles before the next run.
A damaged file is one line naming it, a full disk one line saying what is kept.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, load_model, save_file, save_model
from torch import nn

from sentibench.core.errors import SentibenchError
from sentibench.core.fileio import PREVIOUS_RUN, DiskFull, atomic_write_json, disk_full
from sentibench.engine.config import CHECKPOINT_DIR
from sentibench.engine.state import History, Resume, TrainState

STATE_FILE = "state.json"
BEST_FILE = "best.safetensors"
NEW, OLD = CHECKPOINT_DIR + ".new", CHECKPOINT_DIR + ".old"  # run.rundir knows these names
_DAMAGE = (SafetensorError, OSError, ValueError, KeyError, TypeError, RuntimeError)
_RESTART = "the run cannot be resumed from it; start it again with --overwrite"


def _flatten_optimizer(state_dict: dict) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, values in state_dict["state"].items():
        for key, value in values.items():
            if torch.is_tensor(value):
                tensors[f"{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(index), {})[key] = value
    # a recorded CUDA graph's groups hold the rate as a tensor and capturable=True: saved as
    # a plain number and False, so the checkpoint resumes anywhere (the graph sets both again)
    groups = [{**group, "capturable": False,
               "lr": float(group["lr"]) if torch.is_tensor(group["lr"]) else group["lr"]}
              if "lr" in group else group for group in state_dict["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


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
    """Write ``run_dir/checkpoint`` (replacing any previous one only once complete).

    A full disk removes the partial ``checkpoint.new`` and says which checkpoint is kept.
    The first checkpoint also ends the need for a run that ``--overwrite`` set aside."""
    final = Path(run_dir) / CHECKPOINT_DIR
    staging = final.with_name(NEW)
    try:
        _write_staging(staging, run_spec, model, optimizer, state, history, best)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if not disk_full(exc):
            raise
        raise DiskFull(final, f"the checkpoint of step {state.global_step} was not written; "
                       + _kept(final)) from None
    old = final.with_name(OLD)
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    staging.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(Path(run_dir) / PREVIOUS_RUN, ignore_errors=True)
    return final


def _kept(final: Path) -> str:
    try:
        step = json.loads((final / STATE_FILE).read_text(encoding="utf-8"))["state"][
            "global_step"]
    except (OSError, ValueError, KeyError, TypeError):
        return "no earlier checkpoint exists"
    return f"the last good checkpoint, of step {step}, is kept: free space, then --resume"


def _write_staging(staging: Path, run_spec: dict[str, Any], model: nn.Module,
                   optimizer: torch.optim.Optimizer, state: TrainState, history: History,
                   best: dict[str, torch.Tensor] | None) -> None:
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    save_model(model, str(staging / "model.safetensors"))
    opt_tensors, opt_meta = _flatten_optimizer(optimizer.state_dict())
    save_file(opt_tensors, str(staging / "optimizer.safetensors"))
    save_file({"cpu": torch.get_rng_state()}, str(staging / "rng.safetensors"))
    if best:  # --select-best: the weights of the best evaluation so far
        save_file({k: v.contiguous() for k, v in best.items()}, str(staging / BEST_FILE))
    atomic_write_json(staging / STATE_FILE, {  # last: its presence marks staging complete
        "run": run_spec, "state": asdict(state), "history": history.to_dict(),
        "optimizer": opt_meta})


def checkpoint_folder(run_dir: Path) -> Path:
    """The complete checkpoint of ``run_dir``: ``checkpoint``, or after a kill between the
    swap's renames the complete ``checkpoint.new`` (else ``checkpoint.old``)."""
    final = Path(run_dir) / CHECKPOINT_DIR
    if final.is_dir() or not final.with_name(OLD).is_dir():
        return final
    staged = final.with_name(NEW)
    return staged if (staged / STATE_FILE).is_file() else final.with_name(OLD)


def read_run_spec(run_dir: Path) -> dict[str, Any]:
    """How the interrupted run was configured (to rebuild the same model and data)."""
    path = checkpoint_folder(run_dir) / STATE_FILE
    if not path.is_file():
        raise SentibenchError(f"{run_dir}: no checkpoint to resume ({path} not found)")
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))["run"]
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise SentibenchError(f"{path}: malformed checkpoint state ({_reason(exc)}); "
                              f"{_RESTART}") from None
    if not isinstance(spec, dict):
        raise SentibenchError(f"{path}: malformed checkpoint state (no run settings); "
                              f"{_RESTART}")
    return spec


def _reason(exc: BaseException) -> str:
    """The exception's type alone: the libraries' texts (byte offsets, Rust debug output)
    help no one decide what to do with a damaged file."""
    return type(exc).__name__


def _read(path: Path, load: Any) -> Any:
    """``load(path)``, or one line naming a missing, truncated or garbage file."""
    if not path.is_file():
        raise SentibenchError(f"{path}: missing from the checkpoint; {_RESTART}")
    try:
        return load(path)
    except _DAMAGE as exc:
        raise SentibenchError(f"{path}: corrupt or truncated checkpoint file ({_reason(exc)}); "
                              f"{_RESTART}") from None


def load_checkpoint(run_dir: Path, model: nn.Module) -> Resume:
    """Load the weights into ``model``; return the optimizer/RNG/loop state to continue."""
    folder = checkpoint_folder(run_dir)
    device = str(next(model.parameters()).device)
    meta = _read(folder / STATE_FILE, lambda p: json.loads(p.read_text(encoding="utf-8")))
    _read(folder / "model.safetensors", lambda p: load_model(model, str(p), device=device))
    optimizer_state = _read(folder / "optimizer.safetensors", lambda p: _unflatten_optimizer(
        load_file(str(p)), meta["optimizer"]))
    rng = _read(folder / "rng.safetensors", lambda p: load_file(str(p))["cpu"])
    best = _read(folder / BEST_FILE, lambda p: load_file(str(p))) \
        if (folder / BEST_FILE).is_file() else None
    return _read(folder / STATE_FILE, lambda p: Resume(
        TrainState(**meta["state"]), History(**meta["history"]), optimizer_state, rng, best))
