"""``--report-to`` and its companions, declared once as option fields (so the training
commands, ``bench``, ``bench --set`` and TOML files all take them).

Light on purpose: asking whether a tracker's package is installed does not import it.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

from sentibench.core.errors import SentibenchError
from sentibench.core.options import option, validate

TRACKERS = {"tensorboard": "tensorboard", "mlflow": "mlflow"}  # tracker -> its package
INSTALL_HINT = 'pip install "sentibench[track]"'
TRACKING_KEYS = ("report_to", "mlflow_uri", "mlflow_experiment", "logging_dir")


@dataclass
class TrackArgs:
    """Which trackers hear of a run, and where they are."""

    report_to: str | None = option(None, "send the run to trackers: tensorboard, mlflow or "
                                         "both, comma-separated (default: none; nothing is "
                                         "sent anywhere unless asked)", metavar="TRACKERS")
    mlflow_uri: str | None = option(None, "MLflow tracking URI (default: env "
                                          "MLFLOW_TRACKING_URI, else a SQLite store in "
                                          "<out>/mlruns)", metavar="URI")
    mlflow_experiment: str = option("sentibench", "the MLflow experiment runs go to")
    logging_dir: Path | None = option(None, "where TensorBoard event files go (default: "
                                            "<run dir>/tensorboard)")
    # set by bench and tune, not by users:
    parent_run_id: str | None = field(default=None)  # the MLflow run this run is a child of
    tags: dict[str, str] = field(default_factory=dict)  # extra MLflow tags (a trial's study)
    origin: Path | None = field(default=None)  # what `report --to` would send again
    # trackers that failed in this command: warned about once, then left alone (shared by
    # the copies bench and tune make for their rows, so one warning per command)
    failed: set[str] = field(default_factory=set, repr=False, compare=False)

    def __post_init__(self) -> None:
        validate(self)
        names = self.trackers
        unknown = [n for n in names if n not in TRACKERS]
        if unknown:
            raise SentibenchError(f"--report-to: unknown tracker {unknown[0]!r}; choose from "
                                  f"{', '.join(TRACKERS)} (comma-separated)")
        missing = [n for n in names if importlib.util.find_spec(TRACKERS[n]) is None]
        if missing:
            raise SentibenchError(f"--report-to {','.join(missing)} needs "
                                  f"{' and '.join(TRACKERS[n] for n in missing)}: "
                                  f"{INSTALL_HINT}")

    @property
    def trackers(self) -> tuple[str, ...]:
        text = (self.report_to or "").strip().lower()
        if text in ("", "none"):
            return ()
        return tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))

    def wants(self, tracker: str) -> bool:
        return tracker in self.trackers
