"""A tracker's failure is one warning line, never a failed run.

The first failure of a tracker in a command prints one line to stderr; after it that
tracker is left alone for the rest of the command (a bench of ten rows against a server
that is down warns once, not ten times, and waits on it never again).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

from sentibench.core.errors import first_line
from sentibench.track.options import TrackArgs

T = TypeVar("T")


def attempt(track: TrackArgs, tracker: str, where: str, action: Callable[[], T]) -> T | None:
    """``action()``, or None after one warning when it fails (or ``tracker`` failed
    before in this command). Ctrl-C still interrupts."""
    if tracker in track.failed:
        return None
    try:
        return action()
    except Exception as exc:  # any tracker failure: the run must not fail with it
        track.failed.add(tracker)
        again = f"sentibench report --to {tracker} {track.origin}" if track.origin else \
            f"sentibench report --to {tracker} DIR"
        reason = " ".join(first_line(exc).split())[:300]
        print(f"sentibench: warning: {tracker} ({where}) failed: {reason}; the run goes on "
              f"without it (send it later: {again})", file=sys.stderr)
        return None
