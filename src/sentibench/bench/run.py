"""``sentibench bench``: run every row of a plan in its own directory, then report.

The plan (:mod:`sentibench.bench.plan`) is written to ``bench.json`` before anything runs,
so an interrupted bench resumes (completed rows are skipped, an interrupted neural row
continues from its checkpoint) and ``--rerun`` repeats it exactly.
"""

from __future__ import annotations

import gc
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from sentibench.bench.plan import (
    BenchArgs,
    Experiment,
    check_ensemble,
    plan_entry,
    row_options,
    row_tracking,
    takes_device,
)
from sentibench.bench.presets import PRESETS
from sentibench.bench.sizes import check_sizes
from sentibench.core.errors import SentibenchError
from sentibench.core.fileio import atomic_write_json
from sentibench.engine.config import CHECKPOINT_DIR, check_device
from sentibench.models.registry import get_family
from sentibench.run.fingerprint import (
    base_model_files,
    check_same_inputs,
    data_inputs,
    recorded_inputs,
)
from sentibench.run.results import (
    FAILURES_FILE,
    NOT_ROWS,
    PLAN_FILE,
    RESULTS_FILE,
    TUNING_DIR,
    RunArgs,
    environment,
    format_accuracy_lines,
    read_results,
    safe_name,
    send_to_trackers,
    utc_stamp,
)
from sentibench.run.rundir import check_target, lock
from sentibench.run.runner import resumable, resume_row, run_row
from sentibench.track.send import STATE_FILE as TRACKING_STATE


def _run_one(exp: Experiment, run_dir: Path, bench: BenchArgs) -> None:
    """Build the row's options from its settings and let its family run it."""
    data, model_args, train = row_options(exp.family, exp.model, exp.settings,
                                          bench.data_dir, bench.device)
    result = run_row(exp.model, exp.family, model_args, train, data,
                     RunArgs(out=run_dir, overwrite=True, command=bench.command,
                             track=row_tracking(bench.track, run_dir.name, exp.settings)))
    if not get_family(exp.family).engine:  # the engine prints these lines itself
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


def _row_dirs(bench_dir: Path, experiments: list[Experiment]) -> list[Path]:
    """The run directories a bench directory holds: this plan's rows, the ensemble, the
    untuned twins of tuned rows, and the trials of its tuning studies."""
    rows = {bench_dir / safe_name(e.name) for e in experiments}
    rows |= {p for p in bench_dir.iterdir() if p.is_dir() and not p.name.startswith(".")
             and p.name not in NOT_ROWS}
    return sorted(rows) + sorted(bench_dir.glob(f"{TUNING_DIR}/*/trial-*"))


def _discard_rows(bench_dir: Path, experiments: list[Experiment]) -> None:
    """--overwrite: remove the rows' run directories (finished or interrupted) and the
    tuning studies, all made from what the bench held before."""
    for run_dir in _row_dirs(bench_dir, experiments):
        if run_dir.is_dir():
            shutil.rmtree(run_dir)
    shutil.rmtree(bench_dir / TUNING_DIR, ignore_errors=True)
    (bench_dir / FAILURES_FILE).unlink(missing_ok=True)
    (bench_dir / TRACKING_STATE).unlink(missing_ok=True)  # a new bench: a new parent run


def _check_inputs(bench_dir: Path, bench: BenchArgs, experiments: list[Experiment],
                  now: dict[str, Any]) -> None:
    """Finished and interrupted rows must have been made from the data (``now``: its
    :func:`data_inputs`) and local base model the bench would use now; else one error
    naming the row and what changed."""
    hint = ("use --overwrite to run every row again on what is there now, or give a new "
            "--out")
    for run_dir in _row_dirs(bench_dir, experiments):
        found = _recorded_inputs(run_dir)
        if found is None:
            continue
        recorded, source = found
        current = now if recorded.get("model") is None else \
            {**now, "model": base_model_files(source) or {}}
        check_same_inputs(f"{run_dir}", recorded, current, bench.data_dir, hint)


def _recorded_inputs(run_dir: Path) -> tuple[dict[str, Any], str | None] | None:
    """What a finished row's results.json, or an interrupted row's checkpoint, records,
    and the base model's directory where the model was recorded."""
    if (run_dir / RESULTS_FILE).is_file():
        try:
            result = read_results(run_dir)
        except SentibenchError:
            return None  # unreadable: not a finished row, run again
        recorded = recorded_inputs(result.data, result.labels, result.config)
        return recorded, result.config.get("checkpoint")
    if (run_dir / CHECKPOINT_DIR / "state.json").is_file():
        from sentibench.engine.checkpoint import read_run_spec

        inputs = read_run_spec(run_dir).get("inputs")
        return None if inputs is None else ({**inputs, "model": None}, None)  # resume checks
    return None


def _finished(run_dir: Path) -> bool:
    """A row is finished when its results.json reads back (a damaged one runs again)."""
    try:
        read_results(run_dir)
    except SentibenchError:
        return False
    return True


def _write_plan(bench_dir: Path, bench: BenchArgs, experiments: list[Experiment],
                now: dict[str, Any]) -> None:
    from sentibench.data.splits import dataset_name

    plan_path = bench_dir / PLAN_FILE
    wanted = [plan_entry(e) for e in experiments]
    if plan_path.is_file():  # the rows' inputs were checked: only the plan may differ
        before = json.loads(plan_path.read_text(encoding="utf-8"))
        old = before.get("experiments", [])
        same_data = (before.get("data_dir"), before.get("data_sha256")) == \
            (str(bench.data_dir), now["sha256"])
        if old == wanted and same_data:
            return
        _accept_plan(bench_dir, old, wanted)
    atomic_write_json(plan_path, {
        "schema": "sentibench.bench/1", "command": bench.command, "preset": bench.preset,
        "models": bench.models, "overrides": bench.overrides, "data_dir": str(bench.data_dir),
        "source": bench.source, "device": bench.device, "seeds": bench.seeds,
        "ensemble": bench.ensemble, "tune": bench.tune,
        **({"train_sizes": bench.train_sizes, "per_class": bench.per_class}
           if bench.train_sizes else {}),
        "experiments": wanted,
        "dataset": dataset_name(bench.data_dir),
        "data_sha256": now["sha256"], "environment": environment(bench.device),
    })


def _check_device(bench: BenchArgs, experiments: list[Experiment]) -> None:
    """A device the machine lacks fails now, not when the first neural row starts."""
    check_device(bench.device)
    if any(takes_device(e.family) for e in experiments):
        from sentibench.engine.plan import resolve_device

        resolve_device(bench.device)


def _run_row(exp: Experiment, run_dir: Path, bench: BenchArgs) -> None:
    """Continue a row from its checkpoint, or run it afresh (clearing a failed attempt)."""
    if resumable(exp.family, run_dir):
        print(f"continuing from the checkpoint in {run_dir}")
        resume_row(run_dir, row_tracking(bench.track, run_dir.name, exp.settings))
        return
    _run_one(exp, run_dir, bench)


def run_bench(bench: BenchArgs) -> Path | None:
    """Plan, prepare data, run every experiment not yet completed, report."""
    experiments = bench.planned()
    check_ensemble(bench.ensemble, experiments)
    if bench.dry_run:  # the plan and its estimates only (None: no bench directory)
        from sentibench.bench.estimate import print_dry_run
        return print_dry_run(bench, experiments, PRESETS[bench.preset].dataset)
    _check_device(bench, experiments)
    from sentibench.data.sources import ensure_prepared

    bench_dir = bench.out or Path("runs") / f"bench-{utc_stamp()}"
    check_target(bench_dir)
    dataset = PRESETS[bench.preset].dataset
    if bench.data_dir is None:
        bench.data_dir = Path("data") / dataset
    ensure_prepared(bench.data_dir, dataset, bench.source)
    check_sizes(experiments, bench.data_dir)
    bench_dir.mkdir(parents=True, exist_ok=True)
    with lock(bench_dir):
        if bench.overwrite:
            _discard_rows(bench_dir, experiments)
        now = data_inputs(bench.data_dir)  # hashed once: rows checked against it, recorded
        _check_inputs(bench_dir, bench, experiments, now)
        _write_plan(bench_dir, bench, experiments, now)
        _start_tracking(bench_dir, bench)
        if bench.tune:
            from sentibench.bench.tuned import studies, tuned_experiments

            experiments = tuned_experiments(experiments, studies(bench_dir, bench, experiments))
        failures = _run_rows(bench_dir, bench, experiments)
        if bench.ensemble:
            _add_ensemble(bench_dir, bench, failures)
        _finish(bench_dir, bench, failures, len(experiments))
    return bench_dir


def _run_rows(bench_dir: Path, bench: BenchArgs, experiments: list[Experiment]
              ) -> dict[str, str]:
    failures: dict[str, str] = {}
    for index, exp in enumerate(experiments, 1):
        run_dir = bench_dir / safe_name(exp.name)
        header = f"[{index}/{len(experiments)}] {exp.name}"
        if _finished(run_dir):
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
        run_dir = build_ensemble(bench_dir, bench.ensemble, bench.command)
    except SentibenchError as exc:
        failures[name] = f"SentibenchError: {exc}"
        print(f"[+] {name} FAILED: {exc}", file=sys.stderr)
        return
    send_to_trackers(run_dir, read_results(run_dir), RunArgs(
        out=run_dir, track=row_tracking(bench.track, run_dir.name, {})))


def _start_tracking(bench_dir: Path, bench: BenchArgs) -> None:
    """The bench's MLflow parent run (its plan as parameters), which every row joins."""
    if bench.track.trackers:
        from sentibench.report.send import start_bench

        bench.track = start_bench(bench_dir, bench.track)


def _finish(bench_dir: Path, bench: BenchArgs, failures: dict[str, str], total: int) -> None:
    from sentibench.report.build import build_report
    from sentibench.report.send import finish_bench
    from sentibench.report.tables import format_table, load_rows

    atomic_write_json(bench_dir / FAILURES_FILE, failures)
    rows = load_rows(bench_dir)
    print(f"\nData set: {rows[0].data if rows else '?'}")
    print(format_table(rows))  # first: build_report ends in an error on an unreadable row
    paths: list[Path] = []
    try:
        paths = build_report(bench_dir)
    finally:  # the parent run holds the report (results.md, report.html, ...) and the plan
        finish_bench(bench_dir, bench.track, failed=bool(failures) or not paths)
    print(f"\nWrote {', '.join(str(p) for p in paths)}")
    if failures:
        raise SentibenchError(f"{len(failures)} of {total} experiments failed: "
                              f"{', '.join(failures)} (see {bench_dir / FAILURES_FILE})")
