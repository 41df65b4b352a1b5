"""The reference's training loop vs sentibench's engine: same model, data slice and settings.

The "reference" side re-creates train_gpt.py / train_bert_hf.py faithfully: every review
tokenized and padded to max_length up front, a Dataset that reads labels with per-item
pandas access, DataLoader batches of 8 (shuffled, drop_last), fp32, loss on 20 batches of
train and validation every 50 steps, accuracy on 20 batches after each epoch, then full
train/validation/test accuracy in batches of 8. The "engine" side is ``Engine.fit`` +
``Engine.evaluate`` with its defaults (dynamic padding, length-sorted evaluation batches,
feature caching where exact; on CPU also length-sorted micro-batches per step, faster
dropout masks and fused AdamW). Both start from identical weights.

    python benchmarks/engine_vs_reference.py --model minilm
    python benchmarks/engine_vs_reference.py --model gpt2 --trainable-layers last_layer \\
        --epochs 3

Prints wall time of each whole job (tokenization, training, all evaluations), the ratio
and the accuracies of both, and for the training part the throughput in reference tokens
(every training row padded to max_length, the work the reference does) per second. With
``--device cuda`` the reference side runs in fp32 as the reference does and the engine with
its CUDA defaults (bf16 autocast, fused AdamW); model FLOPs utilisation is printed when the
GPU's peak is known (``--peak-tflops``, or a GPU sentibench.speed.peaks knows by name).
For example, GPT-2 124M with random weights at the reference's settings:

    python benchmarks/engine_vs_reference.py --model gpt2 --gpt2-layers 12 --gpt2-width 768 \
        --trainable-layers all --device cuda --train 4000 --eval 1000
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from sentibench.data.config import DataArgs, PrepareConfig
from sentibench.data.imdb import prepare
from sentibench.data.splits import load_splits
from sentibench.engine import Engine, TrainConfig
from sentibench.engine.plan import resolve_device
from sentibench.models.options import GPTArgs, HFArgs
from sentibench.models.registry import FAMILIES
from sentibench.run.neural import encode_splits
from sentibench.speed.peaks import gpu_peak

SHARED = Path(os.environ.get("SENTIBENCH_SHARED_DATA",
                             Path(__file__).resolve().parents[2] / "shared" / "data"))


class ReferenceDataset(Dataset):
    """As the reference: ids padded to max_length in __init__, labels read via .iloc."""

    def __init__(self, frame, tokenizer, max_length: int, pad_id: int) -> None:
        self.data = frame
        encoded = [tokenizer.encode_batch([text], max_length)[0] for text in frame["text"]]
        self.encoded = [ids + [pad_id] * (max_length - len(ids)) for ids in encoded]
        self.pad_id = pad_id

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int):
        ids = torch.tensor(self.encoded[index])
        return ids, (ids != self.pad_id).long(), torch.tensor(self.data.iloc[index]["label"])


def _whole(model):
    """The reference's arithmetic: every block at every position (sentibench's models skip
    what their head does not read, and the engine side keeps that)."""
    return getattr(model, "whole_forward", model)


def _loss(model, batch, mask_input: bool) -> torch.Tensor:
    ids, mask, target = batch
    logits = _whole(model)(ids, mask if mask_input else None)
    return torch.nn.functional.cross_entropy(logits, target)


def _loss_loader(model, loader, batches: int, mask_input: bool) -> float:
    total = 0.0
    for i, batch in enumerate(loader):
        if i >= batches:
            break
        total += _loss(model, batch, mask_input).item()
    return total / min(batches, len(loader))


def _accuracy_loader(model, loader, mask_input: bool, batches: int | None = None) -> float:
    model.eval()
    correct = seen = 0
    with torch.no_grad():
        for i, (ids, mask, target) in enumerate(loader):
            if batches is not None and i >= batches:
                break
            pred = _whole(model)(ids, mask if mask_input else None).argmax(-1)
            correct += int((pred == target).sum())
            seen += len(target)
    return correct / seen


class OnDevice:
    """Wraps a loader so batches arrive on ``device`` (the reference's ``.to(device)``)."""

    def __init__(self, loader: DataLoader, device: torch.device) -> None:
        self.loader, self.device = loader, device

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for batch in self.loader:
            yield tuple(t.to(self.device) for t in batch)


def reference_job(built, frames, max_length: int, cfg: TrainConfig, mask_input: bool,
                  device: torch.device, seconds: dict) -> dict:
    """train_classifier_simple + the final full evaluation, as the reference scripts run it."""
    pad_id = int(getattr(built.model, "pad_id", 0))
    torch.manual_seed(cfg.seed)
    sets = {k: ReferenceDataset(f, built.tokenizer, max_length, pad_id) for k, f in frames.items()}
    train_loader = OnDevice(DataLoader(sets["train"], batch_size=8, shuffle=True,
                                       drop_last=True), device)
    loaders = {k: OnDevice(DataLoader(v, batch_size=8), device)
               for k, v in sets.items() if k != "train"}
    model = built.model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=0.1)
    step = -1
    t0 = time.perf_counter()
    for _ in range(cfg.num_epochs):
        model.train()
        for batch in train_loader:
            optimizer.zero_grad()
            loss = _loss(model, batch, mask_input)
            loss.backward()
            optimizer.step()
            step += 1
            if step % cfg.eval_freq == 0:
                model.eval()
                with torch.no_grad():
                    _loss_loader(model, train_loader, cfg.eval_iter, mask_input)
                    _loss_loader(model, loaders["validation"], cfg.eval_iter, mask_input)
                model.train()
        _accuracy_loader(model, train_loader, mask_input, cfg.eval_iter)
        _accuracy_loader(model, loaders["validation"], mask_input, cfg.eval_iter)
    seconds["train"] = time.perf_counter() - t0  # the accuracy calls above synchronise
    train_eval = OnDevice(DataLoader(sets["train"], batch_size=8, shuffle=True,
                                     drop_last=True), device)
    return {"train": _accuracy_loader(model, train_eval, mask_input),
            "validation": _accuracy_loader(model, loaders["validation"], mask_input),
            "test": _accuracy_loader(model, loaders["test"], mask_input)}


def engine_job(built, frames, max_length: int, cfg: TrainConfig, seconds: dict) -> dict:
    splits = encode_splits(built, frames, max_length)  # no cache dir: tokenized here
    engine = Engine(built.model, cfg, max_length, log=lambda line: None)
    t0 = time.perf_counter()
    engine.fit(splits["train"], splits["validation"])  # ends with .item() calls: synchronised
    seconds["train"] = time.perf_counter() - t0
    return engine.evaluate(splits)


def peak_tflops(device: torch.device, given: float | None) -> float | None:
    """``given``, else the dense bf16 peak of a GPU the speedtest knows by name."""
    if given is not None or device.type != "cuda":
        return given
    known = gpu_peak(torch.cuda.get_device_name(device))
    return known.bf16 if known is not None else None


def train_flops_per_token(model: torch.nn.Module, max_length: int) -> float | None:
    """6N + 12 L T E (PaLM's estimate) when every layer trains; None otherwise."""
    params = list(model.parameters())
    if not all(p.requires_grad for p in params):
        return None
    embeddings = sum(m.weight.numel() for m in model.modules()
                     if isinstance(m, torch.nn.Embedding))
    n = sum(p.numel() for p in params) - embeddings
    config = getattr(model, "config", None) or model.gpt.config
    layers = getattr(config, "num_hidden_layers", None) or config.n_layers
    width = getattr(config, "hidden_size", None) or config.emb_dim
    return 6.0 * n + 12.0 * layers * max_length * width


def throughput_line(name: str, tokens: int, seconds: float, flops: float | None,
                    peak: float | None) -> str:
    line = f"{name:>9}: training {tokens / seconds:10,.0f} reference tokens/s"
    if flops is not None and peak is not None:
        mfu = 100 * tokens * flops / seconds / (peak * 1e12)
        line += f", MFU {mfu:.1f} % (counting reference tokens)"
    return line


def _tiny_gpt2_dir(layers: int, width: int) -> Path:
    """A random GPT-2 of a CPU-friendly size with the real BPE files (Hub layout)."""
    directory = Path(tempfile.mkdtemp(prefix="bench-gpt2-"))
    (directory / "config.json").write_text(json.dumps({
        "model_type": "gpt2", "n_layer": layers, "n_head": max(1, width // 64), "n_embd": width,
        "n_positions": 1024, "vocab_size": 50257}))
    for name in ("encoder.json", "vocab.bpe"):
        shutil.copy(SHARED / "gpt2-tokenizer" / name, directory / name)
    return directory


def _build(args: argparse.Namespace):
    if args.model == "gpt2":
        source = args.gpt2_dir or str(_tiny_gpt2_dir(args.gpt2_layers, args.gpt2_width))
        model_args = GPTArgs(model_size=source, weights="random",
                             trainable_layers=args.trainable_layers,
                             trainable_token_pos="last_padded", context_length=str(args.max_length))
        return lambda: FAMILIES["gpt2"].build(model_args, args.seed), False
    model_args = HFArgs(model=args.model, trainable_layers=args.trainable_layers,
                        max_length=args.max_length)
    return lambda: FAMILIES["hf"].build(model_args, args.seed), True


def _data(args: argparse.Namespace) -> DataArgs:
    data_dir = Path(args.data_dir)
    if not (data_dir / "test.csv").is_file():
        prepare(PrepareConfig(source=str(SHARED / "aclImdb_v1_labeled.tar.gz"), data_dir=data_dir))
    return DataArgs(data_dir, args.train, args.eval)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="minilm", help="minilm (or any HF encoder name), or gpt2")
    p.add_argument("--trainable-layers", default="all", choices=["all", "last_block", "last_layer"])
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--train", type=int, default=1000, help="training reviews (first N)")
    p.add_argument("--eval", type=int, default=500, help="validation and test reviews")
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--seed", type=int, default=123)
    p.add_argument("--group-by-length", action="store_true",
                   help="engine side only: length-grouped training batches (sentibench's flag)")
    p.add_argument("--gpt2-dir", default=None, help="GPT-2 directory (default: a random one)")
    p.add_argument("--gpt2-layers", type=int, default=6)
    p.add_argument("--gpt2-width", type=int, default=384)
    p.add_argument("--data-dir", default=str(Path(tempfile.gettempdir()) / "sentibench-imdb"))
    p.add_argument("--device", default="auto", help="auto (cuda if present), cpu or cuda")
    p.add_argument("--engine-precision", default="auto", choices=["auto", "fp32", "bf16"],
                   help="engine side only (auto: bf16 on CUDA, fp32 on CPU); the reference "
                        "side is always fp32")
    p.add_argument("--engine-cuda-graphs", default="auto", choices=["auto", "on", "off"],
                   help="engine side only: its --cuda-graphs (auto: on for CUDA)")
    p.add_argument("--peak-tflops", type=float, default=None,
                   help="the device's peak TFLOP/s for MFU (default: known GPUs only)")
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    frames = load_splits(_data(args))
    build, mask_input = _build(args)
    cfg = TrainConfig(num_epochs=args.epochs, learning_rate=args.lr, seed=args.seed,
                      device=str(device), precision="fp32", cuda_graphs="off")
    engine_cfg = dataclasses.replace(cfg, group_by_length=args.group_by_length,
                                     precision=args.engine_precision,
                                     cuda_graphs=args.engine_cuda_graphs)
    timings, accuracy, train_seconds = {}, {}, {}
    jobs = {"reference": lambda b, sec: reference_job(b, frames, args.max_length, cfg,
                                                      mask_input, device, sec),
            "engine": lambda b, sec: engine_job(b, frames, args.max_length, engine_cfg, sec)}
    flops = None
    for name, job in jobs.items():
        built = build()
        flops = train_flops_per_token(built.model, args.max_length)
        train_seconds[name] = {}
        t0 = time.perf_counter()
        accuracy[name] = job(built, train_seconds[name])
        timings[name] = time.perf_counter() - t0
        acc = " / ".join(f"{100 * accuracy[name][k]:.2f}" for k in ("train", "validation", "test"))
        print(f"{name:>9}: {timings[name]:8.1f} s   accuracy train / val / test: {acc} %",
              flush=True)
    tokens = args.epochs * (min(args.train, len(frames["train"])) // 8) * 8 * args.max_length
    peak = peak_tflops(device, args.peak_tflops)
    for name in jobs:
        print(throughput_line(name, tokens, train_seconds[name]["train"], flops, peak))
    print(f"model {args.model}, trainable {args.trainable_layers}, {args.epochs} epoch(s), "
          f"{args.train} train / {args.eval} eval reviews, {args.max_length} tokens, "
          f"device {device} ({torch.get_num_threads()} CPU threads), engine precision "
          f"{args.engine_precision}, group_by_length={args.group_by_length}, CUDA graphs "
          f"{args.engine_cuda_graphs}")
    print(f"speed-up (reference / engine): {timings['reference'] / timings['engine']:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
