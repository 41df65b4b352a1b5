"""How the report writes numbers: parameter counts, durations and percentages.

Its own module so that every part of the report (tables, verdict, HTML page) formats a
number the same way without importing one another.
"""

from __future__ import annotations

NONE = "–"


def human_count(n: int | None) -> str:
    """124439808 -> '124.4M', as papers and the reference write parameter counts."""
    if n is None:
        return NONE
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= size:
            return f"{n / size:.1f}{suffix}"
    return str(n)


def human_seconds(seconds: float | None) -> str:
    """Seconds below a minute, minutes (the reference's unit) below two hours, then hours."""
    if seconds is None:
        return NONE
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.2f} min"
    return f"{seconds / 3600:.2f} h"


def percent(fraction: float) -> str:
    return f"{fraction * 100:.2f}"


def names(items: list[str]) -> str:
    """'a', 'a and b', 'a, b and c': a list as a sentence reads it."""
    if len(items) < 2:
        return "".join(items)
    return f"{', '.join(items[:-1])} and {items[-1]}"
