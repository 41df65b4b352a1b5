"""The training options, declared once (flags, bench overrides, results and resume derive
from these fields), and ``predict``'s. Defaults are the reference's; ``auto`` values are
resolved by :mod:`sentibench.engine.plan` into what actually runs."""

from __future__ import annotations

from dataclasses import dataclass

from sentibench.core.errors import SentibenchError
from sentibench.core.options import option, to_dict, validate
from sentibench.engine.schedule import SCHEDULES
from sentibench.models.truncation import TRUNCATIONS, Truncation

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda", "mps")
FEATURE_CACHE = ("auto", "on", "off")
SPLIT_BATCHES = ("auto", "on", "off")
FAST_DROPOUT = ("auto", "off")
DEVICE_HELP = "auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps"
DEFAULT_SEED = 123  # the reference's torch.manual_seed
SEED_LIMIT = 2 ** 32  # seeds are 0 <= seed < 2^32: numpy's range (torch's reaches 2^64)
SELECT_METRICS = ("none", "val_accuracy", "val_loss")  # --select-best
IGNORE_INDEX = -100  # torch's default: no class index equals it, so no row is left out
QUANTIZE = ("none", "int8")  # predict --quantize
CHECKPOINT_DIR = "checkpoint"  # inside a run directory: its resumable state (engine.checkpoint)
WINDOWS = ("auto", "on", "off")  # predict --windows


def epochs_for(cfg: TrainConfig, steps_per_epoch: int) -> int:
    """Passes over the training set: ``--num-epochs``, or more where ``--min-steps`` needs
    them (whole passes, so every row is seen equally often)."""
    if not cfg.min_steps or steps_per_epoch <= 0:
        return cfg.num_epochs
    return max(cfg.num_epochs, -(-cfg.min_steps // steps_per_epoch))


def epoch_end_checked(epoch: int, passes: int, num_epochs: int) -> bool:
    """Whether the end of pass ``epoch`` (from 0) of ``passes`` takes the reference's
    epoch-end accuracy. Without ``--min-steps`` every pass does; when it adds passes, only
    the ``num_epochs`` passes that end a stretched epoch do, so 16 rows repeated over 50
    passes are not 50 evaluations of the validation batches."""
    if passes <= num_epochs:
        return True
    return (epoch + 1) * num_epochs // passes != epoch * num_epochs // passes


def check_device(name: str) -> None:
    if name not in DEVICES and not (name.startswith("cuda:") and name[5:].isdigit()):
        raise SentibenchError(f"--device must be one of {', '.join(DEVICES)} or cuda:N, "
                              f"got {name!r}")


@dataclass
class TrainConfig:
    """Optimisation and evaluation settings of every neural run."""

    num_epochs: int = option(1, "passes over the training set", above=0, snake=True)
    learning_rate: float = option(5e-5, "AdamW learning rate, weight decay 0.1", above=0,
                                  snake=True)
    batch_size: int = option(8, "training batch size (the reference's: 8)", above=0)
    weight_decay: float = option(0.1, "AdamW weight decay", minimum=0, cli=False)
    eval_freq: int = option(50, "log train/validation loss every N optimizer steps", above=0,
                            cli=False)
    eval_iter: int = option(20, "batches of each split in those losses", above=0, cli=False)
    eval_batch_size: int | None = option(
        None, "batch size of length-sorted evaluation batches (default: 64 on CUDA, the "
              "training batch size on CPU, where larger batches are slower)", above=0)
    seed: int = option(DEFAULT_SEED, "random seed")
    device: str = option("auto", DEVICE_HELP)
    precision: str = option("auto", "autocast dtype; auto = bf16 on CUDA, fp32 elsewhere",
                            choices=PRECISIONS)
    compile: bool = option(False, "wrap the model in torch.compile")
    cuda_graphs: str = option(
        "auto", "record each training step (forward, backward, AdamW) once per batch shape "
                "as a CUDA graph and replay it: one launch per step instead of hundreds, "
                "the same loss and gradients; auto = on for CUDA training in one process "
                "with one micro-batch per step (no --compile, --accumulation-steps, "
                "--no-padding or feature cache)", choices=("auto", "on", "off"))
    max_steps: int | None = option(None, "stop after N optimizer steps (debugging)", above=0)
    min_steps: int | None = option(
        None, "train at least N optimizer steps, passing over a small training set more "
              "often than --num-epochs says (learning curves: 16 rows in 1 epoch are 2 "
              "steps); the epoch-end accuracy is still taken --num-epochs times", above=0)
    feature_cache: str = option(
        "auto", "run the frozen part of the model once per example and train the rest on "
                "its cached output (GPT-2: the pooled vector for last_layer, the last block's "
                "input for last_block; encoders: the backbone's per-token hidden states for "
                "last_layer); auto = only where exact (GPT-2)",
        choices=FEATURE_CACHE)
    feature_cache_gb: float | None = option(
        None, "memory the feature cache may use, in GiB (default: half of the memory "
              "available); a split that does not fit runs through the whole model", minimum=0)
    save_every: int | None = option(
        None, "checkpoint every N steps (also saved on Ctrl-C / SIGTERM)", above=0)
    group_by_length: bool = option(
        False, "batch training examples of similar length (less padding; changes batch "
               "composition, so off by default)")
    split_batches: str = option(
        "auto", "cut each training batch into length-sorted micro-batches and add up their "
                "gradients: the same batch, loss and gradient with less padding (auto = on "
                "CPU, where padding costs time; never with fixed padding)",
        choices=SPLIT_BATCHES)
    fast_dropout: str = option(
        "auto", "draw CPU dropout masks with numpy's SFC64 generator, seeded from torch's: "
                "the same distribution, about 3x faster than torch's CPU bernoulli (auto = on "
                "CPU without --compile; off = torch's own masks)", choices=FAST_DROPOUT)
    truncation: str = option(
        "head", "which tokens of a text longer than the length limit are kept: the first "
                "(head, the reference), the last (tail), or both ends (head+tail)",
        choices=TRUNCATIONS)
    head_tokens: int | None = option(
        None, "head+tail: tokens kept from the start, the rest of the budget from the end "
              "(default: a quarter of it)", above=0)
    lora_rank: int = option(16, "--trainable_layers lora: the adapters' rank", above=0)
    lora_alpha: float = option(16.0, "--trainable_layers lora: the adapters' scale alpha "
                                     "(the update is alpha / rank x B A)", above=0)
    lora_targets: str | None = option(
        None, "--trainable_layers lora: comma-separated name endings of the Linear layers to "
              "adapt, e.g. qkv,proj or query,value (default: every frozen Linear layer)")
    lr_schedule: str = option(
        "constant", "learning rate over the steps: constant (the reference), linear decay to "
                    "0, or cosine to 0, after the warm-up", choices=SCHEDULES)
    warmup_ratio: float = option(0.0, "share of the steps that warm the rate up from 0",
                                 minimum=0)
    max_grad_norm: float | None = option(
        None, "clip the gradients' global norm to this (default: no clipping)", above=0)
    eval_every: int | None = option(
        None, "also score the whole validation split every N steps (for --select-best)",
        above=0)
    select_best: str = option(
        "none", "at the end, restore the weights of the best --eval-every evaluation by "
                "this measure (none: keep the last weights, as the reference)",
        choices=SELECT_METRICS)
    early_stopping_patience: int | None = option(
        None, "stop after N --eval-every evaluations without improvement (needs "
              "--select-best)", above=0)
    accumulation_steps: int = option(
        1, "add up the gradients of N consecutive batches before each optimizer step: the "
           "update of one batch of N x --batch-size rows, in the memory of one batch",
        above=0, snake=True)
    no_padding: bool = option(
        False, "feed every example at its own length: each micro-batch holds rows of one "
               "length, so no padding token enters the model (with --batch-size 1, the "
               "book's ablation row 14)", snake=True)
    ignore_index: int = option(
        IGNORE_INDEX, "rows labelled N are left out of the loss (torch's default -100 leaves "
                      "none out; the book's ablation passes 50256, which no class equals)",
        snake=True)
    eval_windows: bool = option(
        False, "final train/validation/test accuracy (and predict, unless told otherwise) "
               "from overlapping windows of the length limit that cover each whole review, "
               "special tokens in every window, the windows' logits averaged (default: off, "
               "the reference's one truncated input per review)")
    window_stride: int | None = option(
        None, "--eval-windows: text tokens from one window's start to the next (default: "
              "half a window)", above=0)
    num_workers: int | None = option(
        None, "worker processes that collate batches ahead of the model (default: 2 on CUDA, "
              "where batches are also pinned for faster copies; 0 elsewhere)", minimum=0)

    def __post_init__(self) -> None:
        validate(self)
        check_device(self.device)
        if not 0 <= self.seed < SEED_LIMIT:  # else torch fails only once the model is built
            raise SentibenchError(f"--seed must be 0 to {SEED_LIMIT - 1} (numpy's seed "
                                  f"range), got {self.seed}")
        if not self.warmup_ratio < 1:
            raise SentibenchError(f"--warmup-ratio must be below 1, got {self.warmup_ratio}")
        if self.select_best != "none" and self.eval_every is None:
            raise SentibenchError("--select-best needs --eval-every N (how often to score "
                                  "the validation split)")
        if self.window_stride is not None and not self.eval_windows:
            raise SentibenchError("--window-stride needs --eval-windows")
        if self.early_stopping_patience is not None and self.select_best == "none":
            raise SentibenchError("--early-stopping-patience needs --select-best "
                                  "val_accuracy or val_loss")

    def to_dict(self) -> dict:
        return to_dict(self)

    @property
    def lora_suffixes(self) -> list[str]:
        return [s.strip() for s in (self.lora_targets or "").split(",") if s.strip()]

    @property
    def truncation_rule(self) -> Truncation:
        return Truncation(self.truncation, self.head_tokens)


@dataclass
class PredictConfig:
    """How ``predict`` scores text with a saved neural run (opt-in speed and reach)."""

    quantize: str = option(
        "none", "int8: torch's dynamic int8 quantization of every Linear layer (weights int8 "
                "per output channel, activations quantized on the fly; CPU only): about 3x "
                "faster; the texts it is unsure of are scored again in float32 (--int8-recheck)",
        choices=QUANTIZE)
    int8_recheck: float = option(
        0.1, "--quantize int8: texts whose two most probable classes are closer than this "
             "(in probability) are scored again in float32, since the int8 error may have "
             "flipped their label (0 = never; 1 = always, i.e. no speed-up)", minimum=0)
    backend: str = option(
        "torch", "torch: the run's weights; onnx: the ONNX model `sentibench export` wrote "
                 "into the run (RUN/onnx/; with --quantize int8 its int8 file), run by "
                 "onnxruntime", choices=("torch", "onnx"))
    windows: str = option(
        "auto", "score each review as overlapping windows with averaged logits (on), as one "
                "truncated input (off), or as the run was evaluated (auto: its --eval-windows "
                "and --window-stride)", choices=WINDOWS)

    def __post_init__(self) -> None:
        validate(self)
