"""`longwrite batch IN.jsonl -o OUT.jsonl`: a document for every line of a file, resumable.

Every line runs exactly the main job (`generate.job.resolve_request` for the target and
steering, `length.budget.with_budget`, then `generate.rounds.write_document` with
continuation rounds, or `generate.best_of`), so a batch line and `longwrite PROMPT` agree.
The input format and ids are in `batch.input`, the crash-safe output file in `io.jsonl`, how
lines share servers and batches in `batch.pool`; the command itself is `cli.batch`.

Choices:
- Output. Each finished line is the input object (every field kept) with `id` set and
  `answer`, `thinking`, `words` (the count), `tokens`, `finish_reason`, `seconds`, `rounds`
  (or `best` and `candidates` with best-of), `target_words` and `target_range` added. The
  produced count and the required length never share a field: `words` is always the count,
  `length` the required length (an input `words` target is moved there; a line that gives
  neither has no `length`, and `eval length` refuses it). Lines are written as they finish.
- Resume. Re-running the same command skips the ids already in OUT. A line stopped by
  Ctrl-C is never written, so it runs again.
- Exit codes: 0 when every line is in OUT; 1 when a line was malformed (reported with its
  line number and skipped) or failed, or every server died (OUT keeps what finished), or OUT
  could not be written (a full disk: the run stops, the line that failed and those in flight
  are counted as not run and run again next time); 2 for a mistake found before anything
  runs (another run holding OUT too); 130 after Ctrl-C.
- Concurrency: `--concurrency N` lines in flight per server (a local engine counts as one),
  on worker threads over the synchronous Engine protocol (the openai client and the vLLM
  engine are thread-safe; transformers gets a `RowBatcher`). A server that fails is backed
  off and its lines sent again (`batching.py`); a line fails after `LINE_TRIES` failures.
- One writer: OUT is locked for the run (`AppendLog.lock`); a second run on the same OUT
  is refused with exit 2.
- Progress on stderr: a rich bar on a terminal (done/total, tokens per second, ETA), else a
  plain line every so often and one at the end (`batch_progress.py`).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from longwrite.batch import DEFAULT_CONCURRENCY
from longwrite.batch.input import BatchItem, item_options
from longwrite.batch.pool import (
    FAILED,
    LINE,
    LINE_TRIES,
    REJECTED,
    EnginePool,
    failure_kind,
)
from longwrite.display.batch_progress import BatchProgress
from longwrite.engines.base import (
    FINISH_CANCELLED,
    Chunk,
    Engine,
    Sampling,
)
from longwrite.errors import EXIT_FAILED, LongwriteError, one_line, say
from longwrite.generate.job import WriteOptions
from longwrite.io.jsonl import AppendLog

STOP_WAIT_S = 5.0  # after Ctrl-C, how long the workers get to stop


class BatchFailed(LongwriteError):
    """A run that cannot finish (every server died); OUT keeps what finished."""

    exit_code = EXIT_FAILED


def done_ids(records: list[dict[str, Any]]) -> set[str]:
    return {str(r["id"]) for r in records if r.get("id") is not None}


class _Quiet:
    """The event sink of a batch line: nothing is displayed while it is written."""

    def handle(self, event: Any) -> None:
        pass

    def add_tokens(self, n: int) -> None:
        pass


class _Tracked:
    """An engine whose chunks report their tokens and stop once `cancel` is set.

    Stopping is a KeyboardInterrupt raised inside the stream, which `write_document` and
    `best_of` already turn into a "cancelled" ending, exactly as Ctrl-C does.
    """

    def __init__(self, engine: Engine, on_tokens: Callable[[int], None], cancel: threading.Event):
        self.engine = engine
        self.info = engine.info
        self._on_tokens = on_tokens
        self._cancel = cancel

    def stream(self, prompt: str, sampling: Sampling) -> Iterator[Chunk]:
        inner = self.engine.stream(prompt, sampling)
        try:
            for chunk in inner:
                if self._cancel.is_set():
                    raise KeyboardInterrupt
                if chunk.tokens:
                    self._on_tokens(chunk.tokens)
                yield chunk
        finally:
            close = getattr(inner, "close", None)
            if close is not None:
                close()

    def count_tokens(self, text: str) -> int | None:
        return self.engine.count_tokens(text)

    def close(self) -> None:
        pass


def run_item(engine: Engine, item: BatchItem, base: WriteOptions) -> dict[str, Any] | None:
    """Write one line as the main job would; its output record, or None when cancelled."""
    from longwrite.generate.job import budget_request, produce, resolve_request
    from longwrite.generate.sectioned import produce_sectioned, sections_for

    opts = item_options(item, base)
    request, budget = budget_request(opts, resolve_request(opts), engine)
    extra: dict[str, Any] = {}
    sections = sections_for(opts, request, budget)
    if sections is not None:  # longer than one pass: plan, then section by section
        sectioned = produce_sectioned(opts, request, engine, budget, sections, _Quiet())
        result, extra = sectioned.result, sectioned.extra()
    else:
        made = produce(opts, request, engine, _Quiet())
        result = made.result
        if made.best is not None:
            extra = {"best": made.best, "candidates": [c.summary() for c in made.candidates]}
    if result.finish_reason == FINISH_CANCELLED:
        return None
    given = item.fields.get("id")
    record: dict[str, Any] = {"id": item.id if given is None else given}
    record.update((k, v) for k, v in item.fields.items() if k != "id")
    if "words" in item.fields and "length" not in item.fields:
        record["length"] = item.fields["words"]
    produced = result.to_json()
    del produced["prompt"]
    record.update(produced)
    record.update(extra)
    record["target_words"] = request.target_words
    record["target_range"] = list(request.target_range) if request.target_range else None
    return record


@dataclass
class Outcome:
    """What a run did."""

    written: int = 0
    failed: list[tuple[BatchItem, str]] = field(default_factory=list)
    left: list[BatchItem] = field(default_factory=list)  # not run (all servers dead, Ctrl-C)
    interrupted: bool = False
    all_dead: bool = False
    stopped: LongwriteError | None = None  # OUT could not be written (a full disk): why


@dataclass
class _Tries:
    """What a line met so far: the servers that refused it or failed it, and the last error."""

    refused_by: frozenset[str] = frozenset()
    failed_on: frozenset[str] = frozenset()
    failures: int = 0
    last: str = ""

    def after(self, kind: str, server: str, why: str) -> _Tries:
        """These tries and one more, on `server`, that ended as `kind` (REJECTED, FAILED)."""
        return _Tries(
            self.refused_by | ({server} if kind == REJECTED else set()),
            self.failed_on | ({server} if kind == FAILED else set()),
            self.failures + (kind == FAILED),
            why,
        )


def run_batch(
    items: list[BatchItem],
    pool: EnginePool,
    log: AppendLog,
    base: WriteOptions,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    progress: BatchProgress | None = None,
    warn: Callable[[str], None] | None = None,
) -> Outcome:
    """Run `items`, `concurrency` at a time on each engine of `pool` (on worker threads);
    each result is appended to `log`. A line a server failed is sent again (see batching)."""
    warn = warn or say
    todo: deque[BatchItem] = deque(items)
    tries: dict[int, _Tries] = {}  # by id() of the line (one worker holds a line at a time)
    lock = threading.Lock()
    cancel = threading.Event()
    outcome = Outcome()
    on_tokens = progress.add_tokens if progress is not None else (lambda n: None)
    pool.per_slot = concurrency

    def next_item() -> BatchItem | None:
        with lock:
            return todo.popleft() if todo and not cancel.is_set() else None

    def put_back(item: BatchItem) -> None:
        with lock:
            todo.appendleft(item)

    def fail(item: BatchItem, why: str) -> None:
        with lock:
            outcome.failed.append((item, why))
        warn(f"longwrite: error: line {item.line} (id {item.id}): {why}")
        if progress is not None:
            progress.finished(False)

    def work() -> None:
        while (item := next_item()) is not None:
            met = tries.get(id(item), _Tries())
            slot = pool.acquire(met.refused_by, cancel, avoid=met.failed_on)
            if slot is None:
                if cancel.is_set():
                    put_back(item)
                    return
                if met.refused_by and pool.live():  # refused by every live server
                    fail(item, met.last)
                    continue
                put_back(item)
                outcome.all_dead = True
                return
            episode = slot.episode
            try:
                record = run_item(_Tracked(slot.engine, on_tokens, cancel), item, base)
            except Exception as exc:  # noqa: BLE001 - one line's failure is reported, not fatal
                why, kind = one_line(exc), failure_kind(slot, exc)
                if kind == LINE:
                    fail(item, why)
                    continue
                pool.failed(slot, episode, kind, why)
                met = tries[id(item)] = met.after(kind, slot.name, why)
                if met.failures >= LINE_TRIES:
                    fail(item, f"{why} ({met.failures} tries)")
                    continue
                put_back(item)  # to another server, or to this one after its pause
                continue
            finally:
                pool.release(slot)
            pool.succeeded(slot, episode)
            if record is None:  # cancelled: not written, so it runs again next time
                put_back(item)
                return
            try:
                log.append(record)
            except LongwriteError as exc:  # OUT cannot take it (a full disk): stop the run
                put_back(item)  # not written, so it runs again next time
                with lock:
                    outcome.stopped = outcome.stopped or exc
                cancel.set()
                return
            with lock:
                outcome.written += 1
            if progress is not None:
                progress.finished(True)

    running = [max(1, min(concurrency * len(pool.slots), len(items)))]

    def worker() -> None:
        try:
            work()
        finally:
            with lock:
                running[0] -= 1

    def wait(until: float | None = None) -> None:
        # Polled rather than Thread.join: on Python 3.11 a join that Ctrl-C interrupts can
        # take a thread that is still running for a finished one.
        while running[0] > 0 and (until is None or time.monotonic() < until):
            time.sleep(0.02)

    for i in range(running[0]):
        threading.Thread(target=worker, name=f"longwrite-batch-{i}", daemon=True).start()
    try:
        wait()
    except KeyboardInterrupt:
        cancel.set()
        pool.cancel()
        wait(time.monotonic() + STOP_WAIT_S)
        outcome.interrupted = True
    outcome.left = list(todo)
    return outcome
