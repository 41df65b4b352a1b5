"""``sentibench predict`` vs ``transformers.pipeline``, and ``predict --quantize int8``, on
the same saved encoder run and the same test reviews, in one process.

Three ways of labelling the first ``--texts`` reviews of ``<data-dir>/test.csv``:

* pipeline: ``transformers.pipeline("text-classification", model=RUN)`` with
  ``truncation=True, max_length=<the run's length>`` and its default batching, the way a
  Hugging Face user would label text with a saved run;
* predict: :func:`sentibench.serve.predict.predict_proba` (what ``sentibench predict --file`` runs:
  load, tokenize, length-sorted batches, windows off so both read the same head tokens);
* int8: the same with ``--quantize int8`` (torch's dynamic quantization of Linear layers;
  the texts whose two most probable classes are within ``--int8-recheck``, 0.1, are scored
  again in float32 and counted in its time);
* onnx-int8: ``predict --backend onnx --quantize int8``, onnxruntime on the int8 model
  ``sentibench export --int8`` wrote into the run (the same re-check; exported first if the
  run has no export, which the figures do not include).

Each side's time includes loading the model. Printed: wall and CPU seconds of each side,
the ratios, how many labels agree, and the accuracy of each on the labelled reviews
(``--sides`` runs only some sides; ``--threads N`` sets torch's threads for all). Without
``--run`` a short MiniLM run is trained first (``train-hf --max-train-samples 400
--max-eval-samples 200 --learning_rate 5e-5``: at the reference's 5e-6 its probabilities stay
near 0.5, where the int8 re-check scores every text twice), which the figures do not
include. ``--rounds R`` repeats the three sides R times, alternating their order, and
reports each side's median time.

    python benchmarks/predict_vs_pipeline.py --data-dir /tmp/qbdata
    python benchmarks/predict_vs_pipeline.py --run runs/minilm --data-dir data/imdb --texts 2000
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from sentibench.cli import main as sentibench_main
from sentibench.engine.config import PredictConfig
from sentibench.run.results import read_results
from sentibench.serve.predict import predict_proba

SIDES = ("pipeline", "predict", "int8", "onnx-int8")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", type=Path, default=None,
                   help="a saved encoder run (default: train a short MiniLM run first)")
    p.add_argument("--data-dir", type=Path, required=True, help="prepared data (test.csv)")
    p.add_argument("--texts", type=int, default=2000, help="test reviews to label")
    p.add_argument("--max-length", type=int, default=256, help="length of a trained run")
    p.add_argument("--train-samples", type=int, default=400, help="reviews a trained run sees")
    p.add_argument("--rounds", type=int, default=1, help="times to run the three sides")
    p.add_argument("--sides", default=",".join(SIDES),
                   help="comma-separated sides to run (default: all three)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                   help="where both sides run (int8 is CPU-only, so cuda leaves it out)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch.set_num_threads for both sides (default: torch's own)")
    return p.parse_args(argv)


def train_run(args: argparse.Namespace, out: Path) -> Path:
    """A short MiniLM run, head-truncated to ``--max-length`` tokens."""
    argv = ["train-hf", "--model", "minilm", "--data-dir", str(args.data_dir),
            "--max-train-samples", str(args.train_samples), "--max-eval-samples", "200",
            "--learning_rate", "5e-5",
            "--max-length", str(args.max_length), "--device", args.device, "--out", str(out)]
    if sentibench_main(argv) != 0:
        raise SystemExit("training the benchmark's run failed")
    return out


def pipeline_labels(run: Path, texts: list[str], max_length: int, device: str = "cpu"
                    ) -> np.ndarray:
    from transformers import pipeline

    classify = pipeline("text-classification", model=str(run), device=device,
                        truncation=True, max_length=max_length)
    label2id = classify.model.config.label2id
    return np.array([label2id[out["label"]] for out in classify(texts)])


def sentibench_labels(run: Path, texts: list[str], quantize: str, device: str = "cpu",
                      backend: str = "torch") -> np.ndarray:
    settings = PredictConfig(quantize=quantize, windows="off", backend=backend)
    return predict_proba(run, texts, device, settings).argmax(1)


def timed(work: Callable[[], np.ndarray]) -> tuple[np.ndarray, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    labels = work()
    return labels, time.perf_counter() - wall, time.process_time() - cpu


def measure(run: Path, texts: list[str], max_length: int, rounds: int,
            sides: tuple[str, ...] = SIDES, device: str = "cpu"
            ) -> dict[str, tuple[np.ndarray, float, float]]:
    """Each side's labels and median wall / CPU seconds over ``rounds``."""
    work = {"pipeline": lambda: pipeline_labels(run, texts, max_length, device),
            "predict": lambda: sentibench_labels(run, texts, "none", device),
            "int8": lambda: sentibench_labels(run, texts, "int8"),
            "onnx-int8": lambda: sentibench_labels(run, texts, "int8", backend="onnx")}
    times: dict[str, list[tuple[float, float]]] = {side: [] for side in sides}
    labels: dict[str, np.ndarray] = {}
    for r in range(rounds):
        for side in (sides if r % 2 == 0 else sides[::-1]):
            labels[side], wall, cpu = timed(work[side])
            times[side].append((wall, cpu))
            print(f"  round {r + 1}: {side:<8} {wall:7.2f} s wall {cpu:7.2f} s CPU", flush=True)
    return {side: (labels[side], statistics.median(w for w, _ in times[side]),
                   statistics.median(c for _, c in times[side])) for side in sides}


def report(results: dict[str, tuple[np.ndarray, float, float]], truth: np.ndarray) -> None:
    names = {"pipeline": "transformers.pipeline", "predict": "sentibench predict",
             "int8": "sentibench predict --quantize int8",
             "onnx-int8": "... --backend onnx --quantize int8"}
    for side, (labels, wall, cpu) in results.items():
        print(f"{names[side] + ':':<37} {wall:7.2f} s wall {cpu:7.2f} s CPU   accuracy "
              f"{(labels == truth).mean() * 100:.2f} %")
    n = len(truth)
    if "pipeline" in results and "predict" in results:
        (pipe, pipe_wall, pipe_cpu), (fp32, fp32_wall, fp32_cpu) = (
            results["pipeline"], results["predict"])
        print(f"speed-up (pipeline / predict): {pipe_wall / fp32_wall:.2f}x wall, "
              f"{pipe_cpu / fp32_cpu:.2f}x CPU; labels identical: {(pipe == fp32).sum()}/{n}")
    if "predict" in results and "int8" in results:
        (fp32, fp32_wall, fp32_cpu), (int8, int8_wall, int8_cpu) = (
            results["predict"], results["int8"])
        print(f"speed-up (predict / int8): {fp32_wall / int8_wall:.2f}x wall, "
              f"{fp32_cpu / int8_cpu:.2f}x CPU; labels unchanged: {(int8 == fp32).sum()}/{n} "
              f"({(int8 == fp32).mean() * 100:.2f} %); accuracy fp32 "
              f"{(fp32 == truth).mean() * 100:.2f} % -> int8 {(int8 == truth).mean() * 100:.2f} %")
    if "int8" in results and "onnx-int8" in results:
        (int8, int8_wall, int8_cpu), (ort, ort_wall, ort_cpu) = (
            results["int8"], results["onnx-int8"])
        base = results["predict"][0] if "predict" in results else int8
        print(f"speed-up (torch int8 / onnxruntime int8): {int8_wall / ort_wall:.2f}x wall, "
              f"{int8_cpu / ort_cpu:.2f}x CPU; labels unchanged against "
              f"{'fp32' if 'predict' in results else 'torch int8'}: "
              f"{(ort == base).sum()}/{n} ({(ort == base).mean() * 100:.2f} %)")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    sides = tuple(side.strip() for side in args.sides.split(",") if side.strip())
    if not sides or not set(sides) <= set(SIDES):
        raise SystemExit(f"--sides: choose among {', '.join(SIDES)}")
    if args.device == "cuda":
        sides = tuple(side for side in sides if "int8" not in side)
        if not sides:
            raise SystemExit("--sides int8: int8 runs on the CPU only; use --device cpu")
    threads = torch.get_num_threads()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        _run(args, sides)
    finally:  # a caller in the same process (the tests) keeps its own thread count
        torch.set_num_threads(threads)


def _run(args: argparse.Namespace, sides: tuple[str, ...]) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        run = args.run or train_run(args, Path(scratch) / "run")
        result = read_results(run)
        train = result.config.get("train", {})
        if result.kind != "hf" or train.get("truncation", "head") != "head":
            raise SystemExit(f"{run}: needs a head-truncated encoder run (the pipeline keeps "
                             "the first tokens)")
        max_length = int(result.config["max_length"])
        if "onnx-int8" in sides and not (Path(run) / "onnx" / "model.int8.onnx").is_file():
            from sentibench.serve.export import export_run
            from sentibench.serve.export_options import ExportArgs

            export_run(Path(run), ExportArgs(int8=True))
        frame = pd.read_csv(args.data_dir / "test.csv").head(args.texts)
        texts, truth = frame["text"].tolist(), frame["label"].to_numpy()
        print(f"device {args.device}, {torch.get_num_threads()} torch threads; {len(texts)} "
              f"test reviews, {max_length} tokens; run {run}")
        report(measure(Path(run), texts, max_length, args.rounds, sides, args.device),
               truth)


if __name__ == "__main__":
    main(sys.argv[1:])
