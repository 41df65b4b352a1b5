"""The speedtest's Markdown table and files, and the per-device figures that
``bench --dry-run`` reads back (``<cache>/speedtest/<device>.json``, one entry per model,
a later measurement of a model replacing the earlier one)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from sentibench.core.fileio import atomic_write_json, atomic_write_text, cache_dir
from sentibench.speed.peaks import flops_text

FLOPS_NOTE = ("MFU counts model FLOPs per token: training 6N + 12 d x (attention span summed "
              "over layers), evaluation 2N + 4 d x (the same), N the non-embedding "
              "parameters (PaLM, appendix B; ModernBERT's local layers at their 128-token "
              "window; DeBERTa's relative-position terms not counted)")


def figures_path(device: str) -> Path:
    slug = re.sub(r"[^a-z0-9]+", "-", device.lower()).strip("-")
    return cache_dir() / "speedtest" / f"{slug}.json"


def load_figures(device: str) -> dict[str, Any] | None:
    """The saved figures for ``device`` (as :func:`device_name` spells it), or None."""
    path = figures_path(device)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if data.get("device") == device else None


def save_figures(report: dict[str, Any]) -> Path:
    path = figures_path(report["device"])
    old = load_figures(report["device"]) or {"models": {}}
    merged = {**old["models"], **{e["model"]: {**e, "created": report["created"]}
                                  for e in report["models"]}}
    atomic_write_json(path, {"schema": "sentibench.speedfigures/1", "device": report["device"],
                             "device_type": report["device_type"],
                             "peak_tflops": report["peak_tflops"], "models": merged})
    return path


def _size(count: float) -> str:
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if count >= scale:
            return f"{count / scale:.1f}{unit}"
    return str(int(count))


def _memory(nbytes: int) -> str:
    return f"{nbytes / 2**30:.2f} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:.0f} MiB"


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f} %"


def format_table(report: dict[str, Any]) -> str:
    head = ("| model | precision | params | train tokens/s | train examples/s | step | train "
            "peak mem | train MFU | eval tokens/s | eval examples/s | eval peak mem | eval "
            "MFU |")
    lines = [head, "|:---|:---|" + "---:|" * (head.count("|") - 3)]
    for entry in report["models"]:
        for precision, f in entry["precisions"].items():
            t, e = f["train"], f["eval"]
            lines.append(
                f"| {entry['model']} | {precision} | {_size(entry['params'])} | "
                f"{t['tokens_per_s']:,.0f} | {t['examples_per_s']:,.2f} | "
                f"{t['step_s'] * 1000:,.0f} ms | {_memory(t['peak_memory_bytes'])} | "
                f"{_percent(t['mfu'])} | {e['tokens_per_s']:,.0f} | "
                f"{e['examples_per_s']:,.2f} | {_memory(e['peak_memory_bytes'])} | "
                f"{_percent(e['mfu'])} |")
    return "\n".join(lines)


def format_checks(report: dict[str, Any]) -> str:
    lines = ["| model | check | result | detail |", "|:---|:---|:---|:---|"]
    for entry in report["models"]:
        for c in entry["checks"]:
            word = {True: "pass", False: "**FAIL**", None: "skipped"}[c["passed"]]
            lines.append(f"| {entry['model']} | {c['name']} | {word} | {c['detail']} |")
    return "\n".join(lines)


def format_report(report: dict[str, Any]) -> str:
    first = report["models"][0] if report["models"] else {}
    peaks = ", ".join(f"{p} {flops_text(v)}" for p, v in report["peak_tflops"].items()
                      if v) or "none"
    return "\n".join([
        f"## sentibench speedtest: {report['device']}", "",
        f"Random weights{' at toy sizes (--tiny)' if first.get('tiny') else ' at real sizes'}"
        f", synthetic rows of {first.get('seq_len')} tokens, training batch "
        f"{first.get('batch_size')}, {report['steps']} timed training steps after "
        f"{report['warmup_steps']} untimed, {report['eval_batches']} timed evaluation "
        f"batches, all through sentibench's engine; compile "
        f"{'on' if first.get('compile') else 'off'}.",
        f"Peak for MFU: {peaks} ({report['peak_source']}).",
        f"Peak memory: {report['memory']}. {FLOPS_NOTE}.", "",
        format_table(report), "", "### Checks", "", format_checks(report), "",
        f"Total time {report['seconds']:.1f} s, {report['created']}.",
    ])


def write_outputs(report: dict[str, Any], out: Path) -> list[Path]:
    paths = [Path(out) / "speedtest.md", Path(out) / "speedtest.json"]
    atomic_write_text(paths[0], format_report(report) + "\n")
    atomic_write_json(paths[1], report)
    return paths
