"""The one exception type the CLI turns into a one-line message and exit code 2."""


class SentibenchError(Exception):
    """An expected failure caused by input or environment, not by a bug.

    The message must be one line that names the file, row or flag at fault, because
    the CLI prints it verbatim as ``error: <message>`` without a traceback.
    """


def first_line(error: BaseException) -> str:
    """An exception's message cut to its first line (its type's name if it has none), for
    a one-line error or log that quotes it."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
