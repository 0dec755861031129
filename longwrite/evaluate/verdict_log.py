"""Ask a judge about what has no current verdict; append each verdict as it comes.

Why: `eval quality`, `eval writingbench` and `eval arena` keep their verdicts the same way:
an append-only log beside the results (one writer at a time, whole lines only, so a run
killed halfway resumes), a verdict reused only while it is current (the same answer, the
same judge), and the judge asked, through the one `JudgeClient`, only about the rest. Each
benchmark says what is current, what to ask and what a verdict records; this module does
the asking and the logging once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from longwrite.scoring.judge import Ask, JudgeClient, Judged

Item = TypeVar("Item")
Verdict = TypeVar("Verdict")
Reply = TypeVar("Reply")


class Shown(Protocol):
    def finished(self, ok: bool) -> None: ...


ProgressFor = Callable[[int], AbstractContextManager[Shown]]  # asks -> an open display


@dataclass(frozen=True)
class Asking:
    """How the judge is asked: `concurrency` at once, 1 + `retries` attempts with
    `backoff`, answers cut to the judge's `context_tokens` (None: unknown) less its reply's
    `max_tokens`."""

    concurrency: int
    retries: int
    backoff: float
    context_tokens: int | None
    max_tokens: int


def ask_missing(
    scores_path: Path,
    send: Callable[[str], str],
    asking: Asking,
    *,
    current: Callable[[list[tuple[int, dict[str, Any]]]], dict[str, Verdict]],
    pending: Callable[[dict[str, Verdict]], list[Item]],
    ask: Callable[[JudgeClient, Item], Ask],
    parse: Callable[[str], Reply],
    record: Callable[[Item, Judged[Reply]], tuple[str, dict[str, Any], Verdict]],
    progress: ProgressFor | None = None,
) -> dict[str, Verdict]:
    """Every current verdict by key, the new ones included.

    `current(log records, each with its line number)` keeps the verdicts still valid (a
    record of the wrong shape is refused with its line: `io.records.at_line`);
    `pending(verdicts)` lists the items to ask about; `ask(client, item)` is its question;
    `record(item, judged)` gives (key, the line to append, the verdict); `progress(n)` opens
    a display of the n asks (its `finished(scored)` is called as each ends)."""
    from longwrite.io.jsonl import AppendLog

    log = AppendLog(scores_path)
    log.lock()  # one writer per scores file, as for batch outputs
    try:
        verdicts = current(log.load_numbered())
        todo = pending(verdicts)
        client = JudgeClient(
            send,
            attempts=asking.retries + 1,
            backoff=asking.backoff,
            concurrency=asking.concurrency,
            context_tokens=asking.context_tokens,
            max_tokens=asking.max_tokens,
        )
        lock = threading.Lock()
        shown = progress(len(todo)) if progress is not None and todo else nullcontext()
        with shown as display:

            def done(index: int, judged: Judged[Reply]) -> None:
                key, line, verdict = record(todo[index], judged)
                log.append(line)
                with lock:
                    verdicts[key] = verdict
                if display is not None:
                    display.finished(judged.value is not None)

            client.ask_all([ask(client, item) for item in todo], parse, done)
    finally:
        log.close()
    return verdicts
