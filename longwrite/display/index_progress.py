"""The progress bar of indexing (`longwrite index`, and `--source DIR` indexing on the fly).

A first index of a few thousand PDFs takes minutes, so a terminal shows a bar with the file
being read; anything else (a pipe, a log file, a batch under nohup) shows nothing until the
summary, which is said in every case by the caller.
"""

from __future__ import annotations

import sys
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class IndexBar:
    """Callable as `bar(done, total, file)` (`sources.build.Progress`); a context manager.
    The bar appears at the first call (an index that needs no work shows none)."""

    def __init__(self, label: str, *, stderr: TextIO | None = None) -> None:
        stream = stderr if stderr is not None else sys.stderr
        self._progress: Progress | None = None
        self._started = False
        if stream.isatty():
            self._progress = Progress(
                TextColumn(f"indexing {label}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[file]}", style="dim"),
                console=Console(file=stream),
                transient=True,
            )
            self._task = self._progress.add_task("", total=None, file="")

    def __enter__(self) -> IndexBar:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None and self._started:
            self._progress.stop()

    def __call__(self, done: int, total: int, file: str) -> None:
        if self._progress is not None:
            if not self._started:
                self._started = True
                self._progress.start()
            shown = file if len(file) <= 50 else "…" + file[-49:]
            self._progress.update(self._task, completed=done, total=total, file=shown)
