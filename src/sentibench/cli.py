"""Command-line entry point: parses arguments and dispatches, nothing else.

Every option of the reference scripts is accepted verbatim (``--num_epochs``) and in
kebab-case (``--num-epochs``). The flags of ``prepare`` and of the training commands are
generated from the option dataclasses (:mod:`sentibench.core.options`), so each is declared
once. This module imports neither torch nor pandas: ``--help``, ``prepare``, ``report``
and ``train-logreg`` start fast, and each handler imports only what its command needs.
"""

from __future__ import annotations

import argparse
import atexit
import functools
import importlib
import signal
import sys
import textwrap
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sentibench import __version__
from sentibench.bench.plan import BenchArgs
from sentibench.bench.presets import PRESETS
from sentibench.bench.tune import TuneArgs
from sentibench.core import runtime
from sentibench.core.errors import SentibenchError
from sentibench.core.interrupts import Interrupts
from sentibench.core.options import add_flag, add_options, from_namespace
from sentibench.core.parsers import CommandParser, OneLineParser
from sentibench.data.config import SOURCE_ENV, DataArgs, PrepareConfig
from sentibench.engine.config import DEVICE_HELP, PredictConfig, TrainConfig
from sentibench.models.registry import FAMILIES, MODELS, Family
from sentibench.run.results import RunArgs, short_name
from sentibench.serve.export_options import ExportArgs
from sentibench.serve.options import ServeArgs
from sentibench.speed.args import SpeedArgs
from sentibench.track.options import TrackArgs


def _add_data_and_output(parser: argparse.ArgumentParser) -> None:
    add_options(parser.add_argument_group("data"), DataArgs)
    add_options(parser.add_argument_group("output"), RunArgs)
    add_options(parser.add_argument_group("tracking"), TrackArgs)


def data_args(args: argparse.Namespace) -> DataArgs:
    return from_namespace(DataArgs, args)


def run_args(args: argparse.Namespace, argv: list[str]) -> RunArgs:
    return from_namespace(RunArgs, args, command=["sentibench", *argv],
                          track=from_namespace(TrackArgs, args))


# --- prepare -------------------------------------------------------------------------

def _add_prepare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prepare", help="write a data set's train/validation/test CSVs",
                       description="Prepare a labelled text data set: the reference's IMDb "
                                   "split exactly (or the official one), the book's SMS spam "
                                   "split, your own files, or a Hugging Face data set.")
    add_options(p, PrepareConfig)
    p.set_defaults(handler=_run_prepare)


def _run_prepare(args: argparse.Namespace, argv: list[str]) -> None:
    from sentibench.data.sources import prepare_dataset

    prepare_dataset(from_namespace(PrepareConfig, args))


# --- train-logreg --------------------------------------------------------------------

FEATURES = {"count": "logreg", "tfidf": "logreg-tfidf"}  # --features -> registry name


def _add_train_logreg(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(FAMILIES["sklearn"].command, help=FAMILIES["sklearn"].summary,
                       description="The reference's train_sklearn_logreg.py: DummyClassifier "
                                   "and CountVectorizer + LogisticRegression(max_iter=1000); "
                                   "--features tfidf for a stronger, still fast, recipe.")
    add_flag(p, "--features", choices=list(FEATURES), default="count",
             help="count: the reference's CountVectorizer (default); tfidf: word 1-2-gram "
                  "TF-IDF with naive-Bayes log-count-ratio weighting")
    _add_data_and_output(p)
    p.set_defaults(handler=_run_train_logreg)


def _run_train_logreg(args: argparse.Namespace, argv: list[str]) -> None:
    from sentibench.run.sklearn import run_logreg_command

    run_logreg_command(FEATURES[args.features], data_args(args), run_args(args, argv))


# --- neural training: one sub-command per engine family ---------------------------------

def _add_neural(sub: argparse._SubParsersAction, family: Family) -> None:
    summary = family.summary[0].upper() + family.summary[1:]
    names = [n for n, s in MODELS.items() if s.family == family.name]
    p = sub.add_parser(family.command, help=family.summary.split(" (")[0],
                       description=f"{summary}, flag for flag. Registered models: "
                                   f"{', '.join(names)}.")
    add_options(p.add_argument_group("model"), family.args)
    training = p.add_argument_group("training")
    add_options(training, TrainConfig, defaults=family.train_defaults)
    add_flag(training, "--resume", type=Path, default=None, metavar="RUN_DIR",
             help="continue an interrupted run from its checkpoint (other flags ignored)")
    _add_data_and_output(p)
    p.set_defaults(handler=_run_neural, family=family.name)


def _run_neural(args: argparse.Namespace, argv: list[str]) -> None:
    """Resume a run, or build the model arguments (validated) and train."""
    from sentibench.run.neural import resume_neural, run_neural

    if args.resume is not None:
        resume_neural(args.resume, from_namespace(TrackArgs, args))
        return
    family = FAMILIES[args.family]
    model_args = from_namespace(family.args, args)
    model = getattr(model_args, family.model_field)
    run_neural(short_name(model), family.name, model_args, from_namespace(TrainConfig, args),
               data_args(args), run_args(args, argv))


# --- training outside the engine: one sub-command per family with its own fit ------------

def _add_fitted(sub: argparse._SubParsersAction, family: Family) -> None:
    summary = family.summary[0].upper() + family.summary[1:]
    names = [n for n, s in MODELS.items() if s.family == family.name]
    p = sub.add_parser(family.command, help=family.summary.split(" (")[0],
                       description=f"{summary}. Registered models: {', '.join(names)}."
                                   + (f' Needs the {family.extra!r} extra: pip install '
                                      f'"sentibench[{family.extra}]".' if family.extra else ""))
    add_options(p.add_argument_group("model"), family.args)
    _add_data_and_output(p)
    p.set_defaults(handler=_run_fitted, family=family.name)


def _run_fitted(args: argparse.Namespace, argv: list[str]) -> None:
    from sentibench.run.fitted import run_fitted_command

    family = FAMILIES[args.family]
    model_args = from_namespace(family.args, args)
    model = getattr(model_args, family.model_field)
    run_fitted_command(short_name(model), family.name, model_args, data_args(args),
                       run_args(args, argv))


# --- bench, report, predict ----------------------------------------------------------

def _preset_list() -> str:
    """One wrapped paragraph per preset, from the presets' own summaries."""
    return "\n".join(textwrap.fill(f"{len(p.rows)} rows, {p.dataset}: {p.summary}", 80,
                                    initial_indent=f"  {name:<16}", subsequent_indent=" " * 18)
                      for name, p in PRESETS.items())


def _add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench", help="run the whole comparison and build the table",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run a set of experiments, each in its own run directory under one "
                    "bench directory, then write results.md/.csv and plots.\n\n"
                    f"presets:\n{_preset_list()}\n\n"
                    "overrides: --set MODEL.KEY=VALUE (repeatable) or --config FILE.toml with\n"
                    "one [MODEL] table per model; keys are the training command's options in\n"
                    "snake_case (num_epochs, learning_rate, batch_size, trainable_layers,\n"
                    "max_train_samples, ...), values are type-checked; MODEL.tune=SPACE is\n"
                    "the row's search space for --tune (tune --space syntax).")
    add_flag(p, "--preset", choices=list(PRESETS), default="quick",
             help="the rows to run (default: %(default)s)")
    add_flag(p, "--models", default=None,
             help=f"comma-separated row names of the preset, registered models "
                  f"({', '.join(MODELS)}) or paths/Hub ids; replaces the preset's list")
    add_flag(p, "--set", dest="overrides", action="append", default=[],
             metavar="MODEL.KEY=VALUE", help="override one setting of one model")
    add_flag(p, "--config", type=Path, default=None, help="TOML file of overrides")
    add_flag(p, "--out", type=Path, default=None,
             help="bench directory (default: runs/bench-<UTC timestamp>); an existing one "
                  "resumes, skipping completed experiments")
    add_flag(p, "--rerun", type=Path, default=None,
             help="repeat the exact plan of an earlier bench directory")
    add_flag(p, "--data-dir", type=Path, default=None,
             help="prepared data, prepared from --source if missing (default: data/imdb, or "
                  "data/sms-spam for the spam presets)")
    add_flag(p, "--source", default=None,
             help=f"archive URL or path for preparing the data (as for `prepare`; default: "
                  f"env {SOURCE_ENV}, else the official URL)")
    add_flag(p, "--device", default="auto", help=DEVICE_HELP)
    add_flag(p, "--seeds", default=None, metavar="N|S1,S2,...",
             help="run every row that depends on randomness once per seed: a count (3: seeds "
                  "123, 124, 125) or a list; the table shows mean ± std and the range")
    add_flag(p, "--ensemble", type=int, default=None, metavar="K",
             help="add a row averaging the class probabilities of the K runs best on "
                  "validation (test labels are never used to choose)")
    add_options(p, BenchArgs)
    add_options(p.add_argument_group("tracking"), TrackArgs)
    p.set_defaults(handler=_run_bench)


def _run_bench(args: argparse.Namespace, argv: list[str]) -> None:
    from sentibench.bench.overrides import load_override_file, parse_overrides, parse_seeds
    from sentibench.bench.plan import load_rerun
    from sentibench.bench.run import run_bench

    command = ["sentibench", *argv]
    if args.rerun is not None:
        bench = load_rerun(args.rerun, args.out, command)
        bench.dry_run, bench.track = args.dry_run, from_namespace(TrackArgs, args)
        run_bench(bench)
        return
    overrides = load_override_file(args.config) if args.config else {}
    for row, values in parse_overrides(args.overrides).items():
        overrides.setdefault(row, {}).update(values)
    models = None if args.models is None else [m.strip() for m in args.models.split(",")
                                               if m.strip()]
    if models == []:
        raise SentibenchError("--models lists no model; name at least one, or leave "
                              "--models out to run the preset's rows")
    bench = BenchArgs(preset=args.preset, models=models, overrides=overrides, out=args.out,
                      data_dir=args.data_dir, source=args.source, device=args.device,
                      seeds=parse_seeds(args.seeds) if args.seeds else None,
                      ensemble=args.ensemble, dry_run=args.dry_run, overwrite=args.overwrite,
                      tune=args.tune, track=from_namespace(TrackArgs, args),
                      train_sizes=args.train_sizes, per_class=args.per_class,
                      command=command)
    run_bench(bench)


def _add_options_command(sub: argparse._SubParsersAction, name: str, help: str,
                         description: str, cls: type | tuple[type, ...], target: str,
                         positional: tuple[str, dict[str, Any]] | None = None) -> None:
    """A command whose flags are option dataclasses, run by ``module:function`` (imported
    only when the command runs) with the ``positional`` argument's value first (a name and
    ``add_argument``'s keywords), then one instance per dataclass."""
    p = sub.add_parser(name, help=help, description=description)
    if positional is not None:
        p.add_argument(positional[0], **positional[1])
    classes = cls if isinstance(cls, tuple) else (cls,)
    for each in classes:
        add_options(p, each)
    p.set_defaults(handler=functools.partial(_run_options_command, classes, target,
                                             positional and positional[0]))


def _run_options_command(classes: tuple[type, ...], target: str, positional: str | None,
                         args: argparse.Namespace, argv: list[str]) -> None:
    module, function = target.split(":")
    first = [getattr(args, positional)] if positional else []
    getattr(importlib.import_module(module), function)(
        *first, *(from_namespace(cls, args) for cls in classes))


def _add_tune(sub: argparse._SubParsersAction) -> None:
    _add_options_command(
        sub, "tune", "search a row's settings on the validation split (Optuna)",
        "Tune one row of a comparison: each trial is a run directory in the study directory, "
        "scored on validation only. Several workers join one study by running the same "
        "command (the same --study-dir on one machine, or the same --storage URL on many); "
        "--trials caps the whole study.", (TuneArgs, TrackArgs),
        "sentibench.bench.tune:run_tune")


def _add_serve(sub: argparse._SubParsersAction) -> None:
    _add_options_command(
        sub, "serve", "an HTTP API and a web page around saved runs",
        "Serve saved runs (any kind, ensembles too) over HTTP: POST /predict (or "
        "/models/NAME/predict) with {\"text\": ...} or {\"texts\": [...]}; GET /health, "
        "/ready, /info, /metrics (Prometheus) and a page at /. Texts from concurrent requests "
        "are scored together. Needs the 'serve' extra (FastAPI, uvicorn, prometheus-client).",
        (ServeArgs, PredictConfig), "sentibench.serve.server:run_server",
        ("run_dirs", {"type": Path, "nargs": "+", "help": "run directories to serve"}))


def _add_export(sub: argparse._SubParsersAction) -> None:
    _add_options_command(
        sub, "export", "a saved neural run as an ONNX model, checked on its test rows",
        "Export a run's classifier to ONNX (optionally with an int8 copy), then score the "
        "run's test rows with it: the agreement with the labels the run saved and the exact "
        "McNemar p-value are printed, and below 99.5 % agreement nothing is kept. "
        "predict/serve --backend onnx run it.", ExportArgs, "sentibench.serve.export:export_run",
        ("run_dir", {"type": Path, "help": "a run directory holding results.json"}))


def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="(re)build tables and plots of a bench directory",
                       description="Build results.md, results.csv and PNG plots from the "
                                   "results.json files of a bench directory alone.")
    p.add_argument("bench_dir", type=Path, help="a directory written by `sentibench bench`")
    add_flag(p, "--to", default=None, metavar="TRACKERS",
             help="instead, send the finished bench (or one run directory) to trackers: "
                  "tensorboard, mlflow or both, comma-separated")
    add_options(p.add_argument_group("tracking"), TrackArgs, skip=("report_to",))
    p.set_defaults(handler=_run_report)


def _run_report(args: argparse.Namespace, argv: list[str]) -> None:
    if args.to is not None:
        from sentibench.report.send import send_saved

        count = send_saved(args.bench_dir, args.to, from_namespace(TrackArgs, args))
        print(f"Sent {count} run{'s' * (count != 1)} of {args.bench_dir} to {args.to}")
        return
    from sentibench.report.build import build_report
    from sentibench.report.tables import format_table, load_rows

    print(format_table(load_rows(args.bench_dir)))  # first: build_report may end in an error
    paths = build_report(args.bench_dir)
    print(f"\nWrote {', '.join(str(p) for p in paths)}")


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="label new reviews with a saved run",
                       description="Print label, probability and text for each input, using "
                                   "the model saved in a run directory (any kind).")
    p.add_argument("run_dir", type=Path, help="a run directory holding results.json")
    p.add_argument("texts", nargs="*", help="reviews to classify")
    add_flag(p, "--file", type=Path, default=None, help="text file, one review per line")
    add_flag(p, "--csv", type=Path, default=None, help="CSV file with a text column")
    add_flag(p, "--column", default="text", help="CSV column to read (default: %(default)s)")
    add_flag(p, "--device", default="cpu", help="cpu (default), cuda or mps")
    add_options(p, PredictConfig)
    p.set_defaults(handler=_run_predict)


def _run_predict(args: argparse.Namespace, argv: list[str]) -> None:
    from sentibench.serve.predict import read_inputs, run_predict

    texts = read_inputs(args.texts, args.file, args.csv, args.column)
    run_predict(args.run_dir, texts, device=args.device,
                settings=from_namespace(PredictConfig, args))


def _add_speedtest(sub: argparse._SubParsersAction) -> None:
    _add_options_command(
        sub, "speedtest", "measure this device's training and evaluation speed",
        "Train and evaluate the reference's models (random weights at their real sizes, "
        "synthetic tokens) for a few steps through sentibench's engine: tokens/s, step time, "
        "peak memory, MFU, and correctness checks (bf16 vs fp32, compiled vs eager, loss "
        "falls, no NaN, one-process DDP). The figures feed `bench --dry-run`.", SpeedArgs,
        "sentibench.speed.run:run_speedtest")


# --- entry point ---------------------------------------------------------------------

def _add_commands(sub: argparse._SubParsersAction) -> None:
    _add_prepare(sub)
    _add_train_logreg(sub)
    for family in FAMILIES.values():
        if family.engine:
            _add_neural(sub, family)
        elif family.fit is not None:
            _add_fitted(sub, family)
    _add_bench(sub)
    _add_tune(sub)
    _add_report(sub)
    _add_predict(sub)
    _add_serve(sub)
    _add_export(sub)
    _add_speedtest(sub)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="sentibench",
        description="Fine-tuned GPT-2 vs encoder LLMs vs bag-of-words on IMDb sentiment.",
    )
    parser.add_argument("--version", action="version", version=f"sentibench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                parser_class=CommandParser)
    _add_commands(sub)
    return parser


def _run(args: argparse.Namespace, argv: list[str], prog: str) -> int:
    """Run the command: its exit status, and its one-line error on stderr."""
    try:
        args.handler(args, argv)
    except SentibenchError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: error: interrupted", file=sys.stderr)
        return 130
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; 0, 2 (a one-line error) or 130 (interrupted).

    Without ``argv`` (the ``sentibench`` script, ``python -m sentibench``) main owns the
    process: a Ctrl-C counts until the process has exited (see
    :class:`sentibench.core.interrupts.Interrupts`).
    Called with ``argv`` (tests, other programs), it counts while the command runs and puts
    the caller's SIGINT handler back."""
    runtime.configure()  # before anything imports torch
    owns_process = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    watch = Interrupts()
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, watch) if main_thread else None
    if owns_process and main_thread:
        atexit.register(watch.end_process)
    try:
        args = build_parser().parse_args(argv)
        watch.prog = prog = f"sentibench {args.command}"
        code = _run(args, argv, prog)
        if watch.count and code != 130:  # swallowed on the way up, yet asked for
            print(f"{prog}: error: interrupted", file=sys.stderr)
            code = 130
        watch.code, watch.raising = code, False
    finally:
        if main_thread and not owns_process:
            signal.signal(signal.SIGINT, previous)
    return code


if __name__ == "__main__":
    sys.exit(main())
