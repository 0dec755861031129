"""The progress of a long job on stderr: done/total, tokens per second and ETA.

`longwrite batch` (lines, with the tokens per second) and the judged evaluations (`eval
quality`, `writingbench`, `arena`: verdicts, with how many stayed unscored). A rich bar on
a terminal; on a pipe or a log file, a plain line at most every `PLAIN_EVERY_S` seconds (a
batch runs for hours: a line per result would flood the log) and one at the end.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, TextIO

from longwrite.display.status import format_duration

PLAIN_EVERY_S = 10.0  # progress lines when stderr is not a terminal: at most this often


class BatchProgress:
    """done/total, tokens per second and ETA on stderr: a rich bar on a terminal, else a
    plain line at most every `every` seconds and one at the end."""

    def __init__(
        self,
        total: int,
        done: int = 0,
        *,
        stream: TextIO | None = None,
        tty: bool | None = None,
        every: float = PLAIN_EVERY_S,
        label: str = "batch",
        rate: bool = True,
        failed_word: str = "failed",
    ) -> None:
        self.total, self.done, self.failed = total, done, 0
        self._label, self._show_rate, self._failed_word = label, rate, failed_word
        self._start_done = done
        self.tokens = 0
        self._stream = stream if stream is not None else sys.stderr
        self._tty = self._stream.isatty() if tty is None else tty
        self._every = every
        self._started = time.monotonic()
        self._printed: float | None = None  # when the last plain line went out
        self._lock = threading.Lock()
        self._bar: Any = None

    def __enter__(self) -> BatchProgress:
        if self._tty:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            middle = [TextColumn("{task.fields[rate]} tok/s")] if self._show_rate else []
            self._bar = Progress(
                TextColumn(self._label, markup=False),
                BarColumn(),
                MofNCompleteColumn(),
                *middle,
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=Console(file=self._stream),
                transient=False,
            )
            self._task = self._bar.add_task("", total=self.total, completed=self.done, rate="0")
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.update(self._task, rate=self._rate())
            self._bar.stop()
        else:
            self._line()

    def _rate(self) -> str:
        return f"{self.tokens / max(time.monotonic() - self._started, 1e-9):,.0f}"

    def add_tokens(self, n: int) -> None:
        with self._lock:
            self.tokens += n
        if self._bar is not None:
            self._bar.update(self._task, rate=self._rate())

    def finished(self, ok: bool) -> None:
        with self._lock:
            if ok:
                self.done += 1
            else:
                self.failed += 1
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done, rate=self._rate())
        elif self._printed is None or time.monotonic() - self._printed >= self._every:
            self._line()

    def eta(self) -> float | None:
        """Seconds left at this run's pace, or None before the first line is done."""
        finished = self.done - self._start_done + self.failed
        left = self.total - self.done - self.failed
        if finished <= 0:
            return None
        return (time.monotonic() - self._started) / finished * max(left, 0)

    def _line(self) -> None:
        self._printed = time.monotonic()
        eta = self.eta()
        failed = f", {self.failed} {self._failed_word}" if self.failed else ""
        rate = f", {self._rate()} tok/s" if self._show_rate else ""
        left = self.done + self.failed < self.total
        when = f", ETA {format_duration(eta)}" if eta is not None and left else ""
        self._stream.write(f"{self._label}: {self.done}/{self.total} done{failed}{rate}{when}\n")
        self._stream.flush()
