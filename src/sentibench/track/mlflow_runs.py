"""MLflow runs of sentibench runs: one run per run directory (every resolved setting a
parameter, the scalars of :mod:`sentibench.track.scalars` as metrics, tags, and the run's
files as artifacts), and a parent run per bench or tuning study holding its children.

Everything is sent through ``MlflowClient`` with explicit run ids, never MLflow's global
"active run", so a bench's rows, a study's trials and a library caller's own MLflow run
cannot be mixed up.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import io
import re
import subprocess
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from sentibench.track.scalars import data_fingerprint, flat_settings, run_scalars

PARENT_TAG = "mlflow.parentRunId"
MAX_PARAM = 6000  # characters in a parameter's value (MLflow 3's limit)
_KEY = re.compile(r"[^\w./\- :]")


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _ms(stamp: str | None) -> int | None:
    """Milliseconds since the epoch of an ISO time recorded in results.json."""
    try:
        return int(_dt.datetime.fromisoformat(str(stamp)).timestamp() * 1000)
    except ValueError:
        return None


def _key(name: str) -> str:
    return _KEY.sub("_", name)[:250]


@functools.cache
def code_commit() -> str | None:
    """The git commit of the sentibench code that runs, when it runs from a checkout
    (an installed package has none; a virtual environment inside some other repository
    does not count)."""
    package = Path(__file__).resolve().parents[1]
    try:
        top = subprocess.run(["git", "-C", str(package), "rev-parse", "--show-toplevel",
                              "HEAD"], capture_output=True, text=True, timeout=5, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = top.stdout.split()
    if len(lines) != 2 or package not in (Path(lines[0]) / "src" / "sentibench",
                                          Path(lines[0]) / "sentibench"):
        return None
    return lines[1]


def run_tags(result: dict[str, Any], run_dir: Path) -> dict[str, str]:
    """What a run is, for MLflow's search and columns."""
    tags = {"sentibench.model": str(result.get("model")),
            "sentibench.family": str(result.get("kind")),
            "sentibench.dataset": str((result.get("data") or {}).get("dataset")),
            "sentibench.data_fingerprint": data_fingerprint(result),
            "sentibench.run_dir": str(Path(run_dir).resolve())}
    commit = code_commit()
    if commit:
        tags["sentibench.commit"] = tags["mlflow.source.git.commit"] = commit
    return tags


def _send(mlflow_client: Any, run_id: str, params: dict[str, str] | None = None,
          scalars: Iterable[Any] = ()) -> None:
    """Parameters and metrics in batches within MLflow's limits (100 parameters, 1,000
    metrics a request)."""
    from mlflow.entities import Metric, Param

    stamp = int(time.time() * 1000)
    for chunk in _chunks([Param(_key(k), str(v)[:MAX_PARAM])
                          for k, v in (params or {}).items()], 100):
        mlflow_client.log_batch(run_id, params=chunk)
    for chunk in _chunks([Metric(_key(s.tag), s.value, stamp, s.step) for s in scalars], 1000):
        mlflow_client.log_batch(run_id, metrics=chunk)


def log_run(mlflow_client: Any, experiment: str, run_dir: Path, result: dict[str, Any],
            artifacts: Iterable[Path], parent_run_id: str | None = None,
            tags: dict[str, str] | None = None) -> str:
    """One finished run as an MLflow run (a child of ``parent_run_id`` if given); its id."""
    all_tags = {**run_tags(result, run_dir), **(tags or {})}
    if parent_run_id:
        all_tags[PARENT_TAG] = parent_run_id
    run = mlflow_client.create_run(experiment, start_time=_ms(result.get("started_at")),
                                   tags=all_tags, run_name=Path(run_dir).name)
    run_id = run.info.run_id
    _send(mlflow_client, run_id, flat_settings(result), run_scalars(result))
    for path in artifacts:
        if Path(path).is_file():
            mlflow_client.log_artifact(run_id, str(path))
    # MLflow prints two "View run" lines as a run ends: kept for a run of its own, not for
    # every row of a bench or trial of a study (their parent's lines name the place)
    quiet = contextlib.redirect_stdout(io.StringIO()) if parent_run_id else \
        contextlib.nullcontext()
    with quiet:
        mlflow_client.set_terminated(run_id, "FINISHED",
                                     end_time=_ms(result.get("finished_at")))
    return run_id


def open_parent(mlflow_client: Any, experiment: str, name: str, params: dict[str, Any],
                tags: dict[str, str], run_id: str | None = None) -> str:
    """A bench's or study's run, created (or ``run_id`` reopened, when a bench or study
    continues) with its plan as parameters."""
    if run_id is not None:
        try:
            mlflow_client.update_run(run_id, status="RUNNING")
            return run_id
        except Exception:  # gone (another store, deleted): start a new one
            pass
    commit = code_commit()
    all_tags = {**tags, **({"sentibench.commit": commit, "mlflow.source.git.commit": commit}
                           if commit else {})}
    run = mlflow_client.create_run(experiment, tags=all_tags, run_name=name)
    flat = {k: v if isinstance(v, str) else _json(v) for k, v in params.items()}
    _send(mlflow_client, run.info.run_id, flat)
    return run.info.run_id


def _json(value: Any) -> str:
    import json

    return json.dumps(value, default=str)


def close_parent(mlflow_client: Any, run_id: str, artifacts: Iterable[Path],
                 failed: bool = False) -> None:
    """The parent's report files as artifacts, and its end."""
    for path in artifacts:
        if Path(path).is_file():
            mlflow_client.log_artifact(run_id, str(path))
    mlflow_client.set_terminated(run_id, "FAILED" if failed else "FINISHED")
