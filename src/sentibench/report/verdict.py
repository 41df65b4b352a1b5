"""The report's first sentence: which row wins, which rows it cannot be told apart from,
which are worse beyond noise, and what the cheapest good-enough row is.

A reader opens the report for this answer, so it is written out instead of left to be
pieced together from the tables. It only words what :mod:`sentibench.report.compare`
computed (Wilson intervals, exact McNemar tests against the best run, Holm-corrected):
nothing here changes a statistic. Rows with exactly the same test accuracy are a tie, and
the verdict says so instead of calling one of them best.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np

from sentibench.report.compare import ALPHA, RunStats
from sentibench.report.curves import headline_rows, headline_scope
from sentibench.report.rows import Row
from sentibench.report.seeds import SEED_RUN, seed_groups, spread
from sentibench.report.units import human_seconds, names

PREFIX = "Verdict:"


def rank_key(row: Row) -> tuple[int, float, float, str]:
    """Best test accuracy first, the cheaper to train first among equals; rows without
    results last, in the order they came (the sort is stable)."""
    if row.result is None:
        return (1, 0.0, 0.0, "")
    return (0, -float(row.result.accuracy["test"]), float(row.result.train_seconds), row.name)


def ranked(rows: Sequence[Row]) -> list[Row]:
    return sorted(rows, key=rank_key)


def ordered_stats(all_stats: Sequence[RunStats], rows: Sequence[Row]) -> list[RunStats]:
    """The statistics in the rows' ranked order (runs without a row keep their place last)."""
    place = {row.name: i for i, row in enumerate(ranked(rows))}
    return sorted(all_stats, key=lambda s: place.get(s.name, len(place)))


def top_stats(all_stats: Sequence[RunStats]) -> list[RunStats]:
    """The best run and every run with exactly its accuracy on the same test rows."""
    best = next((s for s in all_stats if s.is_best), None)
    if best is None:
        return []
    return [s for s in all_stats
            if s.is_best or (s.diff is not None and s.accuracy == best.accuracy)]


def _cheapest(candidates: Sequence[str], seconds: dict[str, float]) -> str:
    return min(candidates, key=lambda name: (seconds[name], name))


def _cost(name: str, others: Sequence[str], seconds: dict[str, float]) -> str:
    """'0.05 s of training against 0.15 s' for the cheapest of ``others``."""
    rest: list[str] = []
    for other in sorted((o for o in others if o != name), key=lambda o: (seconds[o], o)):
        if human_seconds(seconds[other]) not in rest:
            rest.append(human_seconds(seconds[other]))
    against = f" against {names(rest)}" if rest else ""
    return f"{human_seconds(seconds[name])} of training{against}"


def _top_clause(top: Sequence[RunStats], seconds: dict[str, float]) -> str:
    """The best row with its interval, or the rows that share the top accuracy."""
    first = top[0]
    figure = (f"{first.accuracy * 100:.2f} % test accuracy (95 % CI "
              f"{first.accuracy_ci[0] * 100:.2f}–{first.accuracy_ci[1] * 100:.2f} %, "
              f"{first.n:,} test rows)")
    if len(top) == 1:
        return f"{first.name} is best with {figure}"
    tied = [s.name for s in top]
    cheapest = _cheapest(tied, seconds)
    return (f"{names(tied)} tie for best with exactly the same {figure}; the cheapest of "
            f"them is {cheapest} ({_cost(cheapest, tied, seconds)})")


def _noise_clauses(all_stats: Sequence[RunStats], top: Sequence[RunStats],
                   seconds: dict[str, float]) -> list[str]:
    """Tied within noise (and the cheapest good-enough row), worse beyond it, not compared."""
    top_names = [s.name for s in top]
    tied = [s.name for s in all_stats if s.name not in top_names and s.diff is not None
            and s.tied]
    worse = [s.name for s in all_stats if s.p_holm is not None and not s.tied]
    other = [s.name for s in all_stats if s.diff is None and not s.is_best]
    out = []
    it = "them" if len(top) > 1 else "it"
    if tied:
        out.append(f"within noise of {it} (Holm-corrected McNemar p ≥ {ALPHA:g}): {names(tied)}")
        cheapest = _cheapest([*top_names, *tied], seconds)
        if cheapest in tied:
            out.append(f"the cheapest of these good-enough rows is {cheapest} "
                       f"({_cost(cheapest, [cheapest, *top_names], seconds)})")
    elif len(all_stats) > len(top):
        out.append(f"no other row is within noise of {it}")
    if worse:
        out.append(f"worse beyond noise (p < {ALPHA:g}): {names(worse)}")
    if other:
        out.append(f"not compared (other test rows): {names(other)}")
    return out


def _accuracy_only(finished: Sequence[Row]) -> list[str]:
    """Without saved predictions there is no interval and no test: say only what is known."""
    best = float(finished[0].result.accuracy["test"])
    top = [r.name for r in finished if float(r.result.accuracy["test"]) == best]
    seconds = {r.name: float(r.result.train_seconds) for r in finished}
    if len(top) == 1:
        first = f"{top[0]} has the highest test accuracy, {best * 100:.2f} %"
    else:
        first = (f"{names(top)} share the highest test accuracy, {best * 100:.2f} %, and the "
                 f"cheapest of them is {_cheapest(top, seconds)}")
    return [first,
            "no test predictions were saved, so no interval or significance test is shown"]


def _seed_clauses(rows: Sequence[Row], named: Sequence[str]) -> list[str]:
    """The spread over seeds of every seeded row the verdict names."""
    out = []
    for group, members in seed_groups(rows).items():
        if any((m := SEED_RUN.match(name)) and m["row"] == group for name in named):
            accs = [float(r.result.accuracy["test"]) for r in members]
            out.append(f"{group} over {len(members)} seeds: {spread(accs)} % test accuracy "
                       f"(mean ± sd, min–max)")
    return out


def _data_clause(finished: Sequence[Row]) -> list[str]:
    """When the runs read different data (a bench continued after its data was prepared
    again, before runs were bound to their inputs), the comparison means nothing: say so
    before anything else."""
    groups: dict[str, list[str]] = {}
    for row in finished:
        sums = row.result.data.get("sha256") if isinstance(row.result.data, dict) else None
        groups.setdefault(json.dumps(sums or {}, sort_keys=True), []).append(row.name)
    if len(groups) < 2:
        return []
    versions = "; ".join(f"{names(members)} on version {i}"
                         for i, members in enumerate(groups.values(), 1))
    return [f"NOT COMPARABLE: these runs read {len(groups)} different versions of the data "
            f"(file checksums differ: {versions})"]


def verdict(rows: Sequence[Row], all_stats: Sequence[RunStats]) -> str:
    """One sentence (clauses joined by semicolons), plain text: no Markdown marks. In a
    ``--train-sizes`` sweep it speaks of each row at its largest size, and says so first."""
    scope, rows = headline_scope(rows), headline_rows(rows)
    order = ranked(rows)
    finished = [r for r in order if r.result is not None]
    if not finished:
        return f"{PREFIX} no row finished; {'; '.join(_unfinished_clauses(order))}."
    seconds = {r.name: float(r.result.train_seconds) for r in finished}
    stats = [s for s in ordered_stats(all_stats, rows) if s.name in seconds]
    top = [s for s in stats if s in top_stats(stats)]
    if top:
        clauses = [_top_clause(top, seconds), *_noise_clauses(stats, top, seconds)]
        unstated = [r.name for r in finished if r.name not in {s.name for s in stats}]
        if unstated:
            clauses.append(f"no saved test predictions: {names(unstated)}")
    else:
        clauses = _accuracy_only(finished)
    clauses = [*([scope] if scope else []), *_data_clause(finished), *clauses]
    clauses += _seed_clauses(rows, [s.name for s in top] or [finished[0].name])
    clauses += _unfinished_clauses(order)
    return f"{PREFIX} {'; '.join(clauses)}."


def _unfinished_clauses(order: Sequence[Row]) -> list[str]:
    """Rows without results, by why: failed (failures.json), unreadable (a damaged file),
    unfinished (no results.json yet)."""
    kinds: dict[str, list[str]] = {}
    for row in order:
        if row.result is None:
            kind = row.status.split(":")[0] if row.status.split(":")[0] in (
                "failed", "unreadable", "unfinished") else "failed"
            kinds.setdefault(kind, []).append(row.name)
    return [f"{kind}: {names(members)}" for kind, members in kinds.items()]


def mean_test_accuracy(members: Sequence[Row]) -> float:
    return float(np.mean([float(m.result.accuracy["test"]) for m in members]))
