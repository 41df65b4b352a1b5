"""Time ``sentibench prepare`` against the reference procedure on the same archive.

The reference (download_prepare_dataset.py) extracts the archive to disk, builds one
DataFrame per review file, concatenates them, shuffles twice and writes the CSVs. Both
run here in one process, their CSVs are compared byte for byte, and the speed-up is
printed.

    python benchmarks/prepare_vs_reference.py [ARCHIVE] [--repeat N]
"""

from __future__ import annotations

import argparse
import contextlib
import filecmp
import io
import os
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import pandas as pd

from sentibench.data.config import PrepareConfig
from sentibench.data.imdb import prepare

SPLITS = ("train.csv", "validation.csv", "test.csv")


def reference_prepare(archive: Path, work: Path, out: Path,
                      sizes: tuple[int, int] = (35_000, 5_000)) -> None:
    """The reference's steps, as its script performs them. ``sizes``: the train and
    validation rows (the reference's; tests pass smaller ones); the rest is test."""
    with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(work, filter="data")
    frames = []
    for subset in ("test", "train"):
        for label in ("pos", "neg"):
            path = work / "aclImdb" / subset / label
            for name in sorted(os.listdir(path)):
                with open(path / name, encoding="utf-8") as fh:
                    frames.append(pd.DataFrame({"text": [fh.read()],
                                                "label": [1 if label == "pos" else 0]}))
    df = pd.concat(frames, ignore_index=True)
    df = df.sample(frac=1, random_state=123).reset_index(drop=True)
    df = df.sample(frac=1, random_state=123).reset_index(drop=True)
    end_train, end_val = sizes[0], sizes[0] + sizes[1]
    out.mkdir(parents=True, exist_ok=True)
    df.iloc[:end_train].to_csv(out / "train.csv", index=False)
    df.iloc[end_train:end_val].to_csv(out / "validation.csv", index=False)
    df.iloc[end_val:].to_csv(out / "test.csv", index=False)


def main() -> int:
    default = Path(os.environ.get("SENTIBENCH_SHARED_DATA")
                   or Path(__file__).resolve().parents[2] / "shared" / "data")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("archive", nargs="?", type=Path,
                        default=default / "aclImdb_v1_labeled.tar.gz")
    parser.add_argument("--repeat", type=int, default=1, help="take the best of N runs each")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if not args.archive.is_file():
        print(f"error: {args.archive}: archive not found", file=sys.stderr)
        return 2
    ref_times, our_times = [], []
    with tempfile.TemporaryDirectory(prefix="sentibench-bench-") as tmp:
        root = Path(tmp)
        for i in range(args.repeat):
            start = time.perf_counter()
            reference_prepare(args.archive, root / f"extract{i}", root / "reference")
            ref_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                prepare(PrepareConfig(source=str(args.archive), data_dir=root / "ours",
                                      force=True))
            our_times.append(time.perf_counter() - start)
        same = all(filecmp.cmp(root / "reference" / n, root / "ours" / n, shallow=False)
                   for n in SPLITS)
    ref, ours = min(ref_times), min(our_times)
    print(f"archive:            {args.archive}")
    best = f" (best of {args.repeat})" if args.repeat > 1 else ""
    print(f"reference procedure: {ref:7.2f} s{best}")
    print(f"sentibench prepare:  {ours:7.2f} s{best}")
    print(f"speed-up:            {ref / ours:7.1f}x")
    print(f"outputs identical:   {'yes' if same else 'NO'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
