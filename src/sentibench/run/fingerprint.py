"""What a run's numbers depend on, recorded with the run and compared before it is reused.

A finished run records the sha256 of every prepared data file it read (``results.json``:
``data.sha256``), its class names, and, where the base model is a local directory, the
sha256 of each of its files (``config.model_sha256``); a checkpoint records the same under
``inputs``. Skipping a finished bench row, resuming an interrupted run and re-running a
bench compare them with what is on disk now: a difference is an error that names what
changed, never a result of one data set presented as another's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sentibench.core.errors import SentibenchError
from sentibench.core.fileio import tree_digests
from sentibench.data.splits import data_checksums, read_label_names


def base_model_files(source: str | Path | None) -> dict[str, str] | None:
    """sha256 of every file of a local base-model directory (None for a Hub id or name
    that is not a directory: those are pinned by their revision, not by us)."""
    if source is None or not Path(source).is_dir():
        return None
    digests = tree_digests(source, lambda relative: "__pycache__" in relative.parts)
    return {name: digest["sha256"] for name, digest in digests.items()}


def data_inputs(data_dir: str | Path) -> dict[str, Any]:
    """The prepared data as a run sees it: each split file's sha256 and the class names."""
    return {"sha256": data_checksums(data_dir), "labels": read_label_names(data_dir)}


def differences(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Human-readable differences between two records of :func:`data_inputs` (plus an
    optional ``model`` entry of :func:`base_model_files`)."""
    out = _changed_files(recorded.get("sha256") or {}, current.get("sha256") or {}, "")
    if recorded.get("labels") is not None and recorded.get("labels") != current.get("labels"):
        out.append(f"the class names ({', '.join(map(str, recorded['labels']))} -> "
                   f"{', '.join(map(str, current.get('labels') or []))})")
    if recorded.get("model") is not None:
        out += _changed_files(recorded["model"], current.get("model") or {}, "base model ")
    return out


def _changed_files(before: dict[str, str], after: dict[str, str], what: str) -> list[str]:
    out = []
    for name in sorted(set(before) | set(after)):
        if name not in after:
            out.append(f"{what}{name} (missing now)")
        elif name not in before:
            out.append(f"{what}{name} (new)")
        elif before[name] != after[name]:
            out.append(f"{what}{name} (sha256 {before[name][:12]} -> {after[name][:12]})")
    return out


def recorded_inputs(result_data: dict[str, Any], labels: list[str],
                    config: dict[str, Any]) -> dict[str, Any]:
    """What a finished run's results.json says it was made from."""
    return {"sha256": result_data.get("sha256") or {}, "labels": list(labels),
            "model": config.get("model_sha256")}


def check_same_inputs(what: str, recorded: dict[str, Any], current: dict[str, Any],
                      data_dir: str | Path, hint: str) -> None:
    """Raise one line naming what changed since ``what`` was made, and how to proceed."""
    changed = differences(recorded, current)
    if changed:
        raise SentibenchError(f"{what} was made from other inputs than {data_dir} holds now "
                              f"({'; '.join(changed)}); {hint}")
