"""Progress that suits where it goes: a tqdm bar on a terminal, a few plain lines in a log.

A bar redrawn with carriage returns is right for a person watching, but in a log file or a
CI job every redraw becomes text (256 of them for one quick-bench row). Off a terminal,
:func:`progress` therefore prints one line every tenth of the work (and at the end).
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

from tqdm.auto import tqdm

LOG_LINES = 10  # lines per task when the output is not a terminal


def on_terminal() -> bool:
    return sys.stderr.isatty()


class LineProgress:
    """The part of tqdm's interface the project uses, printing plain lines."""

    def __init__(self, iterable: Iterable | None = None, total: int | None = None,
                 desc: str | None = None, unit: str = "it", initial: int = 0,
                 disable: bool = False) -> None:
        self.iterable, self.desc, self.unit, self.disable = iterable, desc or "", unit, disable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total, self.n, self.start_n = total, initial, initial
        self.every = max(1, (total or 0) // LOG_LINES)
        self.postfix = ""
        self.t0 = time.perf_counter()

    def __iter__(self) -> Iterator[Any]:
        for item in self.iterable or ():
            yield item
            self.update(1)
        self.close()

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def set_postfix(self, **values: Any) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.n % self.every == 0 and self.n != self.total:
            self._line()

    def close(self) -> None:
        if not self.disable and self.n > self.start_n and (self.total is None
                                                           or self.n >= self.total):
            self._line()
            self.disable = True  # print the final line once

    def _line(self) -> None:
        if self.disable:
            return
        seconds = time.perf_counter() - self.t0
        rate = (self.n - self.start_n) / seconds if seconds > 0 else 0.0
        done = f"{self.n}/{self.total}" if self.total else str(self.n)
        extra = f", {self.postfix}" if self.postfix else ""
        print(f"{self.desc}: {done} {self.unit} ({seconds:.0f} s, {rate:.2f} {self.unit}/s"
              f"{extra})", file=sys.stderr, flush=True)


def progress(iterable: Iterable | None = None, **kwargs: Any) -> Any:
    """``tqdm(iterable, **kwargs)`` on a terminal; :class:`LineProgress` elsewhere.

    Bars that are transient on a terminal (``leave=False``: caching, evaluation) print
    nothing off it.
    """
    if on_terminal():
        return tqdm(iterable, dynamic_ncols=True, **kwargs)
    disable = bool(kwargs.pop("disable", False)) or kwargs.get("leave") is False
    return LineProgress(iterable, total=kwargs.get("total"), desc=kwargs.get("desc"),
                        unit=kwargs.get("unit", "it"), initial=kwargs.get("initial", 0),
                        disable=disable)


@contextlib.contextmanager
def library_bars_off() -> Iterator[None]:
    """Inside: no progress bars from Hugging Face's libraries (transformers' "Loading
    weights", datasets' "Map:"), which a bench's log would keep as text. Each library's
    process-wide setting is put back as it was. Imports nothing that is not loaded already:
    a library that is not imported yet has no bar to show."""
    undo = []
    transformers = sys.modules.get("transformers")
    if transformers is not None:
        from transformers.utils import logging as tf_logging

        if tf_logging.is_progress_bar_enabled():
            tf_logging.disable_progress_bar()
            undo.append(tf_logging.enable_progress_bar)
    datasets = sys.modules.get("datasets")
    if datasets is not None and datasets.is_progress_bar_enabled():
        datasets.disable_progress_bars()
        undo.append(datasets.enable_progress_bars)
    try:
        yield
    finally:
        for again in undo:
            again()
