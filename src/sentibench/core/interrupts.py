"""Ctrl-C while a command runs: raised as KeyboardInterrupt, counted, and turned into
exit status 130 even when something on the way up swallows it."""

from __future__ import annotations

import os
import signal
import sys


class Interrupts:
    """SIGINT while sentibench runs: a KeyboardInterrupt, as Python's own handler raises,
    and counted. The count decides the exit status, so a Ctrl-C that is swallowed on its way
    up (in a ``__del__`` run by the garbage collector, where Python only prints "Exception
    ignored", or in a library's broad ``except``) still ends the command with 130, never 0."""

    def __init__(self) -> None:
        self.count = 0
        self.raising = True  # False once the command is over: a Ctrl-C then only counts
        self.code: int | None = None  # the command's exit status, once it has one
        self.prog = "sentibench"

    def __call__(self, signum: int, frame: object) -> None:
        self.count += 1
        if self.raising:
            raise KeyboardInterrupt

    def end_process(self) -> None:
        """The process's last exit hook (registered before the command ran, so every hook
        registered while it ran comes first): exit now with the command's status, 130 if a
        Ctrl-C came at any time. Python would next turn its signal handlers off, and a
        Ctrl-C during the module teardown that follows would kill the process (status
        -SIGINT) or be lost in a ``__del__``; that teardown only frees memory."""
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        late = signal.SIGINT in signal.sigpending()
        if self.code is None and not (self.count or late):
            return  # a traceback or argparse's exit: Python ends as it would have
        if (late or self.count) and self.code != 130:
            print(f"{self.prog}: error: interrupted", file=sys.stderr)
        code = 130 if late or self.count else self.code or 0
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except (OSError, ValueError):  # a closed pipe: Python's own status for it
            code = code or 120
        os._exit(code)
