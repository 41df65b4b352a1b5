"""``bench --train-sizes``: every row of a plan once per number of labelled examples.

Each (row, size, seed) becomes an ordinary experiment, and so an ordinary run directory:
``<row>-n<N>`` (``-n<N>pc`` for ``--per-class``; ``-all`` for the whole training split),
with ``-seed<S>`` after it under ``--seeds`` (the plan's ``with_seeds``). The size is the
data option ``train_subset`` (a stratified, nested draw, see
:func:`sentibench.data.splits.subset_rows`), so the subset is recorded in each run, and an
interrupted sweep resumes like any bench. With seeds, every row (the scikit-learn ones
too) runs once per seed, because the seed draws the subset as well as initialising the
model.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from sentibench.core.errors import SentibenchError

ALL = "all"
MAX_SIZES = 20
SIZE_KEYS = ("train_subset", "per_class", "subset_seed")  # what a sweep sets on every row


def parse_train_sizes(text: str) -> list[int | None]:
    """``16,64,all`` -> [16, 64, None] (None: the whole training split), ascending."""
    usage = (f"--train-sizes {text!r}: a comma-separated list of labelled-example counts, "
             f"optionally ending in all (e.g. 16,64,256,all)")
    parts = [part.strip().lower() for part in text.split(",") if part.strip()]
    if not parts or len(parts) > MAX_SIZES:
        raise SentibenchError(f"{usage}; between 1 and {MAX_SIZES} sizes")
    sizes: list[int] = []
    for part in parts:
        if part == ALL:
            continue
        if not part.isdigit() or int(part) < 1:
            raise SentibenchError(f"{usage}; {part!r} is not a positive whole number")
        sizes.append(int(part))
    if len(set(sizes)) != len(sizes) or parts.count(ALL) > 1:
        raise SentibenchError(f"{usage}; a size is listed twice")
    return [*sorted(sizes), *([None] if ALL in parts else [])]


def size_label(size: int | None, per_class: bool) -> str:
    """The part of a run's name that says its training size: ``n64``, ``n8pc``, ``all``."""
    if size is None:
        return ALL
    return f"n{size}{'pc' if per_class else ''}"


def with_sizes(experiments: list[Any], sizes: list[int | None],
               per_class: bool) -> list[Any]:
    """Each experiment (a :class:`~sentibench.bench.plan.Experiment`) once per size, sizes
    ascending, so that the small, cheap runs of every row finish first; the plan then
    repeats each per seed (``with_seeds(..., draws=True)``)."""
    out = []
    for size in sizes:
        for exp in experiments:
            clash = [key for key in SIZE_KEYS if key in exp.settings]
            if clash:
                raise SentibenchError(f"bench row {exp.name}: --train-sizes sets "
                                      f"{clash[0]} itself; remove it from the row's settings")
            settings = {**exp.settings, **({"train_subset": size, "per_class": per_class}
                                           if size is not None else {})}
            out.append(replace(exp, name=f"{exp.name}-{size_label(size, per_class)}",
                               settings=settings, row=exp.name))
    return out


def check_sizes(experiments: list[Any], data_dir: Path) -> None:
    """The largest subset each row asks for exists in the prepared training split (e.g.
    512 per class of a class with 400 rows is an error now, before the first row runs)."""
    from sentibench.data.config import DataArgs
    from sentibench.data.splits import load_split, read_label_names, subset_rows

    largest: dict[tuple[Any, bool], int] = {}
    for exp in experiments:
        size = exp.settings.get("train_subset")
        if size is not None:
            key = (exp.settings.get("max_train_samples"), bool(exp.settings.get("per_class")))
            largest[key] = max(largest.get(key, 0), int(size))
    k = len(read_label_names(data_dir)) if largest else 0
    for (max_rows, per_class), size in largest.items():
        labels = load_split(data_dir, "train", max_rows, k)["label"].to_numpy()
        subset_rows(labels, DataArgs(data_dir, max_rows, train_subset=size,
                                     per_class=per_class), k)
