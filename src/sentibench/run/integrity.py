"""A saved run's model files, recorded when it is saved and checked before it is used.

``results.json`` lists every file the run's model consists of (the weights, config and
tokenizer files a family's save wrote) with its size and sha256. Loading the run for
``predict`` (or an ensemble) first checks that each file is still there and unchanged: a
deleted tokenizer would otherwise tokenize with a fallback vocabulary, an edited config
build other layers, a truncated weight file fail deep inside a loader or load zeros. The
run's own records (results.json, the predictions), hidden files and what trackers write
there (``tensorboard/``, ``mlruns/``, which grow after the run is saved) are not model
files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sentibench.core.errors import SentibenchError
from sentibench.core.fileio import sha256_file, tree_digests
from sentibench.engine.config import CHECKPOINT_DIR
from sentibench.run.results import PREDICTION_FILES, RESULTS_FILE
from sentibench.track.mlflow_store import STORE_DIR
from sentibench.track.tensorboard import LOG_SUBDIR

RECORDS = {RESULTS_FILE, *PREDICTION_FILES.values(), "members.json", "failures.json"}
TRACKERS = {LOG_SUBDIR, STORE_DIR}  # --report-to's event files and MLflow store: they grow


def model_files(run_dir: str | Path) -> dict[str, dict[str, Any]]:
    """Relative path -> {"bytes", "sha256"} of every model file in ``run_dir``."""
    return tree_digests(run_dir, lambda relative: relative.parts[0] == CHECKPOINT_DIR
                        or relative.parts[0] in TRACKERS
                        or any(part.startswith(".") for part in relative.parts)
                        or str(relative) in RECORDS)


def verify_model_files(run_dir: str | Path, recorded: dict[str, dict[str, Any]]) -> None:
    """One line naming the first file that is missing, truncated or changed since the run
    was saved; nothing for runs saved before files were recorded (``recorded`` empty)."""
    root = Path(run_dir)
    for name, want in sorted(recorded.items()):
        path = root / name
        if not path.is_file():
            raise SentibenchError(f"{path}: missing (the run saved it; the run directory is "
                                  "incomplete)")
        size = path.stat().st_size
        if size < want["bytes"]:
            raise SentibenchError(f"{path}: truncated ({size:,} of {want['bytes']:,} bytes)")
        if size != want["bytes"] or sha256_file(path) != want["sha256"]:
            raise SentibenchError(f"{path}: changed since the run was saved (sha256 differs "
                                  "from results.json); retrain, or restore the file")
