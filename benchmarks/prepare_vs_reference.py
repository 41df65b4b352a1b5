"""Time the ``sentibench prepare`` command against the reference procedure, same archive.

The reference (download_prepare_dataset.py) extracts the archive to disk, builds one
DataFrame per review file, concatenates them, shuffles twice and writes the CSVs. Each side
runs as the whole command a user waits for, in a fresh interpreter (start-up and imports
included): the reference procedure as a script, and ``python -m sentibench prepare
--force``. Their CSVs are compared byte for byte, and the speed-up is printed.

    python benchmarks/prepare_vs_reference.py [ARCHIVE] [--repeat N]
"""

from __future__ import annotations

import argparse
import filecmp
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import pandas as pd

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


def _timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def _run_reference_side(argv: list[str]) -> int:
    """``--reference-side ARCHIVE WORK OUT``: the reference procedure as its own command."""
    archive, work, out = (Path(a) for a in argv)
    reference_prepare(archive, work, out)
    return 0


def main() -> int:
    if sys.argv[1:2] == ["--reference-side"]:
        return _run_reference_side(sys.argv[2:])
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
            ref_times.append(_timed([sys.executable, __file__, "--reference-side",
                                     str(args.archive), str(root / f"extract{i}"),
                                     str(root / "reference")]))
            our_times.append(_timed([sys.executable, "-m", "sentibench", "prepare", "--source",
                                     str(args.archive), "--data-dir", str(root / "ours"),
                                     "--force"]))
        same = all(filecmp.cmp(root / "reference" / n, root / "ours" / n, shallow=False)
                   for n in SPLITS)
    ref, ours = min(ref_times), min(our_times)
    print(f"archive:             {args.archive}")
    best = f" (best of {args.repeat})" if args.repeat > 1 else ""
    print(f"reference procedure: {ref:7.2f} s{best}  (whole command)")
    print(f"sentibench prepare:  {ours:7.2f} s{best}  (whole command)")
    print(f"speed-up:            {ref / ours:7.1f}x")
    print(f"outputs identical:   {'yes' if same else 'NO'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
