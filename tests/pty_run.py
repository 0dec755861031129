"""Run a command on a pseudo-terminal (100x40 unless told) and read everything it prints."""

from __future__ import annotations

import fcntl
import os
import struct
import subprocess
import termios
from pathlib import Path


def terminal_env(**extra: str) -> dict[str, str]:
    """This environment as a 256-colour terminal would have it, the package importable."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
    env.update(TERM="xterm-256color", PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    env.update(extra)
    return env


def run_on_pty(
    argv: list[str], env: dict[str, str], *, rows: int = 40, cols: int = 100, timeout: float = 30
) -> tuple[int, str]:
    """(exit code, what the terminal received) for `argv` with stdin/stdout/stderr on a pty."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    proc = subprocess.Popen(
        argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 1 << 16)
        except OSError:  # EIO: the terminal's last writer is gone
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(timeout), b"".join(chunks).decode()
