"""Best-of-K progress on stderr: one line per candidate while they are sampled, then scores.

The K candidates are generated together and none is shown until all are scored, so the
user needs to see that each one is moving. On a terminal, a rich progress line per candidate
(tokens against `max_tokens`, and how it ended); the score table goes to stderr in every
case, so a piped run still says which candidate won and why.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

SCORE_KEYS = ("length", "format", "repetition", "total")


def score_line(candidate: Any, best: int) -> str:
    """e.g. "candidate 2: 1,234 words, 1,900 tok, stop · length 0.93 … total 0.97 (best)"."""
    parts = [f"{key} {candidate.scores[key]:.2f}" for key in SCORE_KEYS if key in candidate.scores]
    mark = " (best)" if candidate.index == best else ""
    return (
        f"candidate {candidate.index + 1}: {candidate.words:,} words, {candidate.tokens:,} tok, "
        f"{candidate.finish_reason} · {' · '.join(parts)}{mark}"
    )


class CandidateProgress:
    """Callable as `progress(index, tokens, finish_reason)` from `control.best_of`."""

    def __init__(self, k: int, max_tokens: int, *, stderr: TextIO | None = None,
                 stderr_tty: bool | None = None) -> None:  # fmt: skip
        self._stream = stderr if stderr is not None else sys.stderr
        tty = self._stream.isatty() if stderr_tty is None else stderr_tty
        self._console = Console(file=self._stream, force_terminal=tty or None)
        self._progress: Progress | None = None
        if tty:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("tok {task.fields[state]}"),
                TimeElapsedColumn(),
                console=self._console,
                transient=True,
            )
            self._tasks = [
                self._progress.add_task(f"candidate {i + 1}", total=max_tokens, state="")
                for i in range(k)
            ]

    def __enter__(self) -> CandidateProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def __call__(self, index: int, tokens: int, finish: str | None) -> None:
        if self._progress is not None:
            state = f"· {finish}" if finish else ""
            self._progress.update(self._tasks[index], completed=tokens, state=state)

    def summary(self, candidates: list[Any], best: int) -> None:
        if self._progress is not None:
            self._progress.stop()
        for candidate in candidates:
            self._console.print(
                score_line(candidate, best), highlight=False, markup=False, soft_wrap=True
            )
