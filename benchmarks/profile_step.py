"""Where a training step's time goes: the engine's step with and without CUDA graphs.

For one model of the speedtest (random weights at its real size, synthetic rows of one
length, the engine exactly as a row runs it), per way of stepping: the wall time per step
(median of the timed steps), the GPU's own work per step (the kernels' device time from
torch.profiler, summed), their ratio (how much of the step the GPU is busy), the model
FLOPs utilisation against the device's peak, and the kernels that take the most device
time. Launch-bound steps show a wall time far above the GPU's work.

    python benchmarks/profile_step.py --model gpt2-small --device cuda
    python benchmarks/profile_step.py --model gpt2-small --tiny --device cpu   # the code path
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from dataclasses import replace

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

from sentibench.engine.plan import resolve_device
from sentibench.speed import models
from sentibench.speed.measure import SEED, quiet_engine, speed_config, synthetic_split
from sentibench.speed.peaks import gpu_peak, mfu


def _engine(args: argparse.Namespace, graphs: str):
    sm = models.build(args.model, args.tiny)
    cfg = speed_config(str(args.device), args.precision, args.batch_size, False,
                       cuda_graphs=graphs)
    return sm, quiet_engine(sm.model, cfg, args.seq_len)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(args: argparse.Namespace, graphs: str) -> dict:
    """One fit: ``--warmup`` steps, ``--steps`` timed ones (median wall time), then
    ``--steps`` more under the profiler (the kernels' device time), all the same shape."""
    sm, engine = _engine(args, graphs)
    total = args.warmup + 2 * args.steps
    split = synthetic_split(sm.vocab_size, args.batch_size, args.seq_len, SEED, repeat=total + 2)
    activities = [ProfilerActivity.CPU] + \
        ([ProfilerActivity.CUDA] if engine.device.type == "cuda" else [])
    prof = profile(activities=activities)
    stamps: list[float] = []

    def stamp() -> None:
        _sync(engine.device)
        stamps.append(time.perf_counter())
        if len(stamps) == args.warmup + args.steps + 1:
            prof.__enter__()
        elif len(stamps) == total + 1:
            prof.__exit__(None, None, None)

    engine.on_step = stamp
    engine.cfg = replace(engine.cfg, max_steps=total + 2)
    engine.fit(split, split)
    if len(stamps) < total + 1:
        raise SystemExit(f"only {len(stamps)} steps ran; {total + 1} were needed")
    timed = stamps[args.warmup:args.warmup + args.steps + 1]
    wall = statistics.median(b - a for a, b in itertools.pairwise(timed))
    # kernels only: an operator's own device time repeats its kernels'
    table = [e for e in prof.key_averages() if e.device_type == DeviceType.CUDA]
    device_us = sum(e.self_device_time_total for e in table) / args.steps
    top = sorted(table, key=lambda e: e.self_device_time_total, reverse=True)[:args.top]
    return {"graphs": engine.plan.cuda_graphs, "wall_s": wall, "device_s": device_us / 1e6,
            "flops_per_token": sm.flops_per_token(args.seq_len, train=True),
            "top": [(e.key[:70], e.self_device_time_total / args.steps / 1e3, e.count)
                    for e in top]}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="gpt2-small", help="a speedtest model name")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--top", type=int, default=8, help="kernels listed per way")
    p.add_argument("--tiny", action="store_true", help="toy sizes (CPU check of the script)")
    args = p.parse_args(argv)
    args.device = resolve_device(args.device)
    if args.precision == "auto":
        args.precision = "bf16" if args.device.type == "cuda" else "fp32"
    peak = gpu_peak(torch.cuda.get_device_name(args.device)) \
        if args.device.type == "cuda" else None
    ways = ["off", "on"] if args.device.type == "cuda" else ["off"]
    tokens = args.batch_size * args.seq_len
    print(f"{args.model}, batch {args.batch_size} x {args.seq_len} tokens, {args.precision}, "
          f"{args.device} ({torch.cuda.get_device_name(args.device) if peak else 'no known peak'})")
    for way in ways:
        r = measure(args, way)
        line = (f"CUDA graphs {'on ' if r['graphs'] else 'off'}: {1e3 * r['wall_s']:7.2f} ms "
                f"per step, GPU work {1e3 * r['device_s']:7.2f} ms "
                f"({100 * r['device_s'] / r['wall_s']:.0f} % busy)")
        if peak is not None:
            bf = peak.bf16 if args.precision == "bf16" else peak.fp32
            line += f", MFU {100 * mfu(r['flops_per_token'], tokens / r['wall_s'], bf):.1f} %"
        print(line, flush=True)
        for name, ms, count in r["top"]:
            print(f"    {ms:8.3f} ms/step  {count:6d} calls  {name}")


if __name__ == "__main__":
    sys.exit(main())
