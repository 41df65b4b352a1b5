"""Command-line entry point: parses arguments and dispatches, nothing else.

Every option of the reference scripts is accepted verbatim (``--num_epochs``) and in
kebab-case (``--num-epochs``). Each sub-command maps to exactly one function in the
module that owns the work.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from . import __version__
from .config import (
    DEFAULT_DATA_DIR,
    FAST_DROPOUT,
    FEATURE_CACHE,
    PRECISIONS,
    SPLIT_BATCHES,
    DataArgs,
    RunArgs,
)
from .errors import SentibenchError
from .models.registry import MODELS, TOKEN_POSITIONS, TRAINABLE_LAYERS, GPTArgs, HFArgs
from .training import TrainConfig

Handler = Callable[[argparse.Namespace, list[str]], None]


def parse_bool(value: str) -> bool:
    """``true``/``false`` (the reference's spelling) and the usual synonyms."""
    lowered = value.strip().lower()
    if lowered in {"true", "1", "yes", "on"}:
        return True
    if lowered in {"false", "0", "no", "off"}:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if number <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return number


def positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value!r}") from None
    if not number > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value!r}")
    return number


def add_option(group: argparse._ActionsContainer, name: str, dest_name: str | None = None,
               **kwargs) -> None:
    """Add ``--snake_case`` together with its ``--kebab-case`` spelling."""
    names = [name]
    kebab = name.replace("_", "-")
    if kebab != name:
        names.append(kebab)
    snake = "--" + name[2:].replace("-", "_")
    if snake not in names:
        names.append(snake)
    group.add_argument(*names, dest=dest_name or name[2:].replace("-", "_"), **kwargs)


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("data")
    add_option(group, "--data-dir", type=Path, default=DEFAULT_DATA_DIR,
               help="folder with train.csv, validation.csv, test.csv (default: %(default)s)")
    add_option(group, "--max-train-samples", type=positive_int, default=None,
               help="use only the first N rows of train.csv (debugging / quick runs)")
    add_option(group, "--max-eval-samples", type=positive_int, default=None,
               help="use only the first N rows of validation.csv and of test.csv")


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    add_option(parser.add_argument_group("output"), "--out", type=Path, default=None,
               help="run directory (default: runs/<model>-<UTC timestamp>)")


def data_args(args: argparse.Namespace) -> DataArgs:
    return DataArgs(args.data_dir, args.max_train_samples, args.max_eval_samples)


def run_args(args: argparse.Namespace, argv: list[str]) -> RunArgs:
    return RunArgs(out=args.out, command=["sentibench", *argv])


# --- prepare -------------------------------------------------------------------------

def _add_prepare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prepare", help="download/verify the IMDb archive and write the split CSVs",
                       description="Reproduce the reference's 35k/5k/10k IMDb split exactly "
                                   "(or the official 25k/25k split) from the aclImdb archive.")
    add_option(p, "--source", default=os.environ.get("SENTIBENCH_IMDB_SOURCE"),
               help="archive URL or local .tar.gz (default: env SENTIBENCH_IMDB_SOURCE, "
                    "else the official Stanford URL)")
    add_option(p, "--data-dir", type=Path, default=DEFAULT_DATA_DIR,
               help="where to write the CSVs (default: %(default)s)")
    add_option(p, "--md5", default=None, help="expected md5 of a custom archive")
    add_option(p, "--sha256", default=None, help="expected sha256 of a custom archive")
    add_option(p, "--split", choices=["reference", "official"], default="reference",
               help="reference: pooled 50k double-shuffled 35k/5k/10k (default); "
                    "official: movie-disjoint 25k train (minus validation) / 25k test")
    add_option(p, "--dedupe", action="store_true",
               help="drop exact duplicate review texts before splitting")
    add_option(p, "--force", action="store_true", help="rewrite even if the outputs are current")
    p.set_defaults(handler=_run_prepare)


def _run_prepare(args: argparse.Namespace, argv: list[str]) -> None:
    from .data import PrepareConfig, prepare

    prepare(PrepareConfig(source=args.source, data_dir=args.data_dir, md5=args.md5,
                          sha256=args.sha256, split=args.split, dedupe=args.dedupe,
                          force=args.force))


# --- train-logreg --------------------------------------------------------------------

def _add_train_logreg(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train-logreg", help="bag-of-words baselines (dummy, logistic regression)",
                       description="The reference's train_sklearn_logreg.py: DummyClassifier "
                                   "and CountVectorizer + LogisticRegression(max_iter=1000); "
                                   "--features tfidf for a stronger, still fast, recipe.")
    add_option(p, "--features", choices=["count", "tfidf"], default="count",
               help="count: the reference's CountVectorizer (default); tfidf: word 1-2-gram "
                    "TF-IDF with naive-Bayes log-count-ratio weighting")
    _add_data_options(p)
    _add_run_options(p)
    p.set_defaults(handler=_run_train_logreg)


def _run_train_logreg(args: argparse.Namespace, argv: list[str]) -> None:
    from .baselines import run_logreg_command

    run_logreg_command(args.features, data_args(args), run_args(args, argv))


# --- neural training (shared options) -------------------------------------------------

def _add_training_options(parser: argparse.ArgumentParser, learning_rate: float) -> None:
    group = parser.add_argument_group("training")
    add_option(group, "--num_epochs", type=positive_int, default=1,
               help="passes over the training set (default: %(default)s)")
    add_option(group, "--learning_rate", type=positive_float, default=learning_rate,
               help="AdamW learning rate, weight decay 0.1 (default: %(default)s)")
    add_option(group, "--batch-size", type=positive_int, default=8,
               help="training batch size (default: %(default)s, the reference's)")
    add_option(group, "--eval-batch-size", type=positive_int, default=None,
               help="batch size of length-sorted evaluation batches (default: 64 on CUDA, "
                    "the training batch size on CPU, where larger batches are slower)")
    add_option(group, "--seed", type=int, default=123, help="random seed (default: %(default)s)")
    add_option(group, "--device", default="auto",
               help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps")
    add_option(group, "--precision", choices=PRECISIONS, default="auto",
               help="autocast dtype; auto = bf16 on CUDA, fp32 elsewhere")
    add_option(group, "--compile", action="store_true", help="wrap the model in torch.compile")
    add_option(group, "--max-steps", type=positive_int, default=None,
               help="stop after N optimizer steps (debugging)")
    add_option(group, "--feature-cache", choices=FEATURE_CACHE, default="auto",
               help="run the frozen part of the model once per example and train the rest "
                    "on its cached output (pooled features for last_layer, the last block's "
                    "input for last_block); auto = only where exact (GPT-2; default)")
    add_option(group, "--feature-cache-gb", type=float, default=None,
               help="memory the feature cache may use, in GiB (default: half of the memory "
                    "available); a split that does not fit runs through the whole model")
    add_option(group, "--num-workers", type=int, default=None,
               help="worker processes that collate batches ahead of the model (default: 2 on "
                    "CUDA, where batches are also pinned for faster copies; 0 elsewhere)")
    add_option(group, "--group-by-length", action="store_true",
               help="batch training examples of similar length (less padding; changes batch "
                    "composition, so off by default)")
    add_option(group, "--split-batches", choices=SPLIT_BATCHES, default="auto",
               help="cut each training batch into length-sorted micro-batches and add up "
                    "their gradients: the same batch, loss and gradient with less padding "
                    "(auto = on CPU, where padding costs time; never with fixed padding)")
    add_option(group, "--fast-dropout", choices=FAST_DROPOUT, default="auto",
               help="draw CPU dropout masks with numpy's SFC64 generator, seeded from torch's: "
                    "the same distribution, about 3x faster than torch's CPU "
                    "bernoulli (auto = on CPU without --compile; off = torch's own masks)")
    add_option(group, "--save-every", type=positive_int, default=None,
               help="checkpoint every N steps (also saved on Ctrl-C / SIGTERM)")
    add_option(group, "--resume", type=Path, default=None, metavar="RUN_DIR",
               help="continue an interrupted run from its checkpoint (other flags ignored)")


def train_config(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(num_epochs=args.num_epochs, batch_size=args.batch_size,
                       learning_rate=args.learning_rate, eval_batch_size=args.eval_batch_size,
                       seed=args.seed, device=args.device, precision=args.precision,
                       compile=args.compile, max_steps=args.max_steps,
                       feature_cache=args.feature_cache,
                       feature_cache_gb=args.feature_cache_gb, save_every=args.save_every,
                       group_by_length=args.group_by_length, num_workers=args.num_workers,
                       split_batches=args.split_batches, fast_dropout=args.fast_dropout)


def _add_train_gpt(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train-gpt", help="fine-tune the from-scratch GPT-2 as a classifier",
                       description="The reference's train_gpt.py, flag for flag.")
    group = p.add_argument_group("model")
    add_option(group, "--model_size", default="gpt2-small (124M)",
               help="'gpt2-small (124M)', 'gpt2-medium (355M)', 'gpt2-large (774M)', "
                    "'gpt2-xl (1558M)', a Hub repo id or a local directory")
    add_option(group, "--weights", choices=["pretrained", "random"], default="pretrained")
    add_option(group, "--trainable_layers", choices=list(TRAINABLE_LAYERS), default="last_block",
               help="all; last_block (last block + final norm + head); last_layer (head)")
    add_option(group, "--trainable_token_pos", choices=list(TOKEN_POSITIONS), default="last",
               help="last: each review's true last token; first: position 0; last_padded: "
                    "position -1 of a sequence padded to the context length (the reference)")
    add_option(group, "--average_embeddings", action="store_true",
               help="classify the mean of the token outputs instead of one position")
    add_option(group, "--context_length", default="256",
               help="N, longest_training_example or model_context_length (default: 256)")
    _add_training_options(p, learning_rate=5e-5)
    _add_data_options(p)
    _add_run_options(p)
    p.set_defaults(handler=_run_train_gpt)


def _run_neural(args: argparse.Namespace, argv: list[str], family: str, model: str,
                make_args: Callable[[], object]) -> None:
    """Resume a run, or build the model arguments (validated) and train."""
    from .experiments import resume_neural, run_neural

    if args.resume is not None:
        resume_neural(args.resume)
        return
    run_neural(_short_name(model), family, make_args(), train_config(args), data_args(args),
               run_args(args, argv))


def _run_train_gpt(args: argparse.Namespace, argv: list[str]) -> None:
    _run_neural(args, argv, "gpt2", args.model_size, lambda: GPTArgs(
        args.model_size, args.weights, args.trainable_layers, args.trainable_token_pos,
        args.average_embeddings, args.context_length))


def _add_train_hf(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train-hf", help="fine-tune a Hugging Face encoder (BERT family)",
                       description="The reference's train_bert_hf.py, flag for flag.")
    group = p.add_argument_group("model")
    hf_names = [n for n, s in MODELS.items() if s.family == "hf"]
    add_option(group, "--model", default="distilbert",
               help=f"one of {', '.join(hf_names)}, a Hub id or a local directory")
    add_option(group, "--trainable_layers", choices=list(TRAINABLE_LAYERS), default="all",
               help="all; last_block (last encoder layer + pooler + head); last_layer (head)")
    add_option(group, "--use_attention_mask", type=parse_bool, default=True,
               metavar="{true,false}", help="pass the attention mask (default: true)")
    add_option(group, "--max-length", type=positive_int, default=256,
               help="truncate reviews to N tokens (default: %(default)s)")
    _add_training_options(p, learning_rate=5e-6)
    _add_data_options(p)
    _add_run_options(p)
    p.set_defaults(handler=_run_train_hf)


def _run_train_hf(args: argparse.Namespace, argv: list[str]) -> None:
    _run_neural(args, argv, "hf", args.model, lambda: HFArgs(
        args.model, args.trainable_layers, args.use_attention_mask, args.max_length))


def _short_name(model: str) -> str:
    """A registry name for run directories: 'gpt2-small (124M)' -> 'gpt2-small'."""
    return Path(model.split(" (")[0]).name or model


# --- bench, report, predict ----------------------------------------------------------

def _add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench", help="run the whole comparison and build the table",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run a set of experiments, each in its own run directory under one "
                    "bench directory, then write results.md/.csv and plots.\n\n"
                    "presets:\n"
                    "  quick      (default) dummy, logreg, logreg-tfidf on the full split, and\n"
                    "             all-MiniLM-L6-v2 (22.7M-parameter BERT, the smallest real\n"
                    "             pretrained transformer; installs from PyPI, so it runs\n"
                    "             offline) fine-tuned on 2,000 reviews, evaluated on 1,000\n"
                    "             validation/test reviews, 128 tokens: ~10 min on a laptop CPU\n"
                    "  reference  the reference's eight rows plus the dummy, its exact settings\n\n"
                    "overrides: --set MODEL.KEY=VALUE (repeatable) or --config FILE.toml with\n"
                    "one [MODEL] table per model; keys are the training command's options in\n"
                    "snake_case (num_epochs, learning_rate, batch_size, trainable_layers,\n"
                    "max_train_samples, ...), values are type-checked.")
    add_option(p, "--preset", default="quick", help="quick (default) or reference")
    add_option(p, "--models", default=None,
               help=f"comma-separated registered names ({', '.join(MODELS)}) or paths/Hub ids; "
                    "replaces the preset's list")
    add_option(p, "--set", dest_name="overrides", action="append", default=[],
               metavar="MODEL.KEY=VALUE", help="override one setting of one model")
    add_option(p, "--config", type=Path, default=None, help="TOML file of overrides")
    add_option(p, "--out", type=Path, default=None,
               help="bench directory (default: runs/bench-<UTC timestamp>); an existing one "
                    "resumes, skipping completed experiments")
    add_option(p, "--rerun", type=Path, default=None,
               help="repeat the exact plan of an earlier bench directory")
    add_option(p, "--data-dir", type=Path, default=DEFAULT_DATA_DIR,
               help="prepared data (prepared from --source if missing; default: %(default)s)")
    add_option(p, "--source", default=os.environ.get("SENTIBENCH_IMDB_SOURCE"),
               help="archive URL or path for preparing the data (as for `prepare`)")
    add_option(p, "--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.set_defaults(handler=_run_bench)


def _run_bench(args: argparse.Namespace, argv: list[str]) -> None:
    from .bench import BenchArgs, load_override_file, load_rerun, parse_overrides, run_bench

    command = ["sentibench", *argv]
    if args.rerun is not None:
        run_bench(load_rerun(args.rerun, args.out, command))
        return
    overrides = load_override_file(args.config) if args.config else {}
    for row, values in parse_overrides(args.overrides).items():
        overrides.setdefault(row, {}).update(values)
    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    run_bench(BenchArgs(preset=args.preset, models=models, overrides=overrides, out=args.out,
                        data_dir=args.data_dir, source=args.source, device=args.device,
                        command=command))


def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="(re)build tables and plots of a bench directory",
                       description="Build results.md, results.csv and PNG plots from the "
                                   "results.json files of a bench directory alone.")
    p.add_argument("bench_dir", type=Path, help="a directory written by `sentibench bench`")
    p.set_defaults(handler=_run_report)


def _run_report(args: argparse.Namespace, argv: list[str]) -> None:
    from .report import build_report, collect, format_table

    paths = build_report(args.bench_dir)
    print(format_table(collect(args.bench_dir)))
    print(f"\nWrote {', '.join(str(p) for p in paths)}")


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="label new reviews with a saved run",
                       description="Print label, probability and text for each input, using "
                                   "the model saved in a run directory (any kind).")
    p.add_argument("run_dir", type=Path, help="a run directory holding results.json")
    p.add_argument("texts", nargs="*", help="reviews to classify")
    add_option(p, "--file", type=Path, default=None, help="text file, one review per line")
    add_option(p, "--csv", type=Path, default=None, help="CSV file with a text column")
    add_option(p, "--column", default="text", help="CSV column to read (default: %(default)s)")
    add_option(p, "--device", default="cpu", help="cpu (default), cuda or mps")
    p.set_defaults(handler=_run_predict)


def _run_predict(args: argparse.Namespace, argv: list[str]) -> None:
    from .predict import read_inputs, run_predict

    texts = read_inputs(args.texts, args.file, args.csv, args.column)
    run_predict(args.run_dir, texts, device=args.device)


# --- entry point ---------------------------------------------------------------------

_COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_prepare,
    _add_train_logreg,
    _add_train_gpt,
    _add_train_hf,
    _add_bench,
    _add_report,
    _add_predict,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sentibench",
        description="Fine-tuned GPT-2 vs encoder LLMs vs bag-of-words on IMDb sentiment.",
    )
    parser.add_argument("--version", action="version", version=f"sentibench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in _COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        args.handler(args, argv)
    except SentibenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
