"""``sentibench tune``: search one row's settings on the validation split with Optuna.

Each trial is an ordinary run directory inside the study directory (``trial-0007``), so
``predict``, ``report`` and ``compare`` work on any of them. The objective reads the
validation split only; test labels take no part in any decision. The study lives in an
Optuna storage: by default a journal file inside the study directory (safe for several
processes on one machine); ``--storage postgresql://…`` lets workers on many machines
join it by running the same command. ``--trials`` is a cap on the whole study, not per
worker: a worker starts a trial only while fewer than that many are finished or running,
and a trial that turns out to be one too many (two workers asked at once) is dropped
before it trains. An interrupted worker marks its trial failed; a worker killed outright
is noticed by the next one on the same machine (its process is gone); failed trials are
not counted, finished ones are never repeated, and the same command continues the study.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sentibench.bench.plan import Experiment, allowed_settings, plan, row_options
from sentibench.bench.presets import PRESETS
from sentibench.bench.space import Param, default_space, parse_space
from sentibench.core.errors import SentibenchError
from sentibench.core.fileio import atomic_write_json
from sentibench.core.options import option
from sentibench.models.registry import get_family, spec_for
from sentibench.run.results import (
    STUDY_SUMMARY_FILE,
    RunArgs,
    read_predictions,
    read_results,
    safe_name,
    utc_stamp,
)
from sentibench.run.runner import run_row
from sentibench.track.options import TrackArgs
from sentibench.track.send import child, finish_group, start_group

METRICS = {"val_accuracy": "maximize", "val_macro_f1": "maximize", "val_loss": "minimize"}
STUDY_FILE = "study.json"
SUMMARY_FILE = STUDY_SUMMARY_FILE
JOURNAL_FILE = "study.journal"


@dataclass
class TuneArgs:
    """What ``sentibench tune`` was asked to do (each option declared once, here)."""

    model: str = option("minilm", "the row to tune: a row or model of --preset, a registered "
                                  "model, a path or a Hub id")
    preset: str = option("quick", "the preset whose row gives the fixed settings",
                         choices=tuple(PRESETS))
    trials: int = option(20, "trials in the whole study, across all workers", minimum=1)
    space: str | None = option(None, "the search space, e.g. learning_rate=log:1e-6:1e-4,"
                                     "num_epochs=int:1:4,batch_size=choice:8|16 (default: "
                                     "the family's)")
    metric: str = option("val_accuracy", "what the search optimises, on the validation split",
                         choices=tuple(METRICS))
    timeout: float | None = option(None, "start no new trial after this many seconds",
                                   above=0)
    study_dir: Path | None = option(None, "the study's directory, one run directory per "
                                          "trial (default: runs/tune-<row>-<UTC stamp>); an "
                                          "existing one continues its study")
    storage: str | None = option(None, "an Optuna storage URL that workers on several "
                                       "machines share (postgresql://..., mysql://...); "
                                       "default: a journal file in --study-dir")
    seed: int = option(0, "the sampler's seed", minimum=0)
    eval_every: int | None = option(None, "neural rows: score the whole validation split every "
                                          "N steps and prune trials the median beats",
                                    above=0)
    data_dir: Path | None = option(None, "prepared data (default: data/<the preset's data "
                                         "set>)")
    device: str = option("auto", "auto, cpu, cuda, cuda:N or mps (each worker its own)")


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise SentibenchError("tune needs Optuna: pip install 'sentibench[tune]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


@dataclass
class Study:
    """A resolved study: the row, its fixed settings, the space and where it lives."""

    args: TuneArgs
    name: str
    model: str
    family: str
    settings: dict[str, Any]
    space: dict[str, Param]
    directory: Path
    track: TrackArgs = field(default_factory=TrackArgs)  # trials: children of its parent run

    def record(self) -> dict[str, Any]:
        return {"schema": "sentibench.study/1", "row": self.name, "model": self.model,
                "family": self.family, "settings": self.settings,
                "space": [p.spec() for p in self.space.values()],
                "metric": self.args.metric, "direction": METRICS[self.args.metric],
                "seed": self.args.seed, "data_dir": str(self.args.data_dir),
                "storage": self.args.storage or "journal"}


def resolve(args: TuneArgs) -> Study:
    """The row of ``--preset`` named by ``--model``, and its space."""
    (exp,) = plan(args.preset, [args.model], {}, None)
    if args.data_dir is None:
        args.data_dir = Path("data") / PRESETS[args.preset].dataset
    return study_for(exp, args)


def search_space(exp: Experiment, text: str | None = None) -> dict[str, Param]:
    """What a row's study searches: ``text`` (``--space``), the space its family declares,
    or the generic default; nothing for a model no setting changes (the dummy)."""
    allowed = allowed_settings(exp.family)
    family = get_family(exp.family)
    text = text or family.space
    space = parse_space(text, allowed) if text else \
        default_space(family.engine, exp.settings, allowed)
    return space if spec_for(exp.model).tunable else {}


def study_for(exp: Experiment, args: TuneArgs) -> Study:
    """A row's study: its space, every check done before a trial runs."""
    space = search_space(exp, args.space)
    if not space:
        raise SentibenchError(f"{exp.name} has no setting to search; give --space")
    if args.eval_every is not None and not get_family(exp.family).engine:
        raise SentibenchError("--eval-every prunes trials trained in the engine; this row "
                              "is not")
    directory = args.study_dir or Path("runs") / f"tune-{safe_name(exp.name)}-{utc_stamp()}"
    return Study(args, exp.name, exp.model, exp.family, dict(exp.settings), space, directory)


def _open(study: Study) -> Any:
    """The Optuna study, created or joined; a study directory holds one study only."""
    optuna = _optuna()
    study.directory.mkdir(parents=True, exist_ok=True)
    path = study.directory / STUDY_FILE
    wanted = study.record()
    if path.is_file():
        before = json.loads(path.read_text(encoding="utf-8"))
        if before != wanted:
            changed = sorted(k for k in wanted if before.get(k) != wanted[k])
            raise SentibenchError(f"{study.directory} holds another study (its "
                                  f"{', '.join(changed)} differ); use another --study-dir")
    else:
        atomic_write_json(path, wanted)
    storage = _shared(optuna, study.args.storage) if study.args.storage else \
        _journal(optuna, study.directory / JOURNAL_FILE)
    return optuna.create_study(
        storage=storage, study_name=f"sentibench-{safe_name(study.name)}",
        direction=METRICS[study.args.metric], load_if_exists=True,
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3))


def _shared(optuna: Any, url: str) -> Any:
    """A database storage (PostgreSQL, MySQL) that workers on other machines share. Two
    workers starting on an empty database race to create Optuna's tables and one loses
    (optuna/optuna#1092): the loser tries again once the winner has made them."""
    import sqlalchemy.exc

    for attempt in range(5):
        try:
            return optuna.storages.RDBStorage(url)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
            time.sleep(0.2 * (attempt + 1))
        except sqlalchemy.exc.SQLAlchemyError as exc:
            reason = " ".join(str(exc).split())[:200]
            raise SentibenchError(f"--storage {url}: cannot use it ({reason})") from None
    return optuna.storages.RDBStorage(url)


def _journal(optuna: Any, path: Path) -> Any:
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    lock = JournalFileOpenLock(str(path))
    return optuna.storages.JournalStorage(JournalFileBackend(str(path), lock_obj=lock))


WORKER = f"{socket.gethostname()}:{os.getpid()}"


def _alive(worker: str) -> bool:
    """Whether a trial's worker may still be running (other machines: assume so)."""
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fail_abandoned(ostudy: Any, optuna: Any) -> None:
    """Trials left running by a worker of this machine that no longer exists: failed."""
    for t in ostudy.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if not _alive(t.user_attrs.get("worker", "")):
            ostudy._storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL)
            print(f"trial {t.number}: its worker {t.user_attrs.get('worker')} is gone; marked "
                  "failed", file=sys.stderr)


def _counted(ostudy: Any, optuna: Any) -> list[int]:
    """Numbers of the trials that count toward --trials: finished, pruned or running."""
    states = optuna.trial.TrialState
    return sorted(t.number for t in ostudy.get_trials(
        deepcopy=False, states=(states.COMPLETE, states.PRUNED, states.RUNNING)))


def _next_trial(study: Study, ostudy: Any, optuna: Any, started: float) -> Any | None:
    """A new trial, or None when the study has its trials (or the time is up)."""
    _fail_abandoned(ostudy, optuna)
    limit = study.args.trials
    if len(_counted(ostudy, optuna)) >= limit:
        return None
    if study.args.timeout is not None and time.monotonic() - started > study.args.timeout:
        print(f"--timeout {study.args.timeout:g}: starting no new trial", file=sys.stderr)
        return None
    ostudy.sampler = optuna.samplers.TPESampler(seed=study.args.seed + len(ostudy.trials))
    trial = ostudy.ask()
    trial.set_user_attr("worker", WORKER)
    if trial.number not in _counted(ostudy, optuna)[:limit]:  # another worker asked first
        trial.set_user_attr("over_budget", True)
        ostudy.tell(trial, state=optuna.trial.TrialState.FAIL)
        return None
    return trial


def objective(run_dir: Path, metric: str) -> tuple[float, bool]:
    """The trial's value on the validation split, and whether its validation predictions
    are all one class (a collapsed model: flagged in the summary)."""
    result = read_results(run_dir)
    saved = read_predictions(run_dir, result.labels, "validation")
    collapsed = saved is not None and len(set(saved[1].argmax(1).tolist())) == 1
    if metric == "val_accuracy":
        return float(result.accuracy["validation"]), collapsed
    if metric == "val_macro_f1":
        return float(result.metrics["validation"]["macro_f1"]), collapsed
    if saved is None:
        raise SentibenchError(f"{run_dir}: no validation predictions to compute val_loss")
    import numpy as np

    labels, probs = saved
    picked = np.clip(probs[np.arange(len(labels)), labels], 1e-12, 1.0)
    return float(-np.log(picked).mean()), collapsed


def _pruner(trial: Any, metric: str, optuna: Any) -> Any:
    """--eval-every's evaluations reported to the pruner (loss for val_loss, else accuracy);
    raising TrialPruned stops the run between steps."""
    def report(step: int, loss: float, accuracy: float) -> None:
        trial.report(loss if metric == "val_loss" else accuracy, step)
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned at step {step}")

    return report


def run_trial(study: Study, ostudy: Any, trial: Any, optuna: Any) -> str | None:
    """Train the trial's run directory and tell the study how it went; return the error of
    a failed trial (None when it finished or was pruned)."""
    states = optuna.trial.TrialState
    values = {name: param.suggest(trial) for name, param in study.space.items()}
    settings = {**study.settings, **values}
    if study.args.eval_every is not None:
        settings["eval_every"] = study.args.eval_every
    run_dir = study.directory / f"trial-{trial.number:04d}"
    trial.set_user_attr("run_dir", run_dir.name)
    print(f"\n[trial {trial.number}] {json.dumps(values)}")
    data, model_args, train = row_options(study.family, study.model, settings,
                                          study.args.data_dir, study.args.device)
    hook = _pruner(trial, study.args.metric, optuna) if study.args.eval_every else None
    try:
        track = child(study.track, run_dir.name, {"sentibench.study": study.name,
                                                  "sentibench.trial": str(trial.number)})
        run_row(study.model, study.family, model_args, train, data,
                RunArgs(out=run_dir, overwrite=True, command=["sentibench", "tune"],
                        track=track), hook)
    except optuna.TrialPruned as exc:
        ostudy.tell(trial, state=states.PRUNED)
        print(f"[trial {trial.number}] {exc}")
        return None
    except KeyboardInterrupt:
        trial.set_user_attr("interrupted", True)
        ostudy.tell(trial, state=states.FAIL)
        raise
    except Exception as exc:  # one bad setting (a diverging rate) must not end the study
        error = " ".join(str(exc).split())[:300]
        trial.set_user_attr("error", error)
        ostudy.tell(trial, state=states.FAIL)
        print(f"[trial {trial.number}] FAILED: {exc}", file=sys.stderr)
        return error
    value, collapsed = objective(run_dir, study.args.metric)
    trial.set_user_attr("collapsed", collapsed)
    ostudy.tell(trial, value)
    print(f"[trial {trial.number}] {study.args.metric} {value:.4f}"
          + (" (collapsed: one class only)" if collapsed else ""))
    return None


def run_tune(args: TuneArgs, track: TrackArgs | None = None) -> Path:
    """``sentibench tune``: resolve the row, prepare its data, run the study."""
    study = resolve(args)
    study.track = track or TrackArgs()
    from sentibench.data.sources import ensure_prepared

    ensure_prepared(args.data_dir, PRESETS[args.preset].dataset, None)
    run_study(study)
    return study.directory


def run_study(study: Study) -> dict[str, Any]:
    """Run trials until the study has ``--trials`` of them; print and return its summary."""
    optuna = _optuna()
    ostudy = _open(study)
    own = study.track.trackers and study.track.parent_run_id is None  # not in a bench's
    if own:
        study.track = start_group(study.track, study.directory, f"tune-{study.name}",
                                  study.record(), {"sentibench.kind": "study"})
    started, failures, done = time.monotonic(), 0, False
    try:
        while (trial := _next_trial(study, ostudy, optuna, started)) is not None:
            error = run_trial(study, ostudy, trial, optuna)
            failures = failures + 1 if error is not None else 0
            if failures >= 3:
                raise SentibenchError(f"three trials in a row failed (last: {error})")
        summary = summarise(study, ostudy, optuna)
        done = True
    finally:
        if own:
            finish_group(study.track, [study.directory / SUMMARY_FILE,
                                       study.directory / STUDY_FILE], failed=not done)
    print(format_summary(summary))
    return summary


def summarise(study: Study, ostudy: Any, optuna: Any) -> dict[str, Any]:
    """Every trial (state, value, settings, collapsed) and the best, written beside them."""
    trials = [{"number": t.number, "state": t.state.name, "value": t.value,
               "params": t.params, "run_dir": t.user_attrs.get("run_dir"),
               "collapsed": t.user_attrs.get("collapsed", False)}
              for t in ostudy.get_trials(deepcopy=False)
              if not t.user_attrs.get("over_budget")]
    done = [t for t in trials if t["state"] == "COMPLETE"]
    best = None
    if done:
        best = ostudy.best_trial
        best = {"number": best.number, "value": best.value, "params": best.params,
                "run_dir": best.user_attrs.get("run_dir")}
    summary = {**study.record(), "trials": trials, "best": best}
    atomic_write_json(study.directory / SUMMARY_FILE, summary)
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    lines = [f"\nStudy of {summary['row']} ({summary['metric']}, {summary['direction']}):"]
    for t in summary["trials"]:
        value = "" if t["value"] is None else f"{t['value']:.4f}"
        flag = " collapsed" if t["collapsed"] else ""
        lines.append(f"  trial {t['number']:>3} {t['state']:<8} {value:>7}{flag}  "
                     f"{json.dumps(t['params'])}")
    best = summary["best"]
    lines.append("best: none finished" if best is None else
                 f"best: trial {best['number']} ({best['value']:.4f}), {best['run_dir']}: "
                 f"{json.dumps(best['params'])}")
    return "\n".join(lines)
