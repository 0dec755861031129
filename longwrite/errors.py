"""The one exception type for faults a user can fix, the exit codes, one line on stderr.

The CLI turns a `LongwriteError` into a single `longwrite: error: ...` line on stderr and
its `exit_code` (2 unless a subclass says otherwise), never a traceback. Every command ends
with one of the codes below, and every note, warning and error goes through `say`: one
flushed line on stderr, so it never mixes with a document piped on stdout.
"""

import sys

EXIT_OK = 0
EXIT_FAILED = 1  # the run went wrong on the server's or the model's side (or some lines did)
EXIT_USAGE = 2  # a fault the user can fix: bad option, missing file, busy output
EXIT_INTERRUPTED = 130  # Ctrl-C, after what was written has been kept


class LongwriteError(Exception):
    exit_code = EXIT_USAGE


def say(message: str) -> None:
    """One line on stderr, flushed at once."""
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def one_line(error: BaseException | str, limit: int = 300) -> str:
    """The first non-blank line of an error (or text), cut to `limit` characters."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    fallback = type(error).__name__ if isinstance(error, BaseException) else ""
    text = lines[0] if lines else fallback
    return text if len(text) <= limit else text[: limit - 3] + "..."
