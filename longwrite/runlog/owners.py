"""Which process owns a running run, and whether it still runs.

Why: a run killed with `kill -9`, or cut by a reboot, never says it stopped; `logs` and
`continue` must still not show it as running, nor refuse to carry it on. A run records its
owner as host:pid:start-ticks (the start time from /proc, so a reused pid is not taken for
the original process); another machine's run is not ours to judge.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

__all__ = ["my_owner", "owner_alive"]


def _start_ticks(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks since boot) of `pid` from /proc, where readable."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
    return fields[0], fields[19]


def my_owner() -> str:
    ticks = _start_ticks(os.getpid())
    return f"{socket.gethostname()}:{os.getpid()}:{ticks[1] if ticks else ''}"


def owner_alive(owner: str | None) -> bool:
    """Whether the process that owns a running run still runs (True when we cannot tell)."""
    if not owner:
        return False
    host, _, rest = owner.partition(":")
    pid_text, _, start = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return True  # another machine's run: not ours to judge
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    ticks = _start_ticks(pid)
    if ticks is None:
        return True
    state, started = ticks
    return state not in ("Z", "X") and (not start or started == start)
