"""The one exception type the CLI turns into a one-line message and exit code 2."""


class SentibenchError(Exception):
    """An expected failure caused by input or environment, not by a bug.

    The message must be one line that names the file, row or flag at fault, because
    the CLI prints it verbatim as ``error: <message>`` without a traceback.
    """
