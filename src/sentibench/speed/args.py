"""The speedtest's options, declared once (the command line is generated from them).

Light on purpose (no torch): ``sentibench --help`` imports this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sentibench.core.errors import SentibenchError
from sentibench.core.options import option, validate
from sentibench.engine.config import DEVICE_HELP, check_device

CONFIG_DIR = Path(__file__).resolve().parent / "configs"  # package data: one JSON per encoder
GPT2_SIZES = ("gpt2-small", "gpt2-medium", "gpt2-large", "gpt2-xl")
# The reference's neural models (README rows 1, 2, 4-7; DistilBERT and the others on request).
DEFAULT_MODELS = ("gpt2-small", "bert", "roberta", "deberta-v3-base", "modernbert-base",
                  "modernbert-large")
SPEED_PRECISIONS = ("fp32", "bf16", "fp16")
REFERENCE_LENGTH = 256  # the reference's tokens per review
TINY_LENGTH = 32


def speed_models() -> tuple[str, ...]:
    """Every model the speedtest can build: GPT-2 sizes and the shipped encoder configs."""
    return GPT2_SIZES + tuple(sorted(p.stem for p in CONFIG_DIR.glob("*.json")))


def split_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


@dataclass
class SpeedArgs:
    """What ``sentibench speedtest`` was asked to measure."""

    device: str = option("auto", DEVICE_HELP)
    models: str = option(",".join(DEFAULT_MODELS),
                         "comma-separated models (registry names) to measure",
                         metavar="NAME[,NAME...]")
    precision: str = option("auto", "comma-separated autocast dtypes to time (fp32, bf16, "
                                    "fp16); auto = bf16,fp32 on CUDA, fp32 elsewhere (the "
                                    "bf16-vs-fp32 logits check runs wherever bf16 autocast "
                                    "does)", metavar="P[,P...]")
    compile: bool = option(False, "time torch.compile'd models, and check that compiled and "
                                  "eager logits agree")
    cuda_graphs: str = option("auto", "the engine's --cuda-graphs for the timed runs (auto: "
                                      "on for CUDA); on CUDA the steps are also checked "
                                      "against eager ones", choices=("auto", "on", "off"))
    tiny: bool = option(False, "the same code at toy sizes (2-3 layers, width 64, 32 tokens): "
                               "seconds, for CPUs and CI; its figures are not saved for "
                               "bench --dry-run")
    peak_tflops: float | None = option(
        None, "the device's peak dense TFLOP/s for MFU (default: known GPUs by name, on CPU "
              "a measured matmul)", above=0)
    out: Path = option(Path("runs/speedtest"), "directory for speedtest.md and speedtest.json")
    steps: int = option(8, "timed training steps per model and precision", above=0)
    warmup_steps: int = option(2, "untimed training steps before them (allocation, "
                                  "autotuning, compilation)", minimum=0)
    batch_size: int = option(8, "training batch size (the reference's)", above=0)
    seq_len: int | None = option(None, f"tokens per example (default: {REFERENCE_LENGTH}, "
                                       f"the reference's; {TINY_LENGTH} with --tiny)", above=0)
    eval_batches: int = option(4, "evaluation batches timed (of the engine's evaluation "
                                  "batch size)", above=0)

    def __post_init__(self) -> None:
        validate(self)
        check_device(self.device)
        known = speed_models()
        unknown = [m for m in self.model_list if m not in known]
        if unknown or not self.model_list:
            what = f"unknown model {unknown[0]!r}" if unknown else "names no model"
            raise SentibenchError(f"--models: {what}; known: {', '.join(known)}")
        if self.precision != "auto":
            bad = [p for p in split_list(self.precision) if p not in SPEED_PRECISIONS]
            if bad or not split_list(self.precision):
                raise SentibenchError(f"--precision must list some of "
                                      f"{', '.join(SPEED_PRECISIONS)} (or auto), got "
                                      f"{self.precision!r}")

    @property
    def model_list(self) -> list[str]:
        return split_list(self.models)

    @property
    def length(self) -> int:
        return self.seq_len or (TINY_LENGTH if self.tiny else REFERENCE_LENGTH)
