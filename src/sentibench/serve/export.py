"""``sentibench export``: a saved neural run as an ONNX model, checked before it is kept.

The run's classifier (``logits = model(input_ids, attention_mask)``) goes through
``torch.onnx.export`` (the dynamo exporter) with the batch and the sequence length left
free, optionally with an int8 copy (onnxruntime's dynamic quantization of the weight
MatMuls, per output channel: the embedding tables and attention's activation-by-activation
products stay float32; unsure rows are scored again in float32, as with PyTorch's int8
weights). The exported
model then scores the run's own test rows, and its labels are compared with the labels the
run saved when it was evaluated: the agreement and the exact McNemar p-value (exported
against PyTorch, each right or wrong on the true labels) are printed and recorded, and
below 99.5 % agreement (float32) the export fails and nothing is kept. The result is a
folder ``RUN/onnx/`` (or ``--out``) with ``model.onnx``, ``model.int8.onnx`` and
``export.json``; ``predict --backend onnx`` and ``serve --backend onnx`` run it.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from sentibench.core.errors import SentibenchError, first_line
from sentibench.core.fileio import atomic_write_json, sha256_file
from sentibench.core.metrics import mcnemar_exact
from sentibench.engine.config import PredictConfig
from sentibench.models.registry import get_family
from sentibench.run.results import read_predictions, read_results, recorded_data
from sentibench.serve.export_options import ExportArgs
from sentibench.serve.onnx_files import EXPORT_DIR, INT8_FILE, META_FILE, MODEL_FILE
from sentibench.serve.scoring import LoadedRun, OnnxRun

MIN_AGREEMENT = 0.995  # float32 labels agreeing with PyTorch's, or the export fails


def _neural(run_dir: Path, result: Any) -> None:
    if not get_family(result.kind).engine:
        raise SentibenchError(f"{run_dir} is a {result.kind} run: export covers neural runs "
                              "(a scikit-learn pipeline would need skl2onnx)")


def _export(model: Any, path: Path, opset: int) -> None:
    import logging
    import warnings

    import torch

    for name in ("torch.onnx", "torch.export", "onnxscript", "onnx_ir"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=r"torch\.onnx|torch\.export|onnxscript")

    model.eval()
    ids = torch.randint(5, 100, (2, 16))
    mask = torch.ones_like(ids)
    batch, seq = torch.export.Dim("batch", min=1), torch.export.Dim("seq", min=2, max=8192)
    torch.onnx.export(model, (ids, mask), str(path), input_names=["input_ids",
                      "attention_mask"], output_names=["logits"], opset_version=opset,
                      dynamic_shapes={"input_ids": {0: batch, 1: seq},
                                      "attention_mask": {0: batch, 1: seq}},
                      dynamo=True, optimize=True, verbose=False)


def _test_rows(run_dir: Path, result: Any) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The run's test texts, true ids and the ids PyTorch predicted when it was evaluated."""
    from sentibench.data.splits import load_splits

    data = recorded_data(result)
    texts = load_splits(data)["test"]["text"].astype(str).tolist()
    truth, probs = read_predictions(run_dir, result.labels, "test")
    if len(texts) != len(truth):
        raise SentibenchError(f"{data.data_dir}: its test split has {len(texts)} rows, the run "
                              f"scored {len(truth)}; the data changed since the run")
    return texts, truth, probs.argmax(1)


def _parity(loaded: LoadedRun, rows: tuple[list[str], np.ndarray, np.ndarray],
            model_file: Path, meta: dict, recheck_file: Path | None = None) -> dict[str, Any]:
    """How the exported model labels the run's test rows against PyTorch's labels (an int8
    model with its float32 recheck of unsure rows, as ``predict`` runs it)."""
    texts, truth, torch_ids = rows
    t0 = time.perf_counter()
    ids = OnnxRun(loaded, model_file, meta, recheck_file=recheck_file).proba(texts).argmax(1)
    agreement = float((ids == torch_ids).mean())
    return {"rows": len(texts), "agreement": agreement,
            "accuracy": float((ids == truth).mean()),
            "torch_accuracy": float((torch_ids == truth).mean()),
            "mcnemar_p": mcnemar_exact(ids == truth, torch_ids == truth),
            "seconds": time.perf_counter() - t0}


def export_run(run_dir: Path, args: ExportArgs) -> Path:
    """Export, check, and keep (atomically) ``RUN/onnx`` or ``--out``; its path."""
    run_dir = Path(run_dir)
    result = read_results(run_dir)
    _neural(run_dir, result)
    out = Path(args.out) if args.out is not None else run_dir / EXPORT_DIR
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        # weights verified and loaded once: exported from, and the tokenizer of every check
        loaded = LoadedRun(run_dir, result, "cpu", PredictConfig(windows="off"))
        model = loaded.model
        try:
            _export(model, staging / MODEL_FILE, args.opset)
        except Exception as error:  # the exporter's own errors are many kinds
            raise SentibenchError(f"cannot export {result.model} to ONNX: "
                                  f"{first_line(error)}") from None
        meta = {"source": str(run_dir.resolve()), "model": result.model, "kind": result.kind,
                "pad_id": int(getattr(model, "pad_id", 0)),
                "fixed_padding": bool(getattr(model, "fixed_padding", False)),
                "opset": args.opset, "files": {}}
        rows = _test_rows(run_dir, result)
        checks = {"fp32": _parity(loaded, rows, staging / MODEL_FILE, meta)}
        _report("float32", checks["fp32"])
        if checks["fp32"]["agreement"] < MIN_AGREEMENT:
            raise SentibenchError(f"the ONNX model agrees with PyTorch on "
                                  f"{100 * checks['fp32']['agreement']:.2f} % of the test "
                                  f"labels, under {100 * MIN_AGREEMENT:.1f} %; not kept")
        if args.int8:
            import logging

            from onnxruntime.quantization import QuantType, quantize_dynamic

            root, level = logging.getLogger(), logging.getLogger().level
            root.setLevel(logging.ERROR)  # not its advice to pre-process, on every export
            try:
                quantize_dynamic(str(staging / MODEL_FILE), str(staging / INT8_FILE),
                                 op_types_to_quantize=["MatMul"], per_channel=True,
                                 weight_type=QuantType.QInt8)
            finally:
                root.setLevel(level)
            checks["int8"] = _parity(loaded, rows, staging / INT8_FILE, meta,
                                     staging / MODEL_FILE)
            _report("int8", checks["int8"])
        meta["checks"] = checks
        meta["files"] = {p.name: sha256_file(p) for p in sorted(staging.iterdir())}
        atomic_write_json(staging / META_FILE, meta)
        if out.exists():
            shutil.rmtree(out)
        staging.replace(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(f"Wrote {out} ({', '.join(sorted(p.name for p in out.iterdir()))})")
    return out


def _report(name: str, check: dict[str, Any]) -> None:
    print(f"{name}: {check['rows']:,} test rows in {check['seconds']:.1f} s; labels equal "
          f"PyTorch's on {100 * check['agreement']:.2f} %; accuracy {100 * check['accuracy']:.2f}"
          f" % (PyTorch {100 * check['torch_accuracy']:.2f} %), McNemar p "
          f"{check['mcnemar_p']:.3g}", flush=True)
