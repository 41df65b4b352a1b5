"""``sentibench report --to mlflow DIR``: a finished bench (or one run) sent to trackers
after the fact, from its directories alone, in the same shape a live bench sends: a
parent run holding the plan and the report, one child per row and per tuning trial.
Also where a live bench opens its parent run, so both make the same one.
"""

from __future__ import annotations

import json
from pathlib import Path

from sentibench.core.errors import SentibenchError
from sentibench.run.results import (
    NOT_ROWS,
    PLAN_FILE,
    RESULTS_FILE,
    TUNING_DIR,
    RunArgs,
    read_results,
    send_to_trackers,
)
from sentibench.track.options import TrackArgs
from sentibench.track.scalars import data_fingerprint
from sentibench.track.send import child, finish_group, start_group

# what a bench's parent run holds (build's files, named here without importing matplotlib)
REPORT_FILES = ("results.md", "report.html", "results.csv", "accuracy_vs_time.png",
                "loss_curves.png", PLAN_FILE)


def start_bench(bench_dir: Path, track: TrackArgs, reopen: bool = True) -> TrackArgs:
    """The bench's parent run: its plan (bench.json, without the environment) as
    parameters, its data set and data fingerprint as tags."""
    plan = json.loads((Path(bench_dir) / PLAN_FILE).read_text(encoding="utf-8"))
    params = {k: v for k, v in plan.items() if k not in ("schema", "environment")}
    tags = {"sentibench.kind": "bench", "sentibench.dataset": str(plan.get("dataset")),
            "sentibench.data_fingerprint": data_fingerprint(
                {"data": {"sha256": plan.get("data_sha256")}})}
    return start_group(track, bench_dir, Path(bench_dir).resolve().name, params, tags, reopen)


def finish_bench(bench_dir: Path, track: TrackArgs, failed: bool = False) -> None:
    finish_group(track, [Path(bench_dir) / name for name in REPORT_FILES], failed)


def _runs(bench_dir: Path) -> list[tuple[Path, dict[str, str]]]:
    """Every finished run of a bench: its rows, then its tuning trials (tagged)."""
    rows = [(p, {}) for p in sorted(bench_dir.iterdir())
            if p.is_dir() and not p.name.startswith(".") and p.name not in NOT_ROWS
            and (p / RESULTS_FILE).is_file()]
    trials = [(p, {"sentibench.study": p.parent.name,
                   "sentibench.trial": str(int(p.name.rpartition("-")[2]))})
              for p in sorted(bench_dir.glob(f"{TUNING_DIR}/*/trial-*"))
              if (p / RESULTS_FILE).is_file() and p.name.rpartition("-")[2].isdigit()]
    return rows + trials


def send_saved(directory: Path, to: str, track: TrackArgs) -> int:
    """Send a bench directory (or one run directory) to the trackers ``to`` names; the
    number of runs sent. Unlike a live run, a tracker that fails is an error here: sending
    is all this command does."""
    from dataclasses import replace

    directory = Path(directory)
    track = replace(track, report_to=to)
    if not track.trackers:
        raise SentibenchError("--to names no tracker; give tensorboard, mlflow or both")
    if (directory / RESULTS_FILE).is_file():
        _send(directory, track)
        count = 1
    elif (directory / PLAN_FILE).is_file():
        track = start_bench(directory, track, reopen=False)
        runs = _runs(directory)
        for run_dir, tags in runs:
            _send(run_dir, child(track, str(run_dir.relative_to(directory)), tags))
        finish_bench(directory, track)
        count = len(runs)
    else:
        raise SentibenchError(f"{directory}: neither a bench directory (no {PLAN_FILE}) nor "
                              f"a run directory (no {RESULTS_FILE})")
    if track.failed:
        raise SentibenchError(f"{', '.join(sorted(track.failed))}: not sent (see the warning "
                              "above)")
    return count


def _send(run_dir: Path, track: TrackArgs) -> None:
    send_to_trackers(run_dir, read_results(run_dir), RunArgs(out=run_dir, track=track))
