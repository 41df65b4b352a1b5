"""Writing a prepared data directory, whatever the source: the three split CSVs, the label
names and the manifest, all or nothing; and the summary printed after preparing.

Layout (read by :mod:`sentibench.data.splits`): ``train.csv``, ``validation.csv``,
``test.csv`` with columns ``text,label`` (label = an integer id), ``labels.json`` with the
name of each id (``{"names": [...]}``: id ``i`` is ``names[i]``), and ``manifest.json``
describing the input, the options and the checksum of every output.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from sentibench import __version__
from sentibench.core.errors import SentibenchError
from sentibench.core.fileio import DiskFull, atomic_path, disk_full, sha256_file
from sentibench.data.splits import LABELS_FILE, MANIFEST, SPLIT_FILES


def read_manifest(data_dir: Path) -> dict | None:
    try:
        manifest = json.loads((Path(data_dir) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def up_to_date(data_dir: Path, source_id: dict, options: dict) -> bool:
    """Whether the manifest describes this input and options, and every output is intact."""
    manifest = read_manifest(data_dir)
    if not manifest or manifest.get("input") != source_id:
        return False
    outputs = manifest.get("outputs", {}).keys()
    if manifest.get("options") != options or outputs != {*SPLIT_FILES.values(), LABELS_FILE}:
        return False
    return all((data_dir / name).is_file() and sha256_file(data_dir / name) == digest
               for name, digest in manifest["outputs"].items())


def new_manifest(dataset: str, source: str | None, source_id: dict, options: dict,
                 parts: dict[str, pd.DataFrame], **extra: object) -> dict:
    return {"schema": "sentibench.prepare/1", "sentibench_version": __version__,
            "dataset": dataset, "source": source, "input": source_id, "options": options,
            **extra, "rows": {split: len(part) for split, part in parts.items()},
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def write_prepared(data_dir: Path, parts: dict[str, pd.DataFrame], names: list[str],
                   manifest: dict) -> None:
    """Write every output to a temporary file first, then rename them, the manifest last.

    A failure while writing (a full disk: one line) leaves the old outputs untouched and no
    temporary file; the old manifest is removed just before the renames, so a failure
    between them can never pair a manifest with files it does not describe (the next run
    then rebuilds).
    """
    payloads = {name: parts[split][["text", "label"]].to_csv(index=False).encode("utf-8")
                for split, name in SPLIT_FILES.items()}
    payloads[LABELS_FILE] = (json.dumps({"names": list(names)}, indent=2, ensure_ascii=False)
                             + "\n").encode("utf-8")
    manifest["outputs"] = {name: hashlib.sha256(data).hexdigest()
                           for name, data in payloads.items()}
    try:
        with contextlib.ExitStack() as stack:  # exits run in reverse: outputs, then manifest
            manifest_tmp = stack.enter_context(atomic_path(data_dir / MANIFEST))
            for name, data in payloads.items():
                stack.enter_context(atomic_path(data_dir / name)).write_bytes(data)
            manifest_tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
            (data_dir / MANIFEST).unlink(missing_ok=True)
    except (OSError, DiskFull) as exc:
        why = "no space left on device" if disk_full(exc) else \
            getattr(exc, "strerror", None) or exc
        raise SentibenchError(f"{data_dir}: cannot write the split files: {why} (wrote none "
                              "of them; any previous ones are unchanged)") from None


def summarize(parts: dict[str, pd.DataFrame], names: list[str]) -> str:
    """One screen: sizes, label balance, duplicates and text lengths per split."""
    shown = names if len(names) <= 4 else []
    header = "".join(f"{name[:9]:>10}" for name in shown)
    lines = [f"{'split':<11}{'rows':>8}{header}{'dummy':>8}{'dup rows':>10}"
             "   chars p10 / p50 / p90 / p99"]
    majority = int(parts["train"]["label"].value_counts().idxmax())  # what the dummy says
    for split, part in parts.items():
        shares = part["label"].value_counts(normalize=True)
        cells = "".join(f"{shares.get(i, 0.0):>10.2%}" for i in range(len(shown)))
        p = np.percentile(part["text"].str.len(), [10, 50, 90, 99]).astype(int)
        lines.append(f"{split:<11}{len(part):>8,}{cells}{shares.get(majority, 0.0):>8.2%}"
                     f"{int(part['text'].duplicated().sum()):>10}   "
                     f"{p[0]:>9,} / {p[1]:,} / {p[2]:,} / {p[3]:,}")
    sets = {split: set(part["text"]) for split, part in parts.items()}
    shared = ", ".join(f"{a}&{b} {len(sets[a] & sets[b])}" for a, b in
                       (("train", "validation"), ("train", "test"), ("validation", "test")))
    lines.append(f"texts in more than one split: {shared}")
    lines.append(f"labels: {', '.join(f'{i}={n}' for i, n in enumerate(names))}; dummy = "
                 "accuracy of always predicting train's majority label; dup rows = rows "
                 "repeating an earlier text of the same split")
    return "\n".join(lines)


def cut(frame: pd.DataFrame, fractions: tuple[float, ...]) -> dict[str, pd.DataFrame]:
    """The first ``int(n x f0)`` rows, the next ``int(n x f1)``, the rest (the book's cut)."""
    train_end = int(len(frame) * fractions[0])
    val_end = train_end + int(len(frame) * fractions[1])
    return {"train": frame[:train_end].reset_index(drop=True),
            "validation": frame[train_end:val_end].reset_index(drop=True),
            "test": frame[val_end:].reset_index(drop=True)}


def stratified_split(frame: pd.DataFrame, fractions: tuple[float, ...], seed: int,
                     column: str = "label") -> dict[str, pd.DataFrame]:
    """Each class shuffled and cut in the same proportions, then each split shuffled:
    every split keeps the overall class balance."""
    rng = np.random.RandomState(seed)
    parts: dict[str, list[pd.DataFrame]] = {"train": [], "validation": [], "test": []}
    for label in sorted(frame[column].unique()):
        rows = frame[frame[column] == label]
        for split, piece in cut(rows.take(rng.permutation(len(rows))), fractions).items():
            parts[split].append(piece)
    return {split: (pd.concat(pieces).sample(frac=1, random_state=seed)
                    .reset_index(drop=True)) for split, pieces in parts.items()}


def check_parts(parts: dict[str, pd.DataFrame], names: list[str], where: str) -> None:
    """Refuse splits that a comparison cannot use: an empty split, a training split with one
    class, or a validation/test label that training never shows."""
    for split, part in parts.items():
        if part.empty:
            raise SentibenchError(f"{where}: the {split} split is empty")
    seen = set(parts["train"]["label"].unique())
    if len(seen) < 2:
        raise SentibenchError(f"{where}: the training split has only the class "
                              f"{names[int(next(iter(seen)))]!r}; a classifier needs two")
    for split in ("validation", "test"):
        unseen = sorted(set(parts[split]["label"].unique()) - seen)
        if unseen:
            raise SentibenchError(f"{where}: the {split} split has label "
                                  f"{names[int(unseen[0])]!r}, which never occurs in train")


def report(data_dir: Path, what: str, parts: dict[str, pd.DataFrame], names: list[str],
           started: float) -> None:
    print(f"Prepared {data_dir} ({what}) in {time.perf_counter() - started:.1f} s")
    print(summarize(parts, names))
