"""Glue for a neural run: data -> registry-built model -> engine -> saved run directory.

Both ``train-gpt`` and ``train-hf`` (and ``bench``) go through :func:`run_neural`, so
every neural row of the comparison is produced by the same code path.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import shutil
import signal
import sys
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from sentibench.core.errors import SentibenchError
from sentibench.core.fileio import DiskFull, atomic_path, cache_dir
from sentibench.core.options import to_dict
from sentibench.data.config import DataArgs
from sentibench.data.splits import (
    check_trainable,
    class_weights,
    data_checksums,
    load_splits,
    read_label_names,
)
from sentibench.engine.batching import EncodedSplit, TextEncoder, encode_split
from sentibench.engine.checkpoint import load_checkpoint, read_run_spec, save_checkpoint
from sentibench.engine.config import CHECKPOINT_DIR, TrainConfig
from sentibench.engine.plan import resolve_device
from sentibench.engine.training import Engine
from sentibench.engine.windows import encode_windows
from sentibench.models import count_parameters
from sentibench.models.lora import apply_lora, merge_lora
from sentibench.models.registry import BuiltModel, get_family
from sentibench.models.truncation import HEAD, Truncation
from sentibench.run.fingerprint import base_model_files, check_same_inputs, data_inputs
from sentibench.run.integrity import model_files
from sentibench.run.results import (
    RunArgs,
    RunResult,
    default_run_dir,
    format_accuracy_lines,
    run_result,
    save_run_files,
    send_to_trackers,
    utc_now_iso,
)
from sentibench.run.rundir import run_directory
from sentibench.track.options import TrackArgs
from sentibench.track.send import LiveRun


def resolve_max_length(built: BuiltModel, train_texts: list[str]) -> int:
    """An integer length, the longest training example, or the model's limit.

    A length asked for by number beyond the model's limit is an error (its position
    embeddings end there); the option's default and the longest training example are cut
    to the limit, with a note."""
    length = built.max_length
    if length == "longest_training_example":
        ids = built.tokenizer.encode_batch(train_texts, None)
        longest = max(len(x) for x in ids)
        if longest > built.model_max_length:
            print(f"note: the longest training example has {longest} tokens, more than the "
                  f"model's {built.model_max_length}; using {built.model_max_length}")
        return min(longest, built.model_max_length)
    length = int(length)
    if length > built.model_max_length and length == built.default_length:
        print(f"note: the default length {length} is more than the model's "
              f"{built.model_max_length} tokens; using {built.model_max_length}")
        return built.model_max_length
    if length > built.model_max_length:
        raise SentibenchError(f"{built.length_flag} {length} exceeds the "
                              f"{built.model_max_length} tokens this model accepts (its "
                              "position embeddings end there); use at most "
                              f"{built.model_max_length}, or --eval-windows to read "
                              "longer texts")
    return length


def _cache_path(cache_dir: Path, tokenizer_name: str, max_length: int | None, csv_sha: str,
                texts: list[str], truncation: Truncation = HEAD) -> Path:
    """The entry of exactly these texts: keyed by their own digest as well as the CSV's,
    since one CSV gives many splits of one size (``--max-train-samples`` takes the first
    rows, ``--train-subset`` draws any of them), and a key by size alone handed one
    subset's token ids to another's labels."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8", "surrogatepass"))
        digest.update(b"\0")
    cut = "" if truncation == HEAD else f"|{truncation.key}"
    key = hashlib.sha256(f"{tokenizer_name}|{max_length}|{csv_sha}|{len(texts)}|"
                         f"{digest.hexdigest()}{cut}".encode()).hexdigest()
    return cache_dir / f"{key[:32]}.npz"


def cached_encode(tokenizer: TextEncoder, frame: pd.DataFrame, max_length: int | None,
                  csv_sha: str | None, cache_dir: Path | None,
                  truncation: Truncation = HEAD) -> EncodedSplit:
    """Tokenize a split once; later runs with the same tokenizer, length and data reuse it.

    The cache only saves time, so it never stops a run: an entry that cannot be read
    (truncated, garbage, not matching the split) is rebuilt, and one that cannot be
    written (a full disk) is skipped, each with a one-line note naming the file."""
    labels, texts = frame["label"].tolist(), frame["text"].tolist()
    if cache_dir is None or csv_sha is None:
        return encode_split(tokenizer, texts, labels, max_length, truncation)
    path = _cache_path(cache_dir, tokenizer.name, max_length, csv_sha, texts, truncation)
    if path.is_file():
        try:
            return EncodedSplit(_read_cache(path, len(frame)),
                                torch.as_tensor(labels, dtype=torch.long))
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            print(f"note: {path}: unreadable token cache entry; rebuilding it")
    split = encode_split(tokenizer, texts, labels, max_length, truncation)
    offsets = np.cumsum([0, *(len(x) for x in split.ids)], dtype=np.int64)
    flat = np.fromiter((t for row in split.ids for t in row), dtype=np.int32, count=offsets[-1])
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, ids=flat, offsets=offsets)
    except DiskFull:
        print(f"note: {path}: no space left on device; the token ids are not cached")
    return split


def _read_cache(path: Path, rows: int) -> list[list[int]]:
    """The token ids of a cache entry, checked against the split it stands for."""
    with np.load(path, allow_pickle=False) as stored:
        flat, offsets = stored["ids"].tolist(), stored["offsets"].tolist()
    if len(offsets) != rows + 1 or offsets[0] != 0 or offsets[-1] != len(flat) or \
            any(b < a for a, b in zip(offsets[:-1], offsets[1:], strict=True)):
        raise ValueError("offsets do not match the split")
    return [flat[a:b] for a, b in zip(offsets[:-1], offsets[1:], strict=True)]


def encode_splits(built: BuiltModel, frames: dict[str, pd.DataFrame], max_length: int,
                  data_dir: Path | None = None, truncation: Truncation = HEAD,
                  sums: dict[str, str] | None = None) -> dict[str, EncodedSplit]:
    """Token ids of every split, cached in ``<cache>/tokens`` by the CSVs' checksums
    (``sums``, when the caller has them already)."""
    if sums is None:
        sums = data_checksums(data_dir) if data_dir is not None else {}
    tokens = cache_dir() / "tokens" if data_dir is not None else None
    return {name: cached_encode(built.tokenizer, frame, max_length, sums.get(f"{name}.csv"),
                                tokens, truncation)
            for name, frame in frames.items()}


def run_neural(name: str, family: str, model_args: Any, train_cfg: TrainConfig,
               data: DataArgs, run: RunArgs, resume_from: Path | None = None,
               on_evaluation: Callable[[int, float, float], None] | None = None
               ) -> RunResult:
    """Train, evaluate and save one neural model; return (and write) its results.

    Everything that can be checked (data, device, the run directory) is checked before
    the directory is created or the model loaded. Training's end is a checkpoint, so an
    interruption during the final evaluation loses nothing: ``--resume`` finishes it.
    """
    started, t0 = utc_now_iso(), time.perf_counter()
    run_dir = Path(resume_from or run.out or default_run_dir(name))
    frames = load_splits(data)
    labels = read_label_names(data.data_dir)
    check_trainable(frames, data, train_cfg.batch_size * train_cfg.accumulation_steps)
    resolve_device(train_cfg.device)
    now = data_inputs(data.data_dir)  # hashed once: checked, recorded, keys the token cache
    recorded = _resumed_inputs(run_dir, data, now) if resume_from else None
    with run_directory(run_dir, overwrite=run.overwrite, resume=resume_from is not None), \
            contextlib.closing(LiveRun(run_dir, run.track)) as live:
        built, inputs, lora = _build(family, model_args, train_cfg, labels, now,
                                     (run_dir, recorded, data.data_dir))
        max_length = resolve_max_length(built, frames["train"]["text"].tolist())
        splits = encode_splits(built, frames, max_length, data.data_dir,
                               train_cfg.truncation_rule, now["sha256"])
        weights = class_weights(data, frames["train"], len(labels))
        engine = Engine(built.model, train_cfg, max_length, class_weights=weights)
        engine.on_evaluation = on_evaluation
        if engine.dist.is_main and run.track.trackers:  # TensorBoard's curves as they grow
            engine.on_record = lambda grown: live.record(grown.to_dict(), engine.pace.to_dict())
        engine.log(engine.plan.describe())
        spec = {"name": name, "family": family, "model_args": asdict(model_args),
                "train": train_cfg.to_dict(), "command": run.command, "data": to_dict(data),
                "inputs": inputs}
        engine.checkpointer = functools.partial(save_checkpoint, run_dir, spec)
        resume = load_checkpoint(run_dir, built.model) if resume_from else None
        t_train = time.perf_counter()
        with _resume_hint(run_dir, family):
            with _stop_between_steps(engine):
                history = engine.fit(splits["train"], splits["validation"], resume)
            train_seconds = time.perf_counter() - t_train
            engine.log(f"Training completed in {train_seconds / 60:.2f} minutes.")
            engine.log("\nEvaluating on the full datasets ...\n")
            logits = final_logits(engine, built, splits, frames, max_length, train_cfg)
        scored = {k: (v.labels.numpy(), logits[k].argmax(-1).numpy())
                  for k, v in splits.items()}
        result = run_result(
            name, family, run, data, labels, scored, (train_seconds, time.perf_counter() - t0),
            {**built.config, "max_length": max_length, "train": train_cfg.to_dict(),
             "resolved": engine.plan.to_dict(), "class_weights": weights},
            str(engine.device),
            count_parameters(built.model), started, history.to_dict(), engine.pace.to_dict())
        engine.log(format_accuracy_lines(result.accuracy))
        if engine.dist.is_main:
            if lora:  # a saved run is a plain model: the adapters folded in
                merge_lora(built.model)
            _save_run(run_dir, built, splits, logits, result, engine)
            send_to_trackers(run_dir, result, run, live)
    return result


def _build(family: str, model_args: Any, train_cfg: TrainConfig, labels: list[str],
           now: dict[str, Any], resumed: tuple[Path, dict[str, Any] | None, Path]
           ) -> tuple[BuiltModel, dict[str, Any], bool]:
    """The model, with LoRA adapters when asked; the inputs to record (data and the base
    model's files); whether it has adapters. ``resumed``: the run directory, the inputs its
    checkpoint recorded (None: a new run) and the data directory, for the check that a
    resumed run still reads the model it started from."""
    run_dir, recorded, data_dir = resumed
    built = get_family(family).build(model_args, train_cfg.seed, labels)
    inputs = {**now, "model": base_model_files(built.config.get("checkpoint"))}
    if recorded is not None and recorded.get("model") is not None:
        check_same_inputs(f"the checkpoint in {run_dir}", recorded, inputs, data_dir,
                          _RESTART_HINT)
    built.config["model_sha256"] = inputs["model"]
    lora = getattr(model_args, "trainable_layers", None) == "lora"
    if lora:
        adapted = apply_lora(built.model, train_cfg.lora_rank, train_cfg.lora_alpha,
                             train_cfg.lora_suffixes)
        built.config["lora_layers"] = len(adapted)
    return built, inputs, lora


_RESTART_HINT = ("resuming would train on two data sets; start the run again with "
                 "--overwrite, or give a new --out")


def _resumed_inputs(run_dir: Path, data: DataArgs, now: dict[str, Any]
                    ) -> dict[str, Any] | None:
    """The inputs an interrupted run recorded, checked against the data now (the model is
    checked once built); None for checkpoints written before inputs were recorded."""
    recorded = read_run_spec(run_dir).get("inputs")
    if recorded is None:
        return None
    check_same_inputs(f"the checkpoint in {run_dir}", {**recorded, "model": None},
                      now, data.data_dir, _RESTART_HINT)
    return recorded


def final_logits(engine: Engine, built: BuiltModel, splits: dict[str, EncodedSplit],
                 frames: dict[str, pd.DataFrame], max_length: int,
                 cfg: TrainConfig) -> dict[str, torch.Tensor]:
    """Every split's logits after training: of its truncated inputs, or with
    ``--eval-windows`` the mean over windows that cover each whole review."""
    if not cfg.eval_windows:
        return {k: engine.predict_logits(v, progress=f"eval {k}") for k, v in splits.items()}
    out = {}
    for name, split in splits.items():
        windows = encode_windows(built.tokenizer, frames[name]["text"].tolist(),
                                 split.labels.tolist(), max_length, cfg.window_stride)
        out[name] = windows.average(engine.predict_logits(windows.split,
                                                          progress=f"eval {name} (windows)"))
    return out


def _save_run(run_dir: Path, built: BuiltModel, splits: dict[str, EncodedSplit],
              logits: dict[str, torch.Tensor], result: RunResult, engine: Engine) -> None:
    """Model and predictions first, results.json last (it marks the run finished), then
    the checkpoint is no longer needed. A full disk keeps the checkpoint, which
    ``--resume`` turns into a finished run (evaluating again, nothing trained again)."""
    try:
        built.save(run_dir)
        result.files = model_files(run_dir)
        path = save_run_files(run_dir, result, {
            split: (splits[split].labels.numpy(),
                    torch.softmax(logits[split].float(), dim=-1).numpy())
            for split in splits})
    except DiskFull as exc:
        raise DiskFull(exc.path, f"the run is not finished; its checkpoint is kept: free "
                       f"space, then sentibench {get_family(result.kind).command} --resume "
                       f"{run_dir}") from None
    for name in (CHECKPOINT_DIR, *(f"{CHECKPOINT_DIR}.{s}" for s in ("new", "old"))):
        shutil.rmtree(run_dir / name, ignore_errors=True)
    engine.log(f"Saved the model and {path}")


def resume_neural(run_dir: Path, track: TrackArgs | None = None) -> RunResult:
    """Continue an interrupted run from its checkpoint, with its original settings (the
    trackers are this command's: where a run is reported is not one of its settings)."""
    spec = read_run_spec(run_dir)
    family = get_family(spec["family"])
    model_args = family.args(**spec["model_args"])
    print(f"Resuming {spec['name']} from {run_dir}")
    return run_neural(spec["name"], family.name, model_args, TrainConfig(**spec["train"]),
                      DataArgs(**spec["data"]),
                      RunArgs(out=Path(run_dir), command=spec["command"],
                              track=track or TrackArgs()),
                      resume_from=run_dir)


@contextlib.contextmanager
def _resume_hint(run_dir: Path, family: str) -> Iterator[None]:
    """After an interruption that left a checkpoint, say how to continue."""
    try:
        yield
    except KeyboardInterrupt:
        if (run_dir / CHECKPOINT_DIR).is_dir():
            command = get_family(family).command
            print(f"Interrupted; the checkpoint in {run_dir} keeps the work. Continue with: "
                  f"sentibench {command} --resume {run_dir}", file=sys.stderr)
        raise


@contextlib.contextmanager
def _stop_between_steps(engine: Engine) -> Iterator[None]:
    """Ctrl-C / SIGTERM ask the engine to stop after the current step (then it checkpoints).

    Interrupting in the middle of an optimizer step would save half-updated weights; a
    second signal interrupts at once.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        if engine.stop_requested:
            raise KeyboardInterrupt
        engine.stop_requested = True

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old_handler in previous.items():
            signal.signal(sig, old_handler)
    if engine.stop_requested:  # asked after the last step: stop now, the end is saved
        raise KeyboardInterrupt
