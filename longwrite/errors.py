"""The one exception type for faults a user can fix.

The CLI turns a `LongwriteError` into a single `longwrite: error: ...` line on stderr and
its `exit_code` (2 unless a subclass says otherwise), never a traceback.
"""


class LongwriteError(Exception):
    exit_code = 2


def one_line(error: BaseException | str, limit: int = 300) -> str:
    """The first non-blank line of an error (or text), cut to `limit` characters."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    fallback = type(error).__name__ if isinstance(error, BaseException) else ""
    text = lines[0] if lines else fallback
    return text if len(text) <= limit else text[: limit - 3] + "..."
