"""What the other layers call: a finished run to its trackers, and the parent run of a
bench or tuning study around its children. Every call is guarded (:mod:`warn`): a tracker
that fails is one warning, and the run, bench or study goes on.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from sentibench.core.fileio import atomic_write_json
from sentibench.track.options import TrackArgs
from sentibench.track.warn import attempt

STATE_FILE = "tracking.json"  # a bench's or study's MLflow parent run, reopened on resume


class LiveRun:
    """A run's trackers while it trains: TensorBoard hears of each loss line and evaluation
    as it is recorded (MLflow hears of the run once it has finished). Opens nothing until
    the first record, so a process that records nothing (another rank) writes nothing."""

    def __init__(self, run_dir: Path, track: TrackArgs) -> None:
        from sentibench.track.tensorboard import LOG_SUBDIR

        self.track = track if track.origin else replace(track, origin=Path(run_dir))
        self.logdir = track.logging_dir or Path(run_dir) / LOG_SUBDIR
        self.scalars: Any = None  # tensorboard.LiveScalars, once opened

    def record(self, history: dict[str, list], pace: dict[str, list] | None = None) -> None:
        if not self.track.wants("tensorboard"):
            return

        def write() -> None:
            if self.scalars is None:
                from sentibench.track.tensorboard import LiveScalars

                self.scalars = LiveScalars(self.logdir)
            self.scalars.update(history, pace)

        attempt(self.track, "tensorboard", str(self.logdir), write)

    def close(self) -> None:
        if self.scalars is not None:
            attempt(self.track, "tensorboard", str(self.logdir), self.scalars.close)


def send_run(run_dir: Path, result: dict[str, Any], track: TrackArgs,
             artifacts: list[Path], live: LiveRun | None = None) -> str | None:
    """A finished run (its results.json as a dict) to every tracker asked for, ``live``
    finishing the event file it wrote while the run trained; the run's MLflow id, when
    MLflow took it."""
    run_dir = Path(run_dir)
    track = track if track.origin else replace(track, origin=run_dir)
    if track.wants("tensorboard"):
        _send_tensorboard(run_dir, result, track, live)
    if not track.wants("mlflow"):
        return None
    from sentibench.track import mlflow_runs, mlflow_store

    uri = mlflow_store.resolve_uri(track, run_dir)

    def send() -> str:
        client = mlflow_store.client(uri)
        experiment = mlflow_store.experiment_id(client, track.mlflow_experiment, uri)
        return mlflow_runs.log_run(client, experiment, run_dir, result, artifacts,
                                   track.parent_run_id, track.tags)

    return attempt(track, "mlflow", uri, send)


def _send_tensorboard(run_dir: Path, result: dict[str, Any], track: TrackArgs,
                      live: LiveRun | None) -> None:
    from sentibench.track.scalars import run_scalars
    from sentibench.track.tensorboard import LOG_SUBDIR, write_scalars

    if live is not None and live.scalars is not None:  # keeps the steps' own wall times
        attempt(track, "tensorboard", str(live.logdir), lambda: live.scalars.finish(result))
        return
    logdir = track.logging_dir or run_dir / LOG_SUBDIR
    attempt(track, "tensorboard", str(logdir), lambda: write_scalars(logdir, run_scalars(result)))


def start_group(track: TrackArgs, directory: Path, name: str, params: dict[str, Any],
                tags: dict[str, str], reopen: bool = True) -> TrackArgs:
    """The MLflow parent run of a bench or study in ``directory`` (with ``reopen``, the
    one an earlier, interrupted attempt made, if it is still there), and the settings its
    children get: the store resolved once, the parent's id, ``directory`` to send again
    from."""
    track = replace(track, origin=Path(directory))
    if not track.wants("mlflow"):
        return track
    from sentibench.track import mlflow_runs, mlflow_store

    uri = mlflow_store.resolve_uri(track, directory)
    track = replace(track, mlflow_uri=uri)
    state_path = Path(directory) / STATE_FILE
    known = _read_state(state_path).get(uri) if reopen else None

    def start() -> str:
        client = mlflow_store.client(uri)
        experiment = mlflow_store.experiment_id(client, track.mlflow_experiment, uri)
        return mlflow_runs.open_parent(client, experiment, name, params, tags, known)

    parent = attempt(track, "mlflow", uri, start)
    if parent is not None and parent != known:
        atomic_write_json(state_path, {**_read_state(state_path), uri: parent})
    return replace(track, parent_run_id=parent)


def finish_group(track: TrackArgs, artifacts: list[Path], failed: bool = False) -> None:
    """The parent run's report files, and its end."""
    if not track.wants("mlflow") or track.parent_run_id is None:
        return
    from sentibench.track import mlflow_runs, mlflow_store

    uri = track.mlflow_uri or ""
    attempt(track, "mlflow", uri, lambda: mlflow_runs.close_parent(
        mlflow_store.client(uri), track.parent_run_id, artifacts, failed))


def child(track: TrackArgs, name: str, tags: dict[str, str] | None = None) -> TrackArgs:
    """The settings of one child run: its own TensorBoard directory under ``--logging-dir``
    (rows of a bench would otherwise write into one)."""
    logdir = track.logging_dir / name if track.logging_dir is not None else None
    return replace(track, logging_dir=logdir, tags={**track.tags, **(tags or {})})


def _read_state(path: Path) -> dict[str, str]:
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}
