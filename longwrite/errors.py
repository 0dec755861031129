"""The one exception type for faults a user can fix.

The CLI turns a `LongwriteError` into a single `longwrite: error: ...` line on stderr and
its `exit_code` (2 unless a subclass says otherwise), never a traceback.
"""


class LongwriteError(Exception):
    exit_code = 2
