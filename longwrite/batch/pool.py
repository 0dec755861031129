"""How the lines of a batch share engines: servers by load, a local model by real batches.

- Requests (`open_pool`): a server is asked for each line's whole completion in one JSON
  reply, since nobody watches a batch line token by token and one event per token is what
  limits a client (bench/batch_client.py); `--stream` streams instead, so that a dropped
  connection resumes from the text so far, asking vLLM for STREAM_INTERVAL tokens an event.
- Servers (`EnginePool`): each line goes to the ready server with the fewest lines in flight
  (ties: the one given the fewest so far, then the first listed), at most `--concurrency`
  lines per server. What a failure says about the server (`failure_kind`):
  - nobody listens there (connection refused): it is retired at once;
  - it failed (no connection, HTTP 5xx, a reply that is not JSON, a timeout, a stream
    broken past the engine's resumes), or refused the request (HTTP 4xx): it is backed
    off. A server that fails fast has nothing in flight, so without a pause least-in-flight
    routing would hand it every line; it gets no new line for `backoff` seconds (doubling
    with each failure in a row), then one line at a time until one succeeds. Lines that
    were in flight when it failed count as that one failure. `STRIKES` server failures in
    a row retire it; refusals do not, since a 4xx may be the line's own fault.
  The caller sends the line again: after a refusal to a server that has not refused it (it
  fails once every live server has), after a failure to a server it has not failed on where
  one is live (else to any), up to `LINE_TRIES` times. A slow request is one failed
  request, never a dead server.
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
from longwrite.errors import LongwriteError, say

GATHER_GAP_S = 0.05  # RowBatcher: start a batch once no new request came for this long
CLOSE_WAIT_S = 5.0
BACKOFF_S = 1.0  # a failing server's first pause; it doubles with each failure in a row
BACKOFF_MAX_S = 30.0
STRIKES = 3  # server failures in a row (not refusals) that retire a server
LINE_TRIES = 3  # server failures one line may meet before it is reported failed
WAIT_STEP_S = 0.1  # how often a waiting `acquire` looks at its cancel event
STREAM_INTERVAL = 16  # `batch --stream`: tokens per event asked of vLLM (bench/batch_client.py)

# What a failed line says about its server (`failure_kind`).
LINE = "line"  # nothing about the server: the line fails (a local engine, a bug)
REFUSED = "refused"  # nobody listens there: retire it now
REJECTED = "rejected"  # HTTP 4xx: back off; the line tries another server
FAILED = "failed"  # the server failed or was too slow: back off, strike; retry the line


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
PADDING_SLACK = 1.5  # a batch may hold at most 50% more prompt positions than real tokens


def length_buckets(lengths: list[int], slack: float = PADDING_SLACK) -> list[list[int]]:
    """Indices of `lengths` grouped into batches whose left padding stays small: sorted by
    length, a batch grows while (rows x its longest) <= slack x (its real tokens).

    One generate pads every row to the batch's longest prompt, so one batch of mixed lengths
    can carry twice the prompt positions it needs; a few batches of similar lengths do not.

    >>> length_buckets([100, 1000, 110, 950, 105])
    [[0, 4, 2], [3, 1]]
    >>> length_buckets([300] * 4)
    [[0, 1, 2, 3]]
    """
    order = sorted(range(len(lengths)), key=lambda k: lengths[k])
    buckets: list[list[int]] = []
    total = 0
    for k in order:
        current = buckets[-1] if buckets else None
        if current is not None and (len(current) + 1) * lengths[k] <= slack * (total + lengths[k]):
            current.append(k)
            total += lengths[k]
        else:
            buckets.append([k])
            total = lengths[k]
    return buckets


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
            lengths = [self.engine.count_tokens(r.prompt) or len(r.prompt) for r, _ in rows]
            for bucket in length_buckets(lengths):
                part = [rows[k] for k in bucket]
                self.batches.append(len(part))
                prompts = [r.prompt for r, _ in part]
                samplings = [replace(r.sampling, n=1) for r, _ in part]
                for chunk in self.engine.stream_prompts(prompts, samplings):
                    r, i = part[chunk.index]
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
    server: bool = False  # a server can be backed off and retired; a local engine just fails
    in_flight: int = 0
    assigned: int = 0
    dead: str | None = None
    failures: int = 0  # failures in a row (refusals too): sets the back-off
    strikes: int = 0  # server failures in a row: STRIKES retire it
    episode: int = 0  # counted failures so far; a line started before the last one shares it
    until: float = 0.0  # no new line before this time (time.monotonic)


class EnginePool:
    """Hands out the ready engine with the fewest lines in flight; backs off failing servers
    and retires dead ones."""

    def __init__(
        self,
        engines: list[tuple[str, Any]],
        *,
        servers: bool = False,
        warn: Callable[[str], None] = say,
        per_slot: int | None = None,
        backoff: float = BACKOFF_S,
    ) -> None:
        self.slots = [Slot(name, e, i, servers) for i, (name, e) in enumerate(engines)]
        self.per_slot = per_slot  # lines in flight per engine (None: no limit)
        self.backoff = backoff
        self._cond = threading.Condition()
        self._warn = warn

    def live(self) -> int:
        with self._cond:
            return sum(s.dead is None for s in self.slots)

    def _capacity(self, slot: Slot) -> float:
        if slot.failures:
            return 1  # on probation after a back-off: one line until one succeeds
        return float("inf") if self.per_slot is None else self.per_slot

    def acquire(
        self,
        exclude: frozenset[str] = frozenset(),
        cancel: threading.Event | None = None,
        avoid: frozenset[str] = frozenset(),
    ) -> Slot | None:
        """The live engine to run the next line on, waiting while every one is backing off
        or full; None when none is live, or `cancel` is set. Engines named in `exclude` are
        never used; those in `avoid` only when every other live one is in it too."""
        with self._cond:
            while True:
                live = [s for s in self.slots if s.dead is None and s.name not in exclude]
                if not live or (cancel is not None and cancel.is_set()):
                    return None
                live = [s for s in live if s.name not in avoid] or live
                now = time.monotonic()
                ready = [s for s in live if s.until <= now and s.in_flight < self._capacity(s)]
                if ready:
                    slot = min(ready, key=lambda s: (s.in_flight, s.assigned, s.order))
                    slot.in_flight += 1
                    slot.assigned += 1
                    return slot
                waits = [s.until - now for s in live if s.until > now]
                self._cond.wait(min([WAIT_STEP_S, *waits]))

    def release(self, slot: Slot) -> None:
        with self._cond:
            slot.in_flight -= 1
            self._cond.notify_all()

    def succeeded(self, slot: Slot, episode: int) -> None:
        """A line started in `episode` finished on `slot`: it is healthy again."""
        with self._cond:
            if episode == slot.episode:
                slot.failures = slot.strikes = 0
                slot.until = 0.0
                self._cond.notify_all()

    def failed(self, slot: Slot, episode: int, kind: str, reason: str) -> None:
        """A line started in `episode` failed on `slot` (`kind`: see `failure_kind`)."""
        if kind == REFUSED:
            self.retire(slot, reason)
            return
        with self._cond:
            if slot.dead is not None or episode != slot.episode:
                return  # in flight before the failure already counted: the same failure
            others = sum(s.dead is None for s in self.slots) - 1
            if kind == REJECTED and not others:
                return  # no other server to send lines to: a pause would only slow the run
            slot.episode += 1
            slot.failures += 1
            slot.strikes += kind == FAILED
            out = slot.strikes >= STRIKES
            if not out:
                pause = min(self.backoff * 2 ** (slot.failures - 1), BACKOFF_MAX_S)
                slot.until = time.monotonic() + pause
                self._cond.notify_all()
        if out:
            self.retire(slot, f"{reason}; {STRIKES} failures in a row")
        else:
            meanwhile = "; its lines go to the other servers meanwhile" if others else ""
            self._warn(
                f"longwrite: warning: {slot.name} failed ({reason}); "
                f"backing off {pause:g} s{meanwhile}"
            )

    def retire(self, slot: Slot, reason: str) -> None:
        with self._cond:
            if slot.dead is not None:
                return
            slot.dead = reason
            left = sum(s.dead is None for s in self.slots)
            self._cond.notify_all()
        self._warn(
            f"longwrite: warning: {slot.name} failed ({reason}); retired, "
            f"{left} server(s) left; its lines start again on the others"
        )

    def cancel(self) -> None:
        for slot in self.slots:
            cancel = getattr(slot.engine, "cancel", None)
            if cancel is not None:
                cancel()
        with self._cond:
            self._cond.notify_all()

    def close(self) -> None:
        for slot in self.slots:
            slot.engine.close()


def failure_kind(slot: Slot, exc: BaseException) -> str:
    """What `exc`, raised by a line on `slot`, says about that engine (LINE ... FAILED)."""
    if not slot.server:
        return LINE
    engine = sys.modules.get("longwrite.engines.openai")
    if engine is not None:
        if isinstance(exc, engine.ServerUnreachable):
            return REFUSED if exc.refused else FAILED
        if isinstance(exc, engine.ServerRejected):
            return REJECTED
        if isinstance(exc, engine.ServerError | engine.ServerTimeout | engine.StreamBroken):
            return FAILED
    return FAILED if is_connection_failure(exc) else LINE


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
        from longwrite.io.files import read_user_text

        text = read_user_text(servers_file)
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                urls.append(line)
        if not urls:
            raise LongwriteError(f"{servers_file} names no server")
    return list(dict.fromkeys(u.strip() for u in urls if u.strip()))


def open_pool(
    options: EngineOptions, servers: list[str], concurrency: int, *, stream: bool = False
) -> EnginePool:
    """The engines to run on: one per reachable server, or the local engine (batched).

    A server is asked for each line's whole completion in one reply, or with `stream` for
    server-sent events (`STREAM_INTERVAL` tokens each where the server can group them).
    """
    from longwrite.engines import configured_server, resolve_engine_name

    backend = resolve_engine_name(options.engine, server=servers[0] if servers else None)
    if backend != "openai":
        if servers:
            raise LongwriteError(f"--server is for the openai engine, not {backend}")
        from longwrite.display.loading import load_local_engine

        engine = load_local_engine(options, backend)
        if hasattr(engine, "stream_prompts"):
            engine = RowBatcher(engine, expected=concurrency, owns_engine=True)
        return EnginePool([(engine.info.name, engine)], per_slot=concurrency)
    from longwrite.engines.openai import from_env
    from longwrite.redact import public_url

    urls = servers or [u for u in [configured_server(None)] if u]
    engines, errors = [], []
    for url in urls:
        try:
            mode = {"stream_interval": STREAM_INTERVAL} if stream else {"whole": True}
            engines.append((f"server {public_url(url)}", from_env(url, options.model, **mode)))
        except LongwriteError as e:  # unreachable, or its model list is not one: skip it
            if len(urls) == 1:
                raise
            errors.append(e)
            say(f"longwrite: warning: skipping {public_url(url)}: {e}")
    if not engines:
        raise LongwriteError(f"no server could be reached ({len(urls)} tried): {errors[0]}")
    return EnginePool(engines, servers=True, per_slot=concurrency)
