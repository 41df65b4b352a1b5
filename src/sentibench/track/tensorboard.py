"""TensorBoard event files of a run, written with TensorBoard's own writer: as the history
grows while it trains (:class:`LiveScalars`), or all at once for a finished run.

Values are TensorBoard's classic ``simple_value`` scalars, which every reader shows
(its fast Rust loader, the default, shows no 64-bit scalar tensors: measured with
TensorBoard 2.21); they hold 32 bits, so TensorBoard gives back results.json's number
rounded to a float32. Opening a run's event file removes the one sentibench wrote there before, so a
resumed or re-sent run does not draw its curves twice. TensorBoard is imported only here,
when asked.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sentibench.track.scalars import Scalar, final_scalars, finite, history_scalars

SUFFIX = ".sentibench"  # our event files: replaced when the run is written again
LOG_SUBDIR = "tensorboard"  # a run's default event directory, inside the run directory


class EventFile:
    """One new event file of scalars in ``logdir`` (earlier ones of ours removed)."""

    def __init__(self, logdir: Path) -> None:
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        logdir = Path(logdir)
        logdir.mkdir(parents=True, exist_ok=True)
        for old in logdir.glob(f"events.out.tfevents.*{SUFFIX}"):
            old.unlink()
        self.writer = EventFileWriter(str(logdir), filename_suffix=SUFFIX)
        self.closed = False

    def add(self, scalars: Iterable[Scalar]) -> None:
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import Summary

        now = time.time()
        for s in scalars:
            value = Summary.Value(tag=s.tag, simple_value=s.value)
            self.writer.add_event(Event(wall_time=now, step=s.step,
                                        summary=Summary(value=[value])))
        self.writer.flush()  # TensorBoard shows it now, not at the writer's next flush

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.writer.close()


def write_scalars(logdir: Path, scalars: Iterable[Scalar]) -> None:
    """A finished run's scalars, in one new event file."""
    events = EventFile(logdir)
    try:
        events.add(scalars)
    finally:
        events.close()


class LiveScalars:
    """A training run's history in TensorBoard as it grows: each call writes what was
    recorded since the last one; :meth:`finish` adds the final figures and closes."""

    def __init__(self, logdir: Path) -> None:
        self.events = EventFile(logdir)
        self.written: dict[str, int] = {}  # tag -> values written so far

    def update(self, history: dict[str, list], pace: dict[str, list] | None = None) -> None:
        new: list[Scalar] = []
        seen: dict[str, int] = {}
        for s in history_scalars(history, pace):
            seen[s.tag] = seen.get(s.tag, 0) + 1
            if seen[s.tag] > self.written.get(s.tag, 0):
                new.append(s)
        self.written.update(seen)
        self.events.add(finite(new))

    def finish(self, result: dict[str, Any]) -> None:
        self.update(result.get("history") or {}, result.get("pace"))
        self.events.add(finite(final_scalars(result)))
        self.close()

    def close(self) -> None:
        self.events.close()
