"""Hugging Face's ``Trainer`` vs sentibench's engine: the same fine-tuning job, one run.

The "trainer" side is the script a user would otherwise write: ``AutoTokenizer`` and
``AutoModelForSequenceClassification`` from the same checkpoint, a ``datasets.Dataset``
tokenized with ``map`` (truncation to max_length, no padding), ``DataCollatorWithPadding``
(dynamic padding), ``Trainer`` with the engine's settings: seed, batch size, learning rate,
weight decay (Trainer's usual grouping: none on biases and LayerNorm weights), a constant
rate without warm-up, no gradient clipping (the engine drops a last partial batch, Trainer
trains on it: give a multiple of the batch size, as 400 of 8, for the same steps), eval loss on
the engine's monitoring rows (``eval_iter`` batches of train and of validation) after
optimizer steps 1, N+1, 2N+1, ... as the engine logs them; then ``Trainer.predict`` on
train, validation and test. The "engine" side is what ``sentibench train-hf`` runs: the
registry's model, ``encode_splits``, ``Engine.fit`` and ``Engine.predict_logits`` on each
split (no run directory is written, and the token cache is not used). Both start from the
same weights (the head drawn after ``torch.manual_seed(seed)``); they differ only in the
order of the training rows and the dropout masks.

    python benchmarks/engine_vs_trainer.py --model minilm --train 400 --eval 200 --rounds 3

Each side runs in a fresh interpreter, as the script or the command a user would run, and
its time is that whole process's (start-up, imports, model loading, tokenization, training,
evaluations), wall and CPU seconds (user + system, all threads). Like the ``sentibench``
command, the engine's process has OpenMP threads spin briefly, then sleep
(``OMP_WAIT_POLICY=PASSIVE GOMP_SPINCOUNT=10000``) unless the environment chose either,
collects cycles less often and has glibc's malloc keep blocks up to 256 MiB in its heap (see
:mod:`sentibench.core.runtime`); export ``OMP_WAIT_POLICY=PASSIVE GOMP_SPINCOUNT=10000
MALLOC_MMAP_THRESHOLD_=268435456 MALLOC_TRIM_THRESHOLD_=536870912`` to give the Trainer side
the same waits and heap. ``--rounds N`` alternates the sides N times (trainer, engine,
trainer, ...) and prints each round's ratio and the median.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import sentibench
from sentibench.core import runtime

SPLITS = ("train", "validation", "test")
SIDES = ("trainer", "engine")


@dataclass
class JobResult:
    """What one side did: its predicted and true labels per split, how many optimizer steps
    and training rows it ran, and what its process cost (filled in by the parent)."""

    predictions: dict[str, list[int]] = field(default_factory=dict)
    labels: dict[str, list[int]] = field(default_factory=dict)
    steps: int = 0
    examples: int = 0
    wall: float = 0.0
    cpu: float = 0.0

    @property
    def accuracy(self) -> dict[str, float]:
        return {k: sum(p == y for p, y in zip(self.predictions[k], self.labels[k], strict=True))
                / len(self.labels[k]) for k in SPLITS}


@contextlib.contextmanager
def counting(model, result: JobResult) -> Iterator[None]:
    """Counts optimizer steps (any optimizer's, so Trainer's wrapped one too) and the rows
    the model runs on in training mode, the same way for both sides."""
    from torch.optim.optimizer import register_optimizer_step_post_hook

    def on_step(optimizer, args, kwargs) -> None:
        result.steps += 1

    def on_forward(module, args, kwargs) -> None:
        if module.training:
            ids = kwargs.get("input_ids", args[0] if args else None)
            result.examples += int(ids.shape[0])

    handles = [register_optimizer_step_post_hook(on_step),
               model.register_forward_pre_hook(on_forward, with_kwargs=True)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _setup(args: argparse.Namespace):
    """The data slice, its label names and the training settings, as both sides read them."""
    from engine_vs_reference import _data  # the same data slice and preparation

    from sentibench.data.splits import load_splits, read_label_names
    from sentibench.engine import TrainConfig

    data = _data(args)
    frames = {k: v for k, v in load_splits(data).items() if k in SPLITS}
    cfg = TrainConfig(num_epochs=args.epochs, learning_rate=args.lr, seed=args.seed,
                      batch_size=args.batch_size, eval_freq=args.eval_every, device=args.device,
                      cuda_graphs=args.engine_cuda_graphs)
    return frames, read_label_names(data.data_dir), cfg


def monitor_rows(cfg, train_rows: int, val_rows: int) -> tuple[list[int], list[int]]:
    """The rows the engine logs its losses on (its own rule, called on row counts)."""
    from sentibench.engine.monitoring import monitor_indices

    return monitor_indices(cfg, train_rows, val_rows)


def checkpoint_of(model: str) -> str:
    from sentibench.models.registry import MODELS, resolve_checkpoint

    spec = MODELS.get(model)
    return resolve_checkpoint(spec.checkpoint) if spec is not None else model


def trainer_job(args: argparse.Namespace, output_dir: str) -> JobResult:
    """The Trainer script (see the module docstring)."""
    import datasets
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainerCallback,
        TrainingArguments,
        set_seed,
    )

    from sentibench.engine.plan import resolve_device

    frames, labels, cfg = _setup(args)

    class EvaluateAsTheEngine(TrainerCallback):
        """Eval loss after optimizer steps 1, N+1, 2N+1, ... (the engine's steps 0, N, ...)."""

        def on_step_end(self, args, state, control, **kwargs):
            if (state.global_step - 1) % cfg.eval_freq == 0:
                control.should_evaluate = True
            return control

    result = JobResult()
    set_seed(cfg.seed)
    checkpoint = checkpoint_of(args.model)
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    model = AutoModelForSequenceClassification.from_pretrained(
        checkpoint, num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)}, ignore_mismatched_sizes=True)

    def tokenize(batch: dict) -> dict:
        return tokenizer(batch["text"], truncation=True, max_length=args.max_length)

    sets = {k: datasets.Dataset.from_pandas(frames[k][["text", "label"]], preserve_index=False)
            .map(tokenize, batched=True, remove_columns=["text"]) for k in SPLITS}
    train_mon, val_mon = monitor_rows(cfg, len(sets["train"]), len(sets["validation"]))
    device = resolve_device(cfg.device)
    training_args = TrainingArguments(
        output_dir=output_dir, per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size, learning_rate=cfg.learning_rate,
        weight_decay=cfg.weight_decay, lr_scheduler_type="constant", warmup_steps=0,
        max_grad_norm=0.0, num_train_epochs=cfg.num_epochs, seed=cfg.seed,
        eval_strategy="no", save_strategy="no", report_to="none",
        disable_tqdm=True, use_cpu=device.type == "cpu", bf16=device.type == "cuda")
    trainer = Trainer(model=model, args=training_args, train_dataset=sets["train"],
                      eval_dataset={"train": sets["train"].select(train_mon),
                                    "validation": sets["validation"].select(val_mon)},
                      data_collator=DataCollatorWithPadding(tokenizer),
                      processing_class=tokenizer, callbacks=[EvaluateAsTheEngine()])
    with counting(model, result):
        trainer.train()
    for name in SPLITS:
        out = trainer.predict(sets[name])
        result.predictions[name] = out.predictions.argmax(-1).tolist()
        result.labels[name] = out.label_ids.tolist()
    return result


def engine_job(args: argparse.Namespace) -> JobResult:
    """``sentibench train-hf``'s path (experiments.run_neural: registry model, encode_splits,
    Engine.fit, Engine.predict_logits) without writing a run directory."""
    from sentibench.engine import Engine
    from sentibench.models.options import HFArgs
    from sentibench.models.registry import FAMILIES
    from sentibench.run.neural import encode_splits, resolve_max_length

    frames, labels, cfg = _setup(args)
    result = JobResult()
    model_args = HFArgs(model=args.model, trainable_layers="all", max_length=args.max_length)
    built = FAMILIES["hf"].build(model_args, cfg.seed, labels)
    max_length = resolve_max_length(built, frames["train"]["text"].tolist())
    splits = encode_splits(built, frames, max_length)  # no cache dir: tokenized here
    engine = Engine(built.model, cfg, max_length, log=lambda line: None)
    if engine.plan.cuda_graphs:  # replays call no hook: the engine counts its own steps
        def count() -> None:
            result.steps += 1
            result.examples += cfg.batch_size

        engine.on_step = count
        engine.fit(splits["train"], splits["validation"])
    else:
        with counting(built.model.hf_model, result):
            engine.fit(splits["train"], splits["validation"])
    for name in SPLITS:
        result.predictions[name] = engine.predict_logits(splits[name]).argmax(-1).tolist()
        result.labels[name] = splits[name].labels.tolist()
    return result


def child(args: argparse.Namespace) -> None:
    """One side in this fresh process; the result goes to ``args.result`` as JSON."""
    if args.side == "engine":
        runtime.configure()  # what the sentibench CLI does first
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    with tempfile.TemporaryDirectory(prefix="bench-trainer-") as out:
        result = trainer_job(args, out) if args.side == "trainer" else engine_job(args)
    Path(args.result).write_text(json.dumps(asdict(result)), encoding="utf-8")


def run_side(side: str, argv: list[str], workdir: Path) -> JobResult:
    """Runs one side in a fresh interpreter (importing this sentibench); its wall and CPU
    seconds (user + system, all threads) are the whole process's, start-up included."""
    result_file, log_file = workdir / f"{side}.json", workdir / f"{side}.log"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(sentibench.__file__).resolve().parents[1]), env.get("PYTHONPATH", "")])
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter()
    with open(log_file, "w", encoding="utf-8") as log:
        done = subprocess.run([sys.executable, __file__, *argv, "--side", side, "--result",
                               str(result_file)], env=env, stdout=log, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - wall
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        tail = log_file.read_text(encoding="utf-8")[-3000:]
        raise RuntimeError(f"the {side} side failed (exit {done.returncode}):\n{tail}")
    result = JobResult(**json.loads(result_file.read_text(encoding="utf-8")))
    result.wall = wall
    result.cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return result


def result_line(name: str, r: JobResult) -> str:
    acc = " / ".join(f"{100 * r.accuracy[k]:.2f}" for k in SPLITS)
    return (f"{name:>7}: {r.wall:7.1f} s wall, {r.cpu:7.1f} s CPU   accuracy train / val / "
            f"test: {acc} %   ({r.steps} steps, {r.examples} training rows)")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="minilm", help="minilm (or any HF encoder name or "
                                                     "directory)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--train", type=int, default=400, help="training reviews (first N)")
    p.add_argument("--eval", type=int, default=200, help="validation and test reviews")
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--eval-every", type=int, default=50,
                   help="eval loss every N optimizer steps (the engine's eval_freq)")
    p.add_argument("--seed", type=int, default=123)
    p.add_argument("--rounds", type=int, default=1, help="alternate the sides N times")
    p.add_argument("--engine-cuda-graphs", default="auto", choices=["auto", "on", "off"],
                   help="the engine's --cuda-graphs (auto: on for CUDA)")
    p.add_argument("--data-dir", default=str(Path(tempfile.gettempdir()) / "sentibench-imdb"))
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)  # a child process
    p.add_argument("--result", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _assignments(env: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in env.items())


def main(argv: list[str] | None = None) -> dict[str, list[JobResult]]:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.side is not None:
        child(args)
        return {}
    chosen = {k: os.environ[k] for k in runtime.THREAD_WAIT if k in os.environ}
    waits = _assignments(chosen) or "OpenMP's defaults"
    engine_waits = _assignments(chosen or runtime.THREAD_WAIT)  # configure() keeps a choice
    runs: dict[str, list[JobResult]] = {side: [] for side in SIDES}
    with tempfile.TemporaryDirectory(prefix="bench-trainer-") as workdir:
        for round_ in range(args.rounds):
            for side in SIDES:
                runs[side].append(run_side(side, argv, Path(workdir)))
                print(result_line(side, runs[side][-1]), flush=True)
            t, e = runs["trainer"][-1], runs["engine"][-1]
            print(f"round {round_ + 1}: speed-up (trainer / engine) {t.wall / e.wall:.2f}x "
                  f"wall, {t.cpu / e.cpu:.2f}x CPU", flush=True)
    print(f"model {args.model}, all layers, {args.epochs} epoch(s), {args.train} train / "
          f"{args.eval} eval reviews, {args.max_length} tokens, batch {args.batch_size}, lr "
          f"{args.lr}, eval loss every {args.eval_every} steps, device {args.device}, "
          f"{os.cpu_count()} CPUs; OpenMP waits: trainer {waits}, engine {engine_waits}")
    ratios = [t.wall / e.wall for t, e in zip(runs["trainer"], runs["engine"], strict=True)]
    cpu = [t.cpu / e.cpu for t, e in zip(runs["trainer"], runs["engine"], strict=True)]
    print(f"speed-up (trainer / engine): {statistics.median(ratios):.2f}x wall, "
          f"{statistics.median(cpu):.2f}x CPU (medians of {len(ratios)}: "
          f"{', '.join(f'{r:.2f}x' for r in ratios)} wall)")
    return runs


if __name__ == "__main__":
    main()
