"""``sentibench export``'s options, declared once. Light: ``sentibench --help`` imports it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sentibench.core.options import option, validate


@dataclass
class ExportArgs:
    """What ``sentibench export`` writes."""

    format: str = option("onnx", "the exported format", choices=("onnx",))
    int8: bool = option(False, "also write an int8 copy (onnxruntime dynamic quantization "
                               "of the weight matrices, per output channel), scored with "
                               "its float32 recheck of unsure rows and reported too")
    out: Path | None = option(None, "output folder (default: RUN_DIR/onnx, where predict "
                                    "--backend onnx looks)")
    opset: int = option(18, "ONNX opset version", minimum=13)

    def __post_init__(self) -> None:
        validate(self)
