"""``sentibench speedtest``: every model and precision through the engine, checked, tabled.

For each model: the correctness checks on fresh random weights, then per precision a fresh
copy of the same weights is trained for a few timed steps and evaluated on fresh rows, and
finally the one-process DDP check. Results go to stdout (a Markdown table), to
``speedtest.md`` and ``speedtest.json`` in ``--out``, and (real sizes only) to the cache,
keyed by device, where ``bench --dry-run`` reads them.
"""

from __future__ import annotations

import gc
import platform
import re
import time
from pathlib import Path
from typing import Any

import torch

from sentibench.core.errors import SentibenchError
from sentibench.run.results import environment, utc_stamp
from sentibench.speed import checks as chk
from sentibench.speed import models
from sentibench.speed.args import SpeedArgs, split_list
from sentibench.speed.measure import (
    SPEED_LR,
    TINY_LR,
    PeakMemory,
    finite,
    quiet_engine,
    speed_config,
    time_evaluation,
    time_training,
)
from sentibench.speed.peaks import device_peaks
from sentibench.speed.report import format_report, save_figures, write_outputs

DDP_CHECK_LENGTH = 32  # tokens per row in the DDP check: its result does not depend on size


def device_name(device: torch.device) -> str:
    """What the figures are keyed by: the GPU's name, or the CPU's model and thread count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type != "cpu":
        return device.type
    cpu = platform.processor() or platform.machine()
    try:
        text = Path("/proc/cpuinfo").read_text()
        found = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
        cpu = found.group(1).strip() if found else cpu
    except OSError:
        pass
    threads = torch.get_num_threads()
    return f"CPU {cpu}, {threads} thread{'s' if threads != 1 else ''}"


def resolve_precisions(text: str, device: torch.device) -> list[str]:
    if text == "auto":
        return ["bf16", "fp32"] if device.type == "cuda" else ["fp32"]
    wanted = list(dict.fromkeys(split_list(text)))
    if "bf16" in wanted and not chk.bf16_supported(device):
        raise SentibenchError(f"--precision bf16: this {device.type} device has no bf16 autocast")
    return wanted


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _precision_run(name: str, args: SpeedArgs, device: torch.device, precision: str,
                   memory: PeakMemory, peak: float | None
                   ) -> tuple[dict[str, Any], list[chk.Check]]:
    """Time training and evaluation in one precision on fresh weights; its checks."""
    sm = models.build(name, args.tiny)
    cfg = speed_config(str(device), precision, args.batch_size, args.compile,
                       TINY_LR if args.tiny else SPEED_LR, args.cuda_graphs)
    engine = quiet_engine(sm.model, cfg, args.length)
    try:
        train = time_training(engine, sm, args.length, args.steps, args.warmup_steps, memory)
        evaluation, eval_finite = time_evaluation(engine, sm, args.length, args.eval_batches,
                                                  memory)
    except SentibenchError as exc:  # the engine refuses a non-finite training loss
        return {}, [chk.Check(f"{precision}: no NaN/inf", False, str(exc))]
    before, after = train.losses
    found = [chk.Check(f"{precision}: loss falls", after < before,
                       f"{before:.4f} -> {after:.4f} on the repeated batch "
                       f"({args.warmup_steps + args.steps + 1} steps)"),
             chk.Check(f"{precision}: no NaN/inf", finite(train.losses) and eval_finite,
                       "losses before/after training, evaluation logits")]
    return {"train": train.to_dict(peak), "eval": evaluation.to_dict(peak),
            "eval_batch_size": engine.plan.eval_batch_size, "plan": engine.plan.to_dict()}, found


def measure_model(name: str, args: SpeedArgs, device: torch.device, precisions: list[str],
                  peaks: dict[str, float | None], memory: PeakMemory) -> dict[str, Any]:
    """One model's figures per precision and its correctness checks."""
    sm = models.build(name, args.tiny)
    entry: dict[str, Any] = {"model": name, "params": sm.params,
                             "non_embedding_params": sm.non_embedding, "layers": len(sm.windows),
                             "width": sm.width, "seq_len": args.length,
                             "batch_size": args.batch_size, "tiny": args.tiny,
                             "compile": args.compile, "cuda_graphs": args.cuda_graphs,
                             "precisions": {}}
    found = [chk.bf16_vs_fp32(sm, device, args.length)]
    if args.compile:
        found.append(chk.compiled_vs_eager(sm, device, args.length))
    del sm
    if device.type == "cuda" and args.cuda_graphs != "off":
        found.append(chk.graphed_vs_eager(lambda: models.build(name, args.tiny), device,
                                          min(args.length, DDP_CHECK_LENGTH), precisions))
    for precision in precisions:
        _free(device)
        figures, more = _precision_run(name, args, device, precision, memory,
                                       peaks.get(precision))
        found += more
        if figures:
            entry["precisions"][precision] = figures
            print(_progress_line(name, precision, figures), flush=True)
    _free(device)
    found.append(chk.ddp_one_process(lambda: models.build(name, args.tiny), device,
                                     min(args.length, DDP_CHECK_LENGTH)))
    entry["checks"] = [c.to_dict() for c in found]
    for c in found:
        print(f"    {c.word:>7}  {c.name}: {c.detail}", flush=True)
    return entry


def _progress_line(name: str, precision: str, figures: dict[str, Any]) -> str:
    t, e = figures["train"], figures["eval"]
    return (f"    {name} {precision}: train {t['tokens_per_s']:,.0f} tokens/s "
            f"({t['step_s']:.3f} s/step), eval {e['tokens_per_s']:,.0f} tokens/s")


def _measure_all(args: SpeedArgs, device: torch.device) -> dict[str, Any]:
    precisions = resolve_precisions(args.precision, device)
    name = device_name(device)
    print(f"speedtest on {name}: {', '.join(args.model_list)}; precisions "
          f"{', '.join(precisions)}; {args.length} tokens, batch {args.batch_size}"
          f"{'; tiny sizes' if args.tiny else ''}", flush=True)
    peaks, peak_source = device_peaks(device.type, name, precisions, args.peak_tflops)
    memory = PeakMemory(device)
    started = time.perf_counter()
    entries = []
    for index, model_name in enumerate(args.model_list, 1):
        print(f"[{index}/{len(args.model_list)}] {model_name}", flush=True)
        entries.append(measure_model(model_name, args, device, precisions, peaks, memory))
    return {"schema": "sentibench.speedtest/1", "created": utc_stamp(), "device": name,
            "device_type": device.type, "precisions": precisions, "peak_tflops": peaks,
            "peak_source": peak_source, "memory": memory.kind, "steps": args.steps,
            "warmup_steps": args.warmup_steps, "eval_batches": args.eval_batches,
            "seconds": time.perf_counter() - started, "environment": environment(str(device)),
            "models": entries}


def run_speedtest(args: SpeedArgs) -> dict[str, Any]:
    """Measure, write the table and files, save real-size figures; fail if a check failed.

    ``--tiny`` runs on one CPU thread: toy-sized operations are too small to share, and on
    a busy machine the threads only wait for each other (2 s instead of 10 ms per step on
    this project's shared 2-core machine). Its figures are not saved."""
    from sentibench.engine.plan import resolve_device

    device = resolve_device(args.device)
    threads = torch.get_num_threads()
    if args.tiny:
        torch.set_num_threads(1)
    try:
        report = _measure_all(args, device)
    finally:
        torch.set_num_threads(threads)
    paths = write_outputs(report, args.out)
    print(format_report(report))
    print(f"\nWrote {', '.join(str(p) for p in paths)}")
    if not args.tiny:
        print(f"Saved the figures for bench --dry-run: {save_figures(report)}")
    failed = [f"{e['model']}: {c['name']}" for e in report["models"] for c in e["checks"]
              if c["passed"] is False]
    if failed:
        raise SentibenchError(f"{len(failed)} check(s) failed: {'; '.join(failed)}")
    return report
