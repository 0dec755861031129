"""How the lines of a batch share engines: servers by load, a local model by real batches.

- Servers (`EnginePool`): each line goes to the live server with the fewest lines in flight
  (ties: the one given the fewest so far, then the first listed). A connection failure
  (refused, reset, timed out, dropped past the engine's own resumes) retires the server for
  the rest of the run; the caller starts that line again on the others, so a dying server
  loses nothing. A server that answers with an error is alive: that line just fails.
- transformers (`RowBatcher`): `generate` runs one batch at a time, so concurrent lines
  would only queue behind each other. The batcher gathers the requests of the worker
  threads (until `--concurrency` are waiting, or none has come for `gap` seconds) and runs
  them as one left-padded `stream_prompts` batch; a request with `n` candidates (best-of)
  takes `n` rows, and continuation rounds are requests like any other. One `generate` has
  one temperature, top_p and stop list, so only requests that agree on those share a batch,
  and one random seed (the first request's): with transformers a seed reproduces a whole
  run (same file, same `--concurrency`), not one line on its own.
- vLLM batches concurrent streams itself; it is used like a server with one slot.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from longwrite.engines import EngineOptions
from longwrite.engines.base import FINISH_CANCELLED, Chunk, EngineError, Sampling
from longwrite.errors import LongwriteError

GATHER_GAP_S = 0.05  # RowBatcher: start a batch once no new request came for this long
CLOSE_WAIT_S = 5.0


def _err(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


@dataclass
class _Request:
    prompt: str
    sampling: Sampling
    replies: queue.Queue = field(default_factory=queue.Queue)

    @property
    def key(self) -> tuple:
        s = self.sampling
        return (s.temperature, s.top_p, s.top_k, s.repetition_penalty, s.stop)


_END = object()


class RowBatcher:
    """An Engine for many threads in front of one with `stream_prompts` (transformers).

    `stream` queues the request; one background thread runs the queued requests in batches
    (the oldest request's sampling settings first) and hands each request its chunks.
    """

    def __init__(
        self, engine: Any, *, expected: int, gap: float = GATHER_GAP_S, owns_engine: bool = False
    ) -> None:
        self.engine = engine
        self.owns_engine = owns_engine  # whether `close` closes the engine too
        self.info = engine.info
        self.expected = max(1, expected)
        self.gap = gap
        self.batches: list[int] = []  # rows of each batch run, for tests and the bench
        self._cond = threading.Condition()
        self._pending: list[_Request] = []
        self._last = 0.0
        self._closed = False
        self._cancelled = False
        self._thread = threading.Thread(target=self._loop, name="longwrite-batcher", daemon=True)
        self._thread.start()

    def stream(self, prompt: str, sampling: Sampling) -> Iterator[Chunk]:
        request = _Request(prompt, sampling)
        with self._cond:
            if self._closed:
                raise EngineError("the batch engine is closed")
            self._pending.append(request)
            self._last = time.monotonic()
            self._cond.notify_all()
        return self._replies(request)

    @staticmethod
    def _replies(request: _Request) -> Iterator[Chunk]:
        while (item := request.replies.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            yield item

    def count_tokens(self, text: str) -> int | None:
        return self.engine.count_tokens(text)

    def cancel(self) -> None:
        with self._cond:
            self._cancelled = True
            self._cond.notify_all()
        self.engine.cancel()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(CLOSE_WAIT_S)
        if self.owns_engine:
            self.engine.close()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if not self._pending:
                    return
                while len(self._pending) < self.expected and not (self._closed or self._cancelled):
                    left = self._last + self.gap - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                key = self._pending[0].key
                group = [r for r in self._pending if r.key == key]
                self._pending = [r for r in self._pending if r.key != key]
                cancelled = self._cancelled
            self._run(group, cancelled)

    def _run(self, group: list[_Request], cancelled: bool) -> None:
        rows = [(r, i) for r in group for i in range(r.sampling.n)]
        try:
            if cancelled:
                for r, i in rows:
                    r.replies.put(Chunk("", 0, FINISH_CANCELLED, i))
                return
            self.batches.append(len(rows))
            prompts = [r.prompt for r, _ in rows]
            samplings = [replace(r.sampling, n=1) for r, _ in rows]
            for chunk in self.engine.stream_prompts(prompts, samplings):
                r, i = rows[chunk.index]
                r.replies.put(replace(chunk, index=i))
        except BaseException as exc:  # every request of the batch fails with it
            for r in group:
                r.replies.put(exc)
        finally:
            for r in group:
                r.replies.put(_END)


@dataclass
class Slot:
    """One engine (a server, or the local engine) and the lines it has in flight."""

    name: str
    engine: Any
    order: int
    server: bool = False  # a connection failure retires a server; a local engine just fails
    in_flight: int = 0
    assigned: int = 0
    dead: str | None = None


class EnginePool:
    """Hands out the live engine with the fewest lines in flight; retires dead servers."""

    def __init__(
        self,
        engines: list[tuple[str, Any]],
        *,
        servers: bool = False,
        warn: Callable[[str], None] = _err,
    ) -> None:
        self.slots = [Slot(name, e, i, servers) for i, (name, e) in enumerate(engines)]
        self._lock = threading.Lock()
        self._warn = warn

    def acquire(self) -> Slot | None:
        with self._lock:
            live = [s for s in self.slots if s.dead is None]
            if not live:
                return None
            slot = min(live, key=lambda s: (s.in_flight, s.assigned, s.order))
            slot.in_flight += 1
            slot.assigned += 1
            return slot

    def release(self, slot: Slot) -> None:
        with self._lock:
            slot.in_flight -= 1

    def retire(self, slot: Slot, reason: str) -> None:
        with self._lock:
            if slot.dead is not None:
                return
            slot.dead = reason
            left = sum(s.dead is None for s in self.slots)
        self._warn(
            f"longwrite: warning: {slot.name} failed ({reason}); retired, "
            f"{left} server(s) left; its lines start again on the others"
        )

    def cancel(self) -> None:
        for slot in self.slots:
            cancel = getattr(slot.engine, "cancel", None)
            if cancel is not None:
                cancel()

    def close(self) -> None:
        for slot in self.slots:
            slot.engine.close()


def is_connection_failure(exc: BaseException) -> bool:
    """Whether `exc` (or what caused it) says the server could not be reached or went away."""
    openai = sys.modules.get("openai")
    stack: list[BaseException | None] = [exc]
    seen: set[int] = set()
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, ConnectionError):
            return True
        if openai is not None and isinstance(e, openai.APIConnectionError):
            return True
        if any(c.__name__ == "TransportError" for c in type(e).__mro__):  # httpx
            return True
        stack += [e.__cause__, e.__context__]
    return False


def server_urls(servers: list[str] | None, servers_file: Path | None) -> list[str]:
    """`--server` URLs, then those of `--servers-file` (one per line, `#` comments), deduped."""
    urls = list(servers or [])
    if servers_file is not None:
        try:
            text = servers_file.read_text(encoding="utf-8")
        except OSError as e:
            raise LongwriteError(f"cannot read {servers_file}: {e.strerror}") from None
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                urls.append(line)
        if not urls:
            raise LongwriteError(f"{servers_file} names no server")
    return list(dict.fromkeys(u.strip() for u in urls if u.strip()))


def open_pool(options: EngineOptions, servers: list[str], concurrency: int) -> EnginePool:
    """The engines to run on: one per reachable server, or the local engine (batched)."""
    from longwrite.engines import configured_server, load_engine, resolve_engine_name

    backend = resolve_engine_name(options.engine, server=servers[0] if servers else None)
    if backend != "openai":
        if servers:
            raise LongwriteError(f"--server is for the openai engine, not {backend}")
        from longwrite.job import _Loading, _warn_if_too_large

        if backend == "transformers":
            _warn_if_too_large(options)
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        with _Loading(options.model or backend):
            engine = load_engine(options)
        if hasattr(engine, "stream_prompts"):
            engine = RowBatcher(engine, expected=concurrency, owns_engine=True)
        return EnginePool([(engine.info.name, engine)])
    from longwrite.engines.openai import from_env

    urls = servers or [u for u in [configured_server(None)] if u]
    engines, errors = [], []
    for url in urls:
        try:
            engines.append((f"server {url}", from_env(url, options.model)))
        except EngineError as e:
            if len(urls) == 1:
                raise
            errors.append(e)
            _err(f"longwrite: warning: skipping {url}: {e}")
    if not engines:
        raise LongwriteError(f"no server could be reached ({len(urls)} tried): {errors[0]}")
    return EnginePool(engines, servers=True)
