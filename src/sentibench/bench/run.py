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
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from sentibench.bench.presets import PRESETS, PresetRow
from sentibench.core.errors import SentibenchError
from sentibench.core.fileio import atomic_write_json
from sentibench.core.options import Opt, build, check, convert, option, option_map
from sentibench.data.config import DataArgs
from sentibench.engine.config import TrainConfig, check_device
from sentibench.models.registry import MODELS, get_family, spec_for
from sentibench.run.results import (
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
from sentibench.run.rundir import check_target, lock

GLOBAL_KEYS = ("device", "data_dir")  # one value for the whole bench, not per row

@dataclass
class Experiment:
    """One row of the comparison: a model and every setting that differs from defaults."""

    name: str
    model: str
    family: str
    settings: dict[str, Any] = field(default_factory=dict)
    group: str | None = None  # the row's name when it is one of several seeds
    note: str | None = None  # what the row shows (the preset's note)
    reference: dict[str, Any] | None = None  # published figures of exactly this row


def plan_entry(exp: Experiment) -> dict[str, Any]:
    """An experiment as bench.json records it (no empty note / reference keys, so plans
    written before rows had them still match)."""
    return {k: v for k, v in asdict(exp).items()
            if not (k in ("note", "reference") and v is None)}


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


def plan(preset: str, models: list[str] | None, overrides: dict[str, dict[str, Any]],
         seeds: list[int] | None = None) -> list[Experiment]:
    """Resolve names, defaults and overrides into a checked list of experiments; with
    ``seeds``, every row that depends on randomness runs once per seed."""
    rows = preset_rows(preset, models)
    names = [row.row_name for row in rows]
    if len(set(names)) != len(names):
        raise SentibenchError(f"--models lists a row (or two paths with the same final "
                              f"name) twice: {', '.join(names)}")
    known = set(names) | {row.model for row in rows}
    unknown_rows = set(overrides) - known
    if unknown_rows:
        raise SentibenchError(f"override for {sorted(unknown_rows)[0]!r}, which is not in the "
                              f"bench; rows: {', '.join(names)}")
    return with_seeds([_experiment(row, overrides) for row in rows], seeds)


def preset_rows(preset: str, models: list[str] | None) -> list[PresetRow]:
    """The preset's rows, or the ones ``--models`` names: a row by its name, a model by the
    preset's first row of it (keeping that row's settings), anything else as a new row."""
    if preset not in PRESETS:
        raise SentibenchError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
    rows = PRESETS[preset].rows
    if models is None:
        return list(rows)
    by_name = {row.row_name: row for row in rows}
    by_model: dict[str, PresetRow] = {}
    for row in rows:
        by_model.setdefault(row.model, row)
    return [by_name.get(m) or by_model.get(m) or PresetRow(m, name=row_name(m))
            for m in models]


def _experiment(row: PresetRow, overrides: dict[str, dict[str, Any]]) -> Experiment:
    """A preset row with its model's defaults and the overrides (by model, then by row
    name), checked now."""
    name, spec = row.row_name, spec_for(row.model)
    kinds = allowed_settings(spec.family)
    settings = {k: v for k, v in spec.defaults.items() if k in kinds}
    settings.update(row.settings)
    for key, value in {**overrides.get(row.model, {}), **overrides.get(name, {})}.items():
        if key not in kinds:
            raise SentibenchError(f"unknown override key {name}.{key}; "
                                  f"allowed: {', '.join(sorted(kinds))}")
        settings[key] = coerce(name, key, value, kinds[key])
    _check_row(name, spec.name, spec.family, settings)
    reference = asdict(row.reference) if row.reference is not None else None
    return Experiment(name, spec.name, spec.family, settings, note=row.note,
                      reference=reference)


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
        out += [replace(exp, name=f"{exp.name}{SEED_SUFFIX}{seed}", group=exp.name,
                        settings={**exp.settings, "seed": seed}) for seed in seeds]
    return out


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
    from sentibench.data.splits import data_checksums, dataset_name

    plan_path = bench_dir / PLAN_FILE
    wanted = [plan_entry(e) for e in experiments]
    if plan_path.is_file():
        old = json.loads(plan_path.read_text(encoding="utf-8")).get("experiments", [])
        if old == wanted:
            return
        _accept_plan(bench_dir, old, wanted)
    atomic_write_json(plan_path, {
        "schema": "sentibench.bench.run/1", "command": bench.command, "preset": bench.preset,
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
        from sentibench.engine.plan import resolve_device

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
        from sentibench.bench.estimate import print_dry_run
        return print_dry_run(bench, experiments, PRESETS[bench.preset].dataset)
    if bench.ensemble is not None and bench.ensemble < 2:
        raise SentibenchError(f"--ensemble {bench.ensemble}: an ensemble needs two or more "
                              "runs")
    _check_device(bench, experiments)
    from sentibench.data.sources import ensure_prepared

    bench_dir = bench.out or Path("runs") / f"bench-{utc_stamp()}"
    check_target(bench_dir)
    dataset = PRESETS[bench.preset].dataset
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
    from sentibench.serve.ensemble import build_ensemble

    name = f"ensemble-top{bench.ensemble}"
    print(f"\n[+] {name}: the mean of the {bench.ensemble} runs best on validation")
    try:
        build_ensemble(bench_dir, bench.ensemble, bench.command)
    except SentibenchError as exc:
        failures[name] = f"SentibenchError: {exc}"
        print(f"[+] {name} FAILED: {exc}", file=sys.stderr)


def _finish(bench_dir: Path, failures: dict[str, str], total: int) -> None:
    from sentibench.report.build import build_report
    from sentibench.report.tables import format_table, load_rows

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
    preset = old.get("preset", "quick")
    named = {row.row_name for row in PRESETS.get(preset, PRESETS["quick"]).rows}
    keys = {name: name if name in named else e["model"] for name, e in rows.items()}
    overrides = {keys[name]: {k: v for k, v in e["settings"].items()
                              if not (seeds and e.get("group") and k == "seed")}
                 for name, e in rows.items()}
    return BenchArgs(preset=preset, models=list(keys.values()), overrides=overrides,
                     out=out, data_dir=Path(old["data_dir"]), source=old.get("source"),
                     device=old.get("device", "auto"), seeds=seeds,
                     ensemble=old.get("ensemble"), command=command)
