"""Runs of one row over several seeds (``<row>-seed<N>``): which runs belong together and
how far apart they land.

A reader should see the spread a seed alone causes before trusting a difference between
rows, so the table and the verdict both report it from here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from sentibench.report.rows import Row
from sentibench.run.results import SEED_SUFFIX

SEED_RUN = re.compile(rf"^(?P<row>.+){re.escape(SEED_SUFFIX)}(?P<seed>-?\d+)$")


def seed_groups(rows: Sequence[Row]) -> dict[str, list[Row]]:
    """Row name -> its finished seed runs, for rows with at least two of them."""
    groups: dict[str, list[Row]] = {}
    for row in rows:
        match = SEED_RUN.match(row.name)
        if match and row.result is not None:
            groups.setdefault(match["row"], []).append(row)
    return {name: members for name, members in groups.items() if len(members) >= 2}


def grouped(rows: Sequence[Row]) -> list[Row | tuple[str, list[Row]]]:
    """The finished runs of one row over several seeds become one entry, in the place of
    its first run; every other row stays as it is."""
    groups = seed_groups(rows)
    out: list[Row | tuple[str, list[Row]]] = []
    for row in rows:
        match = SEED_RUN.match(row.name)
        members = groups.get(match["row"], []) if match else []
        if not members:
            out.append(row)
        elif members[0] is row:
            out.append((match["row"], members))
    return out


def spread(values: Sequence[float]) -> str:
    """Mean ± sample standard deviation (range), in percent."""
    array = np.asarray(values, dtype=float) * 100
    return (f"{array.mean():.2f} ± {array.std(ddof=1):.2f} "
            f"({array.min():.2f}–{array.max():.2f})")
