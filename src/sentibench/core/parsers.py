"""argparse parsers of the command line: one-line errors, and sub-commands that own their
unknown arguments and accept options between positionals."""

from __future__ import annotations

import argparse
from typing import NoReturn


class OneLineParser(argparse.ArgumentParser):
    """argparse, with mistakes reported on one line (the usage block only with --help)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


class CommandParser(OneLineParser):
    """A sub-command's parser. Arguments it does not know are its own error: argparse leaves
    them to the top-level parser, whose message named no command. Options may come between
    the positionals (``predict RUN --device cpu "a review"``), which plain argparse refuses
    once an optional follows the first positional."""

    _inner = False  # parse_known_intermixed_args calls parse_known_args itself

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        if self._inner:
            return super().parse_known_args(args, namespace)
        self._inner = True
        try:
            namespace, extras = self.parse_known_intermixed_args(args, namespace)
        finally:
            self._inner = False
        if extras:  # the unknown flags, when there are any: what follows may be a text
            self.error(f"unrecognized arguments: "
                       f"{' '.join([e for e in extras if e.startswith('-')] or extras)}")
        return namespace, extras
