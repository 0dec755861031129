"""`longwrite batch IN.jsonl -o OUT.jsonl`: a document for every line of a file, resumable.

Every line runs exactly the main job (`job.resolve_request` for the target and steering,
`control.with_budget`, then `write.write_document` with continuation rounds, or
`control.best_of`), so a batch line and `longwrite PROMPT` agree. The input format and ids
are in `batch_input.py`, the crash-safe output file in `appendlog.py`, how lines share
servers and batches in `batching.py`.

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
  line number and skipped) or failed, or every server died (OUT keeps what finished); 2 for
  a mistake found before anything runs (another run holding OUT too); 130 after Ctrl-C.
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

import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

from longwrite import options as opt
from longwrite.appendlog import AppendLog
from longwrite.batch_input import BatchItem, Problem, item_options, read_items
from longwrite.batch_progress import BatchProgress
from longwrite.batching import (
    FAILED,
    LINE,
    LINE_TRIES,
    REJECTED,
    EnginePool,
    failure_kind,
    open_pool,
    server_urls,
)
from longwrite.engines import EngineOptions
from longwrite.engines.base import (
    DEFAULT_TEMPERATURE,
    DEFAULT_TOP_P,
    FINISH_CANCELLED,
    Chunk,
    Engine,
    Sampling,
)
from longwrite.errors import LongwriteError, one_line
from longwrite.job import WriteOptions

EXIT_FAILED = 1
EXIT_INTERRUPTED = 130
DEFAULT_CONCURRENCY = 8
STOP_WAIT_S = 5.0  # after Ctrl-C, how long the workers get to stop


class BatchFailed(LongwriteError):
    """A run that cannot finish (every server died); OUT keeps what finished."""

    exit_code = EXIT_FAILED


def _err(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


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
    from longwrite.control import best_of
    from longwrite.job import budget_request, continuation_for, resolve_request, scorer_for
    from longwrite.write import write_document

    opts = item_options(item, base)
    request, _ = budget_request(opts, resolve_request(opts), engine)
    extra: dict[str, Any] = {}
    if opts.best_of == 1:
        continuation = continuation_for(opts, request, engine)
        result = write_document(engine, request, _Quiet(), continuation=continuation)
    else:
        result, candidates, best = best_of(engine, request, opts.best_of, scorer_for(request))
        extra = {"best": best, "candidates": [c.summary() for c in candidates]}
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
    warn = warn or _err
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
            log.append(record)
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


def batch_command(
    input: Annotated[Path, typer.Argument(help="JSON Lines: `prompt`, optional `id`, `words` "
                     "or `length`, and overrides: temperature, top_p, max_tokens, seed, "
                     "best_of.", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Results, one JSON line per "
                      "prompt, appended as each finishes; re-running skips the ids there.",
                      show_default=False)],
    concurrency: Annotated[int, typer.Option(help="Prompts in flight per server (a local "
                           "engine: in all; transformers: prompts per batch).",
                           min=1)] = DEFAULT_CONCURRENCY,
    best_of: opt.BestOf = 1,
    max_rounds: opt.MaxRounds = 2,
    range_model: opt.RangeModel = None,
    model: opt.Model = None,
    engine: opt.EngineName = "auto",
    server: Annotated[list[str] | None, typer.Option(help="OpenAI-compatible server URL; give "
                      "it several times to spread the prompts (default: env LONGWRITE_SERVER).",
                      rich_help_panel=opt.ENGINE)] = None,
    servers_file: Annotated[Path | None, typer.Option(help="A file of server URLs, one per "
                            "line.", rich_help_panel=opt.ENGINE)] = None,
    tp: opt.Tp = None,
    max_model_len: opt.MaxModelLen = 32768,
    gpu_memory_utilization: opt.GpuMemoryUtilization = 0.9,
    device: opt.Device = "auto",
    dtype: opt.Dtype = "auto",
    max_tokens: opt.MaxTokens = None,
    temperature: opt.Temperature = DEFAULT_TEMPERATURE,
    top_p: opt.TopP = DEFAULT_TOP_P,
    seed: opt.Seed = None,
    no_think: opt.NoThink = False,
) -> None:  # fmt: skip
    """Write a document for every line of a JSON Lines file; resumable."""
    base = WriteOptions(
        prompt="",
        max_tokens=max_tokens,
        temperature=temperature,
        top_p=top_p,
        seed=seed,
        think=not no_think,
        best_of=best_of,
        max_rounds=max_rounds,
        range_model=range_model,
        engine=EngineOptions(
            engine=engine,
            model=model,
            device=device,
            dtype=dtype,
            tp=tp,
            max_model_len=max_model_len,
            gpu_memory_utilization=gpu_memory_utilization,
        ),
    )
    code = run_batch_command(input, output, base, server_urls(server, servers_file), concurrency)
    if code:
        raise typer.Exit(code)


def run_batch_command(
    input: Path, output: Path, base: WriteOptions, servers: list[str], concurrency: int
) -> int:
    """The whole command: read, resume, load, run, report; returns the exit code."""
    if concurrency < 1:
        raise LongwriteError(f"--concurrency must be at least 1, not {concurrency}")
    if base.best_of < 1:
        raise LongwriteError(f"--best-of must be at least 1, not {base.best_of}")
    if base.max_rounds < 0:
        raise LongwriteError(f"--max-rounds must be >= 0, not {base.max_rounds}")
    items, problems = read_items(input, base)
    for p in problems:
        _err(f"longwrite: error: {input}:{p.line}: {p.message}; line skipped")
    log = AppendLog(output)
    log.lock()  # one writer per OUT: two runs would write the same ids twice
    try:
        finished = done_ids(log.load())
        if log.dropped_torn:
            _err(f"longwrite: warning: {output} ended in a torn line (an earlier crash): cut off")
        todo = [item for item in items if item.id not in finished]
        already = len(items) - len(todo)
        if not todo:
            _err(f"batch: all {len(items)} lines are in {output}")
            return EXIT_FAILED if problems else 0
        pool = open_pool(base.engine, servers, concurrency)
        try:
            with BatchProgress(len(items), already) as progress:
                outcome = run_batch(
                    todo, pool, log, base, concurrency=concurrency, progress=progress
                )
        finally:
            pool.close()
    finally:
        log.close()
    return _report(outcome, problems, already, output)


def _report(outcome: Outcome, problems: list[Problem], already: int, output: Path) -> int:
    parts = [f"{outcome.written} written to {output}"]
    if already:
        parts.append(f"{already} already there")
    if outcome.failed:
        parts.append(f"{len(outcome.failed)} failed")
    if problems:
        parts.append(f"{len(problems)} malformed line(s) skipped")
    if outcome.left:
        parts.append(f"{len(outcome.left)} not run")
    _err("batch: " + ", ".join(parts))
    if outcome.interrupted:
        _err("interrupted: run the same command again to finish")
        return EXIT_INTERRUPTED
    if outcome.all_dead and outcome.left:
        raise BatchFailed(
            f"every server failed; {len(outcome.left)} line(s) not run. {output} keeps what "
            "finished: run the same command again to finish"
        )
    if outcome.failed or problems:
        return EXIT_FAILED
    return 0
