"""The plan of a bench: which rows run, each with every setting resolved and checked.

A plan is a list of :class:`Experiment` (registry name + resolved settings), built from a
preset or ``--models``, the models' defaults and ``--set`` overrides, and checked against
the option dataclasses before anything runs, so a bad combination fails in a second rather
than after hours. :mod:`sentibench.bench.run` writes it to ``bench.json`` and runs it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from sentibench.bench.presets import PRESETS, PresetRow
from sentibench.bench.sizes import parse_train_sizes, with_sizes
from sentibench.bench.space import parse_space
from sentibench.core.errors import SentibenchError
from sentibench.core.options import Opt, build, check, convert, option, option_map
from sentibench.data.config import DataArgs
from sentibench.engine.config import TrainConfig
from sentibench.models.registry import MODELS, check_installed, get_family, spec_for
from sentibench.run.results import PLAN_FILE, SEED_SUFFIX, short_name
from sentibench.track.options import TRACKING_KEYS, TrackArgs
from sentibench.track.send import child

GLOBAL_KEYS = ("device", "data_dir")  # one value for the whole bench, not per row
# Tokens each registered model's position embeddings reach, as its published config says
# (speed/configs/*.json max_position_embeddings; RoBERTa's 514 positions hold 512 tokens, as
# its tokenizer says; GPT-2's n_positions): known without loading any weights, so a length
# past them fails at plan time. A path or Hub id is only known once loaded.
LENGTH_LIMITS = {
    **dict.fromkeys(("gpt2-small", "gpt2-medium", "gpt2-large", "gpt2-xl"), 1024),
    **dict.fromkeys(("distilbert", "bert", "bert-large", "roberta", "deberta-v3-base",
                     "minilm", "setfit-minilm"), 512),
    **dict.fromkeys(("modernbert-base", "modernbert-large"), 8192),
}
LENGTH_FIELDS = {"max_length": "--max-length", "context_length": "--context_length"}


@dataclass
class Experiment:
    """One row of the comparison: a model and every setting that differs from defaults."""

    name: str
    model: str
    family: str
    settings: dict[str, Any] = field(default_factory=dict)
    group: str | None = None  # the row's name when it is one of several seeds
    note: str | None = None  # what the row shows (the preset's note)
    reference: dict[str, Any] | None = None  # published figures of exactly this row
    tune: str | None = None  # bench --tune: the row's own search space (default: its family's)
    row: str | None = None  # bench --train-sizes: the row this sized run is of


TUNE_KEY = "tune"  # --set ROW.tune=SPACE: the row's search space for bench --tune


def plan_entry(exp: Experiment) -> dict[str, Any]:
    """An experiment as bench.json records it (no empty note / reference keys, so plans
    written before rows had them still match)."""
    return {k: v for k, v in asdict(exp).items()
            if not (k in ("note", "reference", "tune", "row") and v is None)}


def allowed_settings(family: str) -> dict[str, Opt]:
    """Setting name -> option, from the dataclasses the family is configured by."""
    fam = get_family(family)
    opts = option_map(DataArgs, fam.args, *([TrainConfig] if fam.engine else []), TrackArgs)
    for key in (fam.model_field, *GLOBAL_KEYS):
        opts.pop(key, None)
    return opts


def coerce(row: str, key: str, value: Any, opt: Opt) -> Any:
    """Typed, checked overrides: ``--set gpt2-small.num_epochs=2`` gives the int 2."""
    try:
        converted = convert(opt, value)
        check(opt, converted)
    except SentibenchError as exc:
        raise SentibenchError(f"override {row}.{key}={value!r}: "
                              f"{str(exc).removeprefix(opt.flag + ': ')}") from None
    return converted


def plan(preset: str, models: list[str] | None, overrides: dict[str, dict[str, Any]],
         seeds: list[int] | None = None) -> list[Experiment]:
    """Resolve names, defaults and overrides into a checked list of experiments; with
    ``seeds``, every row that depends on randomness runs once per seed."""
    rows = preset_rows(preset, models)
    names = [row.row_name for row in rows]
    if len(set(names)) != len(names):
        raise SentibenchError(f"--models lists a row (or two paths with the same final "
                              f"name) twice: {', '.join(names)}")
    known = set(names) | {row.model for row in rows}
    unknown_rows = set(overrides) - known
    if unknown_rows:
        raise SentibenchError(f"override for {sorted(unknown_rows)[0]!r}, which is not in the "
                              f"bench; rows: {', '.join(names)}")
    return with_seeds([_experiment(row, overrides) for row in rows], seeds)


def preset_rows(preset: str, models: list[str] | None) -> list[PresetRow]:
    """The preset's rows, or the ones ``--models`` names: a row by its name, a model by the
    preset's first row of it (keeping that row's settings), anything else as a new row."""
    if preset not in PRESETS:
        raise SentibenchError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
    rows = PRESETS[preset].rows
    if models is None:
        return list(rows)
    by_name = {row.row_name: row for row in rows}
    by_model: dict[str, PresetRow] = {}
    for row in rows:
        by_model.setdefault(row.model, row)
    return [by_name.get(m) or by_model.get(m) or PresetRow(m, name=row_name(m))
            for m in models]


def _experiment(row: PresetRow, overrides: dict[str, dict[str, Any]]) -> Experiment:
    """A preset row with its model's defaults and the overrides (by model, then by row
    name), checked now."""
    name, spec = row.row_name, spec_for(row.model)
    kinds = allowed_settings(spec.family)
    settings = {k: v for k, v in spec.defaults.items() if k in kinds}
    settings.update(row.settings)
    tune = row.tune
    for key, value in {**overrides.get(row.model, {}), **overrides.get(name, {})}.items():
        if key == TUNE_KEY:  # not a setting of the row: what bench --tune searches for it
            tune = str(value)
            continue
        if key not in kinds:
            raise SentibenchError(f"unknown override key {name}.{key}; "
                                  f"allowed: {', '.join(sorted(kinds))}")
        settings[key] = coerce(name, key, value, kinds[key])
    _check_row(name, spec.name, spec.family, settings)
    if tune is not None:
        try:
            parse_space(tune, kinds)  # a bad space is an error now, before anything runs
        except SentibenchError as exc:
            raise SentibenchError(f"{name}.{TUNE_KEY}: {exc}") from None
    reference = asdict(row.reference) if row.reference is not None else None
    return Experiment(name, spec.name, spec.family, settings, note=row.note,
                      reference=reference, tune=tune)


def with_seeds(experiments: list[Experiment], seeds: list[int] | None,
               draws: bool = False) -> list[Experiment]:
    """One experiment per seed for the rows whose training depends on a seed (the families
    with a ``seed`` setting; the scikit-learn rows are deterministic and run once).
    ``draws`` (a ``--train-sizes`` sweep): the seed also draws the training subset
    (``subset_seed``), so every row runs once per seed."""
    if not seeds:
        return experiments
    out = []
    for exp in experiments:
        seeded = "seed" in allowed_settings(exp.family)
        if not (seeded or draws):
            out.append(exp)
            continue
        out += [replace(exp, name=f"{exp.name}{SEED_SUFFIX}{seed}", group=exp.name,
                        settings={**exp.settings, **({"subset_seed": seed} if draws else {}),
                                  **({"seed": seed} if seeded else {})})
                for seed in seeds]
    return out


def _check_row(name: str, model: str, family_name: str, settings: dict[str, Any]) -> None:
    """Build the row's option dataclasses now, so that a bad combination fails before the
    first row runs rather than after hours."""
    try:
        check_installed(get_family(family_name))
        _, model_args, _ = row_options(family_name, model, settings)
        check_length(model, model_args)
        build(TrackArgs, settings)  # a tracker that is unknown or not installed
    except SentibenchError as exc:
        raise SentibenchError(f"bench row {name}: {exc}") from None


def check_length(model: str, model_args: Any) -> None:
    """A length asked for by number past a registered model's position embeddings is refused
    in the words the training run would use after loading the model (the option's default
    is cut to the limit there, with a note, so it passes here too)."""
    limit = LENGTH_LIMITS.get(model)
    for key, flag in LENGTH_FIELDS.items():
        value = getattr(model_args, key, None)
        if limit is None or not str(value).isdigit():
            continue  # unknown limit, or a keyword (longest_training_example, ...)
        length, default = int(value), int(_field_default(type(model_args), key))
        if length > limit and length != default:
            raise SentibenchError(f"{flag} {length} exceeds the {limit} tokens this model "
                                  "accepts (its position embeddings end there); use at most "
                                  f"{limit}, or --eval-windows to read longer texts")


def _field_default(cls: type, name: str) -> Any:
    return next(f.default for f in fields(cls) if f.name == name)


def row_options(family_name: str, model: str, settings: dict[str, Any],
                data_dir: Path | None = None, device: str | None = None
                ) -> tuple[DataArgs, Any, TrainConfig | None]:
    """A row's data, model and (neural families) training options from its settings; the
    bench-wide data directory and device, where given, override the defaults (the device
    reaches the model options of a family that has one: SetFit trains outside the
    engine)."""
    family = get_family(family_name)
    data = build(DataArgs, settings, **({"data_dir": data_dir} if data_dir else {}))
    own = {family.model_field: model} if family.model_field else {}
    if device and "device" in {f.name for f in fields(family.args)}:
        own["device"] = device  # a family trained outside the engine that has a device
    model_args = build(family.args, settings, **own)
    train = build(TrainConfig, settings, **({"device": device} if device else {})) \
        if family.engine else None
    return data, model_args, train


def row_tracking(track: TrackArgs, name: str, settings: dict[str, Any],
                 tags: dict[str, str] | None = None) -> TrackArgs:
    """A row's trackers: the bench's, with the row's own ``--set ROW.report_to=...`` (and
    companions) over them, its TensorBoard files in their own directory."""
    own = {k: settings[k] for k in TRACKING_KEYS if k in settings}
    return child(replace(track, **own) if own else track, name, tags)


def takes_device(family_name: str) -> bool:
    """Whether a row of the family runs on the bench's ``--device`` (the engine's families,
    and one whose model options have a device)."""
    family = get_family(family_name)
    return family.engine or "device" in {f.name for f in fields(family.args)}


def row_name(model: str) -> str:
    """A registered name as is; a path or Hub id by its last component (the run dir name)."""
    return model if model in MODELS else short_name(model)


@dataclass
class BenchArgs:
    """What ``sentibench bench`` was asked to do."""

    preset: str = "quick"
    models: list[str] | None = None
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    out: Path | None = None
    data_dir: Path | None = None  # None: data/<the preset's data set>
    source: str | None = None
    device: str = "auto"
    seeds: list[int] | None = None
    ensemble: int | None = None  # K: add the mean of the K runs best on validation
    command: list[str] = field(default_factory=list)
    track: TrackArgs = field(default_factory=TrackArgs)  # every row's, unless a row's own
    dry_run: bool = option(False, "print the plan with an estimated time per row on this "
                                  "device (see sentibench speedtest); run nothing")
    tune: int | None = option(None, "tune every row with N trials on the validation split "
                                    "(sentibench tune) before its final run(s); each row also "
                                    "runs untuned, as <row>-default", minimum=1)
    overwrite: bool = option(False, "discard the rows already in --out and run every row "
                                    "again (needed when the data or base model changed "
                                    "since they ran)")
    train_sizes: str | None = option(
        None, "learning curves: run every row on nested, stratified subsets of the training "
              "split of these sizes (e.g. 16,64,256,1024,all), validation and test unchanged; "
              "with --seeds, each size is drawn once per seed", metavar="N,N,...[,all]")
    per_class: bool = option(False, "--train-sizes count labelled examples per class")

    def planned(self) -> list[Experiment]:
        """The experiments this bench runs: the plan's rows, per seed, per training size."""
        if not self.train_sizes:
            return plan(self.preset, self.models, self.overrides, self.seeds)
        if self.tune:
            raise SentibenchError("--tune with --train-sizes is not supported: tune the rows "
                                  "on the full training split first, then sweep the sizes "
                                  "with the tuned settings (--set)")
        rows = plan(self.preset, self.models, self.overrides)
        return with_seeds(with_sizes(rows, parse_train_sizes(self.train_sizes),
                                     self.per_class), self.seeds, draws=True)


def check_ensemble(ensemble: int | None, experiments: list[Experiment]) -> None:
    """``--ensemble K`` needs two or more runs, and no more than the plan makes (every row,
    once per seed where seeds apply): checked with the plan, so that ``--dry-run`` says it
    too and a real bench does not find out after its last row."""
    if ensemble is None:
        return
    if ensemble < 2:
        raise SentibenchError(f"--ensemble {ensemble}: an ensemble needs two or more runs")
    runs = len(experiments)
    if ensemble > runs:
        hint = f"use --ensemble {runs} or fewer, or" if runs >= 2 else "give"
        raise SentibenchError(f"--ensemble {ensemble}: the plan makes only {runs} "
                              f"run{'s' if runs != 1 else ''} (rows x seeds), fewer than the "
                              f"{ensemble} it would average; {hint} more rows or --seeds")


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
    rows = {e.get("row") or e.get("group") or e["name"]: e  # first run per row
            for e in reversed(experiments)}
    rows = dict(reversed(list(rows.items())))
    seeds = old.get("seeds")
    sized = ("train_subset", "per_class", "subset_seed") if old.get("train_sizes") else ()
    preset = old.get("preset", "quick")
    named = {row.row_name for row in PRESETS.get(preset, PRESETS["quick"]).rows}
    keys = {name: name if name in named else e["model"] for name, e in rows.items()}
    overrides = {keys[name]: {k: v for k, v in e["settings"].items()
                              if not (seeds and e.get("group") and k == "seed") and k not in sized}
                 for name, e in rows.items()}
    for name, e in rows.items():  # a row's own search space travels with it
        if e.get(TUNE_KEY) is not None:
            overrides[keys[name]][TUNE_KEY] = e[TUNE_KEY]
    return BenchArgs(preset=preset, models=list(keys.values()), overrides=overrides,
                     out=out, data_dir=Path(old["data_dir"]), source=old.get("source"),
                     device=old.get("device", "auto"), seeds=seeds,
                     ensemble=old.get("ensemble"), tune=old.get("tune"), command=command,
                     train_sizes=old.get("train_sizes"), per_class=bool(old.get("per_class")))
