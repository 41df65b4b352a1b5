"""The reference's training loop vs sentibench's engine: same model, data slice and settings.

The "reference" side re-creates train_gpt.py / train_bert_hf.py faithfully: every review
tokenized and padded to max_length up front, a Dataset that reads labels with per-item
pandas access, DataLoader batches of 8 (shuffled, drop_last), fp32, loss on 20 batches of
train and validation every 50 steps, accuracy on 20 batches after each epoch, then full
train/validation/test accuracy in batches of 8. The "engine" side is ``Engine.fit`` +
``Engine.evaluate`` with its defaults (dynamic padding, length-sorted evaluation in
batches of 64, feature caching where exact). Both start from identical weights.

    python benchmarks/engine_vs_reference.py --model minilm
    python benchmarks/engine_vs_reference.py --model gpt2 --trainable-layers last_layer \\
        --epochs 3

Prints wall time of each whole job (tokenization, training, all evaluations), the ratio
and the accuracies of both.
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

from sentibench.config import DataArgs
from sentibench.data import PrepareConfig, load_splits, prepare
from sentibench.experiments import encode_splits
from sentibench.models.registry import FAMILIES, GPTArgs, HFArgs
from sentibench.training import Engine, TrainConfig

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


def _loss(model, batch, mask_input: bool) -> torch.Tensor:
    ids, mask, target = batch
    return torch.nn.functional.cross_entropy(model(ids, mask if mask_input else None), target)


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
            pred = model(ids, mask if mask_input else None).argmax(-1)
            correct += int((pred == target).sum())
            seen += len(target)
    return correct / seen


def reference_job(built, frames, max_length: int, cfg: TrainConfig, mask_input: bool) -> dict:
    """train_classifier_simple + the final full evaluation, as the reference scripts run it."""
    pad_id = int(getattr(built.model, "pad_id", 0))
    torch.manual_seed(cfg.seed)
    sets = {k: ReferenceDataset(f, built.tokenizer, max_length, pad_id) for k, f in frames.items()}
    train_loader = DataLoader(sets["train"], batch_size=8, shuffle=True, drop_last=True)
    loaders = {k: DataLoader(v, batch_size=8) for k, v in sets.items() if k != "train"}
    model = built.model
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=0.1)
    step = -1
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
    train_eval = DataLoader(sets["train"], batch_size=8, shuffle=True, drop_last=True)
    return {"train": _accuracy_loader(model, train_eval, mask_input),
            "validation": _accuracy_loader(model, loaders["validation"], mask_input),
            "test": _accuracy_loader(model, loaders["test"], mask_input)}


def engine_job(built, frames, max_length: int, cfg: TrainConfig) -> dict:
    splits = encode_splits(built, frames, max_length)  # no cache dir: tokenized here
    engine = Engine(built.model, cfg, max_length, log=lambda line: None)
    engine.fit(splits["train"], splits["validation"])
    return engine.evaluate(splits)


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
        return lambda: FAMILIES["gpt2"](model_args, args.seed), False
    model_args = HFArgs(model=args.model, trainable_layers=args.trainable_layers,
                        max_length=args.max_length)
    return lambda: FAMILIES["hf"](model_args, args.seed), True


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
    args = p.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    frames = load_splits(_data(args))
    build, mask_input = _build(args)
    cfg = TrainConfig(num_epochs=args.epochs, learning_rate=args.lr, seed=args.seed,
                      device="cpu")
    engine_cfg = dataclasses.replace(cfg, group_by_length=args.group_by_length)
    timings, accuracy = {}, {}
    for name, job in (("reference", lambda b: reference_job(b, frames, args.max_length, cfg,
                                                             mask_input)),
                      ("engine", lambda b: engine_job(b, frames, args.max_length, engine_cfg))):
        built = build()
        t0 = time.perf_counter()
        accuracy[name] = job(built)
        timings[name] = time.perf_counter() - t0
        acc = " / ".join(f"{100 * accuracy[name][k]:.2f}" for k in ("train", "validation", "test"))
        print(f"{name:>9}: {timings[name]:8.1f} s   accuracy train / val / test: {acc} %",
              flush=True)
    print(f"model {args.model}, trainable {args.trainable_layers}, {args.epochs} epoch(s), "
          f"{args.train} train / {args.eval} eval reviews, {args.max_length} tokens, "
          f"{torch.get_num_threads()} threads, engine group_by_length={args.group_by_length}")
    print(f"speed-up (reference / engine): {timings['reference'] / timings['engine']:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
