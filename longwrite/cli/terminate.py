"""SIGTERM stops a run the way Ctrl-C does.

Why: `kill`, `timeout`, systemd and a job scheduler's time limit (Slurm sends SIGTERM, then
SIGKILL after a grace period) end a process with SIGTERM, whose default is to die on the
spot. A write would then lose the text the loop guard still held back (up to a paragraph,
or a run of repeats being judged) and the run log's last half second; a batch or an
evaluation would stop without a word. Raised as KeyboardInterrupt in the main thread,
SIGTERM takes the Ctrl-C path every long command already has: what was written is kept, the
run log says interrupted, `-o FILE` stays FILE.partial. The exit code is 143 (128 +
SIGTERM), as a process killed by it reports. A second SIGTERM kills at once.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

EXIT_TERMINATED = 128 + signal.SIGTERM
COMMANDS = ("write", "continue", "batch", "eval")  # long runs that keep their work on Ctrl-C


class Terminated(KeyboardInterrupt):
    """SIGTERM, delivered as the interrupt the commands already handle."""


class _State:
    received = False


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    _State.received = True
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second one is not asked twice
    raise Terminated


@contextlib.contextmanager
def as_interrupt(command: str | None) -> Iterator[None]:
    """Handle SIGTERM as an interrupt while `command` (the first argument) runs; the
    previous handler is back afterwards (the CLI also runs inside tests and scripts)."""
    if command not in COMMANDS or threading.current_thread() is not threading.main_thread():
        yield
        return
    _State.received = False
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def resumable(where: object) -> Iterator[None]:
    """Ctrl-C or SIGTERM in a command that appends its work as it goes (`eval`'s judges,
    `rl prepare`): one line saying where the work so far is kept, then exit 130 (143)."""
    import typer

    from longwrite.errors import EXIT_INTERRUPTED, say

    try:
        yield
    except KeyboardInterrupt:
        say(f"interrupted: what was done is kept in {where}; the same command carries on")
        raise typer.Exit(EXIT_INTERRUPTED) from None


def exit_code(code: int) -> int:
    """`code`, or 143 where the interrupt that ended the run was SIGTERM."""
    from longwrite.errors import EXIT_INTERRUPTED

    return EXIT_TERMINATED if _State.received and code == EXIT_INTERRUPTED else code
