"""``bench --tune N``: every row of a comparison tuned the same way before it runs.

Each row (once, whatever its seeds) gets a study of N trials on the validation split in
``<bench>/tuning/<row>/``; its final run(s) use the best trial's settings, under the row's
own name, and the same row at its untuned settings runs too, as ``<row>-default``, so the
report can say whether tuning helped beyond noise on the same test rows. A row searches its
family's default space, or its own (a preset row's ``tune``, or ``--set ROW.tune=SPACE`` in
``tune --space`` syntax); a row with nothing to search runs once, as it is.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from sentibench.bench.plan import BenchArgs, Experiment, row_tracking
from sentibench.bench.tune import TuneArgs, run_study, search_space, study_for
from sentibench.core.errors import SentibenchError
from sentibench.run.results import DEFAULT_SUFFIX, SEED_SUFFIX, TUNING_DIR, safe_name


def _base(exp: Experiment) -> Experiment:
    """The row an experiment belongs to, without its seed: what is tuned."""
    if exp.group is None:
        return exp
    settings = {k: v for k, v in exp.settings.items() if k != "seed"}
    return replace(exp, name=exp.group, group=None, settings=settings)


def studies(bench_dir: Path, bench: BenchArgs, experiments: list[Experiment]
            ) -> dict[str, dict[str, Any] | None]:
    """Row -> the best trial's settings (None: nothing to search), each row's study run
    (or continued) in turn."""
    best: dict[str, dict[str, Any] | None] = {}
    for exp in experiments:
        row = _base(exp)
        if row.name in best:
            continue
        if not search_space(row, row.tune):
            best[row.name] = None
            continue
        args = TuneArgs(model=row.model, trials=int(bench.tune or 0), data_dir=bench.data_dir,
                        device=bench.device, space=row.tune,
                        study_dir=bench_dir / TUNING_DIR / safe_name(row.name))
        study = study_for(row, args)
        study.track = row_tracking(bench.track, f"{TUNING_DIR}/{safe_name(row.name)}", {})
        print(f"\n[tune] {row.name}: {args.trials} trials on the validation split")
        summary = run_study(study)
        if summary["best"] is None:
            raise SentibenchError(f"--tune: no trial of {row.name} finished (see "
                                  f"{study.directory})")
        best[row.name] = dict(summary["best"]["params"])
    return best


def _described(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in params.items())


def tuned_experiments(experiments: list[Experiment],
                      best: dict[str, dict[str, Any] | None]) -> list[Experiment]:
    """Each row at its tuned settings (its own name), then at its defaults (``-default``)."""
    tuned, defaults = [], []
    for exp in experiments:
        row = _base(exp).name
        params = best.get(row)
        if params is None:
            tuned.append(exp)
            continue
        note = f"tuned on validation: {_described(params)}"
        tuned.append(replace(exp, settings={**exp.settings, **params},
                             note="; ".join(filter(None, (exp.note, note)))))
        name = exp.name.replace(f"{SEED_SUFFIX}", f"{DEFAULT_SUFFIX}{SEED_SUFFIX}", 1) \
            if exp.group else exp.name + DEFAULT_SUFFIX
        defaults.append(replace(exp, name=name,
                                group=exp.group and exp.group + DEFAULT_SUFFIX,
                                note="; ".join(filter(None, (exp.note, "untuned settings")))))
    return tuned + defaults
