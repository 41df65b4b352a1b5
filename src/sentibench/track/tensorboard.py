"""TensorBoard event files of a finished run, written with TensorBoard's own writer.

Values are written as 64-bit scalar tensors under the scalars plugin, so what TensorBoard
reads back is exactly the number in ``results.json`` (``simple_value`` would round it to
32 bits). Writing again replaces the event file sentibench wrote before, so sending a run
twice does not draw every curve twice. TensorBoard is imported only here, when asked.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

from sentibench.track.scalars import Scalar

SUFFIX = ".sentibench"  # our event files: replaced when the run is written again
LOG_SUBDIR = "tensorboard"  # a run's default event directory, inside the run directory


def write_scalars(logdir: Path, scalars: Iterable[Scalar]) -> Path:
    """One event file in ``logdir`` holding ``scalars``; its path."""
    from tensorboard.compat.proto import types_pb2
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.compat.proto.tensor_pb2 import TensorProto
    from tensorboard.plugins.scalar.metadata import create_summary_metadata
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    logdir = Path(logdir)
    logdir.mkdir(parents=True, exist_ok=True)
    for old in logdir.glob(f"events.out.tfevents.*{SUFFIX}"):
        old.unlink()
    writer = EventFileWriter(str(logdir), filename_suffix=SUFFIX)
    try:
        now = time.time()
        for s in scalars:
            tensor = TensorProto(dtype=types_pb2.DT_DOUBLE, double_val=[s.value])
            value = Summary.Value(tag=s.tag, tensor=tensor,
                                  metadata=create_summary_metadata(display_name=s.tag,
                                                                   description=""))
            writer.add_event(Event(wall_time=now, step=s.step, summary=Summary(value=[value])))
    finally:
        writer.close()
    return Path(writer.get_logdir())
