"""``sentibench bench --dry-run``: the plan of a bench, each row with an estimated time on
this device, and nothing run (no data prepared, no directory created).

A neural row costs its training tokens (optimizer steps x batch x tokens per example), the
engine's periodic loss evaluations (``eval_iter`` batches of train and validation every
``eval_freq`` steps and at each epoch's end; ``--eval-every`` passes over validation) and
the final evaluation of the train, validation and test splits. Tokens per example is the
row's length limit, capped by the data set's longest example: an upper bound, since the
engine pads each batch only to its own longest row. Seconds per token come from, in order:

1. ``speedtest`` figures saved for this device and model (tokens/s of training and of
   evaluation in the row's precision);
2. FLOPs: 6N (training) and 2N (evaluation) per token plus attention, from the model's real
   size, against the device's peak (known GPU, or a measured CPU matmul) at an assumed MFU.

Partly frozen models (``--trainable_layers``) train at the evaluation rate plus the measured
backward share times the fraction of the work that still needs gradients (stated below);
the feature cache, which can cut such rows much further, is not modelled. A row its family
fits in one call (SetFit) costs the texts its training encodes (the family says how many)
at the training rate, and encoding every split (training twice: the head's fit and its
predictions) at the evaluation rate, both of the speedtest model with the same base
checkpoint, in fp32. scikit-learn rows take a constant scaled by their training rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from sentibench.core.errors import SentibenchError
from sentibench.models.registry import MODELS, get_family, spec_for
from sentibench.speed.args import speed_models
from sentibench.speed.report import load_figures

# Rows of the reference's splits: IMDb 35k/5k/10k, the book's SMS spam 1045/149/300.
DATASET_ROWS = {"imdb": (35_000, 5_000, 10_000), "sms-spam": (1_045, 149, 300)}
# Longest example, in tokens, where it is below every length limit used (the book's SMS spam:
# 120 GPT-2 tokens); IMDb reviews run to thousands, so their limit applies.
DATASET_LONGEST = {"sms-spam": 120}
GPT2_CONTEXT = 1024  # context_length model_context_length / longest IMDb review
# Seconds for a scikit-learn row on the full IMDb training split (35k reviews), from the
# README's quick bench on a 2-core CPU (logreg 19 s, TF-IDF 15 s), scaled by training rows.
SKLEARN_SECONDS = {"dummy": 1.0, "logreg": 20.0, "logreg-tfidf": 16.0}
SKLEARN_DEFAULT = 20.0
# MFU assumed without speedtest figures. CPU: GPT-2 124M trained at 60 % (fp32) and 38 %
# (bf16) of the matmul peak measured in the same speedtest on this project's 2-core machine.
# GPUs: batches of 8 x 256 tokens are small, so kernel launches weigh; a guess until measured.
ASSUMED_MFU = {"cuda": 0.2, "cpu": 0.5, "mps": 0.2}
# The share of training's backward work a --trainable_layers mode keeps (per layer count L).
BACKWARD_SHARE = {"all": lambda layers: 1.0, "last_block": lambda layers: 1.0 / layers,
                  "last_layer": lambda layers: 0.0, "lora": lambda layers: 0.5}


@dataclass
class RowEstimate:
    index: int
    name: str
    model: str
    settings: str
    seconds: float | None
    source: str


def _tokens_per_example(dataset: str, model_args: Any) -> int:
    limit = getattr(model_args, "max_length", None) or model_args.context_length
    limit = GPT2_CONTEXT if not str(limit).isdigit() else int(limit)
    return min(limit, DATASET_LONGEST.get(dataset, limit))


def train_rows(data: Any, full: int) -> int:
    """The training rows a row reads: --max-train-samples, then --train-subset (per class:
    times the classes of its data directory, two where it is not prepared yet)."""
    rows = min(data.max_train_samples or full, full)
    if data.train_subset is None:
        return rows
    from sentibench.data.splits import read_label_names

    classes = len(read_label_names(data.data_dir)) if data.per_class else 1
    return min(rows, data.train_subset * classes)


def split_rows(dataset: str, data: Any) -> tuple[int, int, int]:
    """Rows of train, validation and test a row reads (its sample caps and subset applied)."""
    full_train, full_val, full_test = DATASET_ROWS.get(dataset, DATASET_ROWS["imdb"])
    return (train_rows(data, full_train), min(data.max_eval_samples or full_val, full_val),
            min(data.max_eval_samples or full_test, full_test))


def row_tokens(dataset: str, data: Any, model_args: Any, train: Any) -> dict[str, float]:
    """Training and evaluation tokens of one neural row."""
    from sentibench.engine.config import epochs_for

    n_train, n_val, n_test = split_rows(dataset, data)
    length = _tokens_per_example(dataset, model_args)
    epochs = epochs_for(train, n_train // train.batch_size)
    steps = (n_train // train.batch_size) * epochs
    steps = min(steps, train.max_steps) if train.max_steps else steps
    monitor_rows = 2 * train.eval_iter * train.batch_size * (steps // train.eval_freq
                                                            + epochs)
    every = steps // train.eval_every * n_val if train.eval_every else 0
    return {"train": steps * train.batch_size * length,
            "eval": (monitor_rows + every + n_train + n_val + n_test) * length,
            "length": length, "train_rows": n_train}


class Peaks:
    """The device's peak TFLOP/s per precision, found once (on CPU: measured) when needed."""

    def __init__(self, device: torch.device, name: str) -> None:
        self.device, self.name, self.known = device, name, {}

    def get(self, precision: str) -> float | None:
        from sentibench.speed.peaks import device_peaks

        if precision not in self.known:
            found = device_peaks(self.device.type, self.name, [precision], None)[0]
            self.known[precision] = found[precision]
        return self.known[precision]


def _flops_rates(model: str, length: int, device: torch.device, precision: str,
                 peaks: Peaks) -> tuple[float, float, int, str] | None:
    """(train, eval) tokens/s from FLOPs at the assumed MFU, the model's layer count, and
    the source's wording; None when the peak is unknown."""
    from sentibench.speed.models import meta_model
    from sentibench.speed.peaks import flops_text

    tflops = peaks.get(precision)
    if tflops is None:
        return None
    sm = meta_model(model)
    usable = tflops * 1e12 * ASSUMED_MFU.get(device.type, 0.2)
    return (usable / sm.flops_per_token(length, True), usable / sm.flops_per_token(length, False),
            len(sm.windows), f"FLOPs at an assumed {ASSUMED_MFU.get(device.type, 0.2):.0%} "
                             f"MFU of {flops_text(tflops)} {precision}")


def _measured_rates(figures: dict[str, Any] | None, model: str, precision: str
                    ) -> tuple[float, float, int, str] | None:
    entry = (figures or {}).get("models", {}).get(model)
    if entry is None or precision not in entry["precisions"]:
        return None
    f = entry["precisions"][precision]
    return (f["train"]["tokens_per_s"], f["eval"]["tokens_per_s"], entry["layers"],
            f"speedtest {entry['created'][:8]} ({precision}, {entry['seq_len']} tokens)")


def neural_seconds(exp: Any, dataset: str, device: torch.device,
                   figures: dict[str, Any] | None, peaks: Peaks) -> tuple[float | None, str]:
    from sentibench.bench.plan import row_options
    from sentibench.engine.plan import resolve_precision

    data, model_args, train = row_options(exp.family, exp.model, exp.settings)
    tokens = row_tokens(dataset, data, model_args, train)
    if exp.model not in speed_models():
        return None, "no estimate: not a model the speedtest knows"
    precision = resolve_precision(device, train.precision)
    rates = _measured_rates(figures, exp.model, precision) or \
        _flops_rates(exp.model, tokens["length"], device, precision, peaks)
    if rates is None:
        return None, "no estimate: unknown peak (run speedtest, or pass a known GPU)"
    train_rate, eval_rate, layers, source = rates
    share = BACKWARD_SHARE[model_args.trainable_layers](layers)
    per_train_token = 1 / eval_rate + (1 / train_rate - 1 / eval_rate) * share
    seconds = tokens["train"] * per_train_token + tokens["eval"] / eval_rate
    note = f", backward share {share:.2f}" if share != 1 else ""
    return seconds, f"{source}; {tokens['length']} tokens/example{note}"


def _speed_model(model: str) -> str | None:
    """The speedtest model a row runs at the speed of: itself, or the registered model
    whose base checkpoint it shares (SetFit's MiniLM is the minilm row's)."""
    known = speed_models()
    if model in known:
        return model
    checkpoint = spec_for(model).checkpoint
    return next((name for name in known if name in MODELS
                 and MODELS[name].checkpoint == checkpoint), None)


def fitted_seconds(exp: Any, dataset: str, device: torch.device,
                   figures: dict[str, Any] | None, peaks: Peaks) -> tuple[float | None, str]:
    """A row its family fits in one call: the texts its training encodes, then every
    split encoded once (training twice)."""
    from sentibench.bench.plan import row_options

    family = get_family(exp.family)
    data, model_args, _ = row_options(exp.family, exp.model, exp.settings)
    n_train, n_val, n_test = split_rows(dataset, data)
    speed = _speed_model(exp.model)
    if speed is None or family.train_texts is None:
        return None, "no estimate: no speedtest model shares its base model"
    length = _tokens_per_example(dataset, model_args)
    rates = _measured_rates(figures, speed, "fp32") or \
        _flops_rates(speed, length, device, "fp32", peaks)
    if rates is None:
        return None, "no estimate: unknown peak (run speedtest, or pass a known GPU)"
    train_rate, eval_rate, _, source = rates
    texts = family.train_texts(model_args, n_train)
    seconds = texts * length / train_rate + (2 * n_train + n_val + n_test) * length / eval_rate
    return seconds, f"{source} ({speed}); {texts:,} training texts x {length} tokens"


def estimate_rows(experiments: list[Any], dataset: str, device: torch.device
                  ) -> tuple[list[RowEstimate], str]:
    """An estimate per experiment, and the device's name."""
    from sentibench.speed.run import device_name

    name = device_name(device)
    figures = load_figures(name)
    peaks = Peaks(device, name)
    rows = []
    for index, exp in enumerate(experiments, 1):
        settings = ", ".join(f"{k}={v}" for k, v in exp.settings.items()) or "defaults"
        family = get_family(exp.family)
        if family.engine:
            seconds, source = neural_seconds(exp, dataset, device, figures, peaks)
        elif family.fit is not None:
            seconds, source = fitted_seconds(exp, dataset, device, figures, peaks)
        else:
            from sentibench.bench.plan import row_options

            data = row_options(exp.family, exp.model, exp.settings)[0]
            full = DATASET_ROWS.get(dataset, DATASET_ROWS["imdb"])[0]
            share = train_rows(data, full) / DATASET_ROWS["imdb"][0]
            seconds = SKLEARN_SECONDS.get(exp.model, SKLEARN_DEFAULT) * share
            source = "scikit-learn: README's 2-core CPU time, scaled by training rows"
        rows.append(RowEstimate(index, exp.name, exp.model, settings, seconds, source))
    return rows, name


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def _print_tuning(trials: int, experiments: list[Any], rows: list[RowEstimate]
                  ) -> list[float]:
    """``--tune N``: per tunable row, N trials (each estimated as the row's own run, whose
    searched epochs and batch sizes average out around it) plus its untuned twin."""
    from sentibench.models.registry import spec_for

    per_row: dict[str, list[float]] = {}
    for exp, row in zip(experiments, rows, strict=True):
        if row.seconds is not None and spec_for(exp.model).tunable:
            per_row.setdefault(exp.group or exp.name, []).append(row.seconds)
    if not per_row:
        return []
    print(f"\n--tune {trials}: one study per row on the validation split, then each row "
          "again at its untuned settings (<row>-default):\n")
    print("| row | trials | estimate | untuned twin(s) |")
    print("|:---|---:|---:|---:|")
    extra = []
    for name, seconds in per_row.items():
        search, twins = trials * seconds[0], sum(seconds)
        extra += [search, twins]
        print(f"| {name} | {trials} | {_duration(search)} | {_duration(twins)} |")
    return extra


def print_dry_run(bench: Any, experiments: list[Any], dataset: str) -> None:
    """Print the plan with an estimate per row; run nothing, write nothing."""
    from sentibench.engine.plan import resolve_device

    try:
        device = resolve_device(bench.device)
    except SentibenchError as exc:
        raise SentibenchError(f"--dry-run estimates for this machine's device: {exc}") from None
    rows, name = estimate_rows(experiments, dataset, device)
    print(f"Dry run of preset {bench.preset} ({dataset}) on {name}: nothing is run and no "
          "directory is created.\n")
    print("| # | row | model | settings | estimate | source |")
    print("|---:|:---|:---|:---|---:|:---|")
    for r in rows:
        print(f"| {r.index} | {r.name} | {r.model} | {r.settings} | {_duration(r.seconds)} | "
              f"{r.source} |")
    known = [r.seconds for r in rows if r.seconds is not None]
    unknown = len(rows) - len(known)
    if getattr(bench, "tune", None):
        known += _print_tuning(bench.tune, experiments, rows)
    print(f"\nTotal: about {_duration(sum(known))}"
          + (f" ({unknown} row(s) without an estimate)" if unknown else "")
          + ". Tokens per example are the rows' length limits (an upper bound); "
            "`sentibench speedtest` measures this device for the first source.")
