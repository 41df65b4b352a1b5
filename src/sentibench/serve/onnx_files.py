"""Where ``sentibench export`` keeps a run's ONNX model, and reading it back checked (the
scorer and the exporter both need this; neither imports the other for it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sentibench.core.errors import SentibenchError
from sentibench.core.fileio import sha256_file

EXPORT_DIR, MODEL_FILE, INT8_FILE, META_FILE = "onnx", "model.onnx", "model.int8.onnx", \
    "export.json"


def read_export(run_dir: Path, int8: bool) -> tuple[Path, dict[str, Any]]:
    """The exported model file of a run (checked against export.json) and its record."""
    folder = Path(run_dir) / EXPORT_DIR
    meta_path = folder / META_FILE
    if not meta_path.is_file():
        raise SentibenchError(f"{run_dir}: no ONNX export ({meta_path} is missing); run "
                              f"`sentibench export {run_dir}` first")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    name = INT8_FILE if int8 else MODEL_FILE
    if name not in meta.get("files", {}):
        raise SentibenchError(f"{folder}: no {name}; export with --int8 for --quantize int8")
    for part, digest in meta["files"].items():  # the model and its external weights
        path = folder / part
        if part.startswith(name) and (not path.is_file() or sha256_file(path) != digest):
            raise SentibenchError(f"{path}: missing or changed since it was exported; "
                                  "export again")
    return folder / name, meta
