"""Reaching an MLflow tracking store: which URI, a quick check that a server answers, the
client (one per URI per process) and the experiment.

Without ``--mlflow-uri`` or ``MLFLOW_TRACKING_URI`` the store is a SQLite file inside the
run's (or bench's) own directory, ``mlruns/mlflow.db``, its artifacts beside it: MLflow 3's
recommended local backend, and nothing leaves the machine. A server that refuses the
connection is found by a socket connect with a short timeout before MLflow's HTTP client
(which retries with back-off) is ever used; retries are off and requests time out early,
so a tracker that is down costs a run seconds, not minutes.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sentibench.track.options import TrackArgs

STORE_DIR = "mlruns"  # the default store, inside the run or bench directory
CONNECT_TIMEOUT = 3.0  # seconds to wait for a server to accept a connection
REQUEST_TIMEOUT = "20"  # seconds MLflow's HTTP client waits for one reply
_CLIENTS: dict[str, Any] = {}


def default_uri(out_dir: Path) -> str:
    return f"sqlite:///{(Path(out_dir) / STORE_DIR / 'mlflow.db').resolve()}"


def resolve_uri(track: TrackArgs, out_dir: Path) -> str:
    """``--mlflow-uri``, else ``MLFLOW_TRACKING_URI``, else the store in ``out_dir``."""
    return track.mlflow_uri or os.environ.get("MLFLOW_TRACKING_URI") or default_uri(out_dir)


def _local_db(uri: str) -> Path | None:
    """The file of a ``sqlite:///`` URI (its artifacts go beside it), else None."""
    return Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None


def check_reachable(uri: str) -> None:
    """Raise ConnectionError at once when an http(s) tracking server does not accept a
    connection (refused, no route, no such host)."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=CONNECT_TIMEOUT):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConnectionError(f"cannot connect to {parts.hostname}:{port} ({reason})") from None


def client(uri: str) -> Any:
    """An ``MlflowClient`` for ``uri``, its server checked first; MLflow's own INFO lines
    (creating tables) are kept out of the run's output."""
    check_reachable(uri)
    if uri in _CLIENTS:
        return _CLIENTS[uri]
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", REQUEST_TIMEOUT)
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    db = _local_db(uri)
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
    from mlflow import MlflowClient

    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)

    _CLIENTS[uri] = MlflowClient(tracking_uri=uri)
    return _CLIENTS[uri]


def experiment_id(mlflow_client: Any, name: str, uri: str) -> str:
    """The experiment called ``name``, created if missing (a local store's artifacts in
    ``artifacts/`` beside its database, not in the current directory)."""
    found = mlflow_client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    db = _local_db(uri)
    location = str(db.parent / "artifacts") if db is not None else None
    try:
        return mlflow_client.create_experiment(name, artifact_location=location)
    except Exception:  # another process created it first
        found = mlflow_client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id
