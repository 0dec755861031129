"""The one exception type for faults a user can fix, the exit codes, one line on stderr.

The CLI turns a `LongwriteError` into a single `longwrite: error: ...` line on stderr and
its `exit_code` (2 unless a subclass says otherwise), never a traceback. Every command ends
with one of the codes below, and every note, warning and error goes through `say`: one
flushed line on stderr, so it never mixes with a document piped on stdout.

A line says what it must and no more: `say` drops the password of any URL in it
(`redact.scrub`) and cuts it at `LINE_CHARS`, and a value quoted in a message (a judge's
reply, a field of a file) is cut with `clip` or shown with `quoted`: a 3 MB reply or a YAML
alias bomb is never printed whole.
"""

import sys

from longwrite.redact import scrub

EXIT_OK = 0
EXIT_FAILED = 1  # the run went wrong on the server's or the model's side (or some lines did)
EXIT_USAGE = 2  # a fault the user can fix: bad option, missing file, busy output
EXIT_INTERRUPTED = 130  # Ctrl-C, after what was written has been kept
LINE_CHARS = 2000  # the most one line on stderr says
QUOTE_CHARS = 200  # the most a message quotes of a value


class LongwriteError(Exception):
    exit_code = EXIT_USAGE


def clip(text: str, limit: int = QUOTE_CHARS) -> str:
    """`text` cut to `limit` characters (with "..." where it was cut)."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def quoted(value: object) -> str:
    """`value` as a message quotes it: its repr, bounded without walking all of it (a YAML
    alias bomb is millions of items) and clipped to `QUOTE_CHARS`."""
    import reprlib

    shown = reprlib.Repr()  # (Python 3.11 takes no settings in the constructor)
    shown.maxlevel, shown.maxlist, shown.maxdict, shown.maxstring = 3, 6, 6, 120
    return clip(shown.repr(value))


def say(message: str) -> None:
    """One line on stderr, flushed at once (no URL password in it, at most LINE_CHARS)."""
    sys.stderr.write(clip(scrub(message), LINE_CHARS) + "\n")
    sys.stderr.flush()


def one_line(error: BaseException | str, limit: int = 300) -> str:
    """The first non-blank line of an error (or text), cut to `limit` characters, without
    the password of any URL in it (it may be stored: the run log keeps a run's error)."""
    text = str(error)[: limit * 20]  # a first line is short; a 30 MB message is not read whole
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    fallback = type(error).__name__ if isinstance(error, BaseException) else ""
    return clip(scrub(lines[0] if lines else fallback), limit)
