"""Several servers as one engine, for the streams one document sends at once (`--parallel`).

Why: `--parallel N` writes sections at the same time, and `--server` given more than once
lets several servers share them. Each stream goes to the live server with the fewest streams
in flight; a server that fails a stream before it sent a word is taken out for `BACKOFF_S`
and the stream is sent to another one, so one dead or broken server costs nothing but time.
A stream that fails after text has come raises as usual: its text is kept by the caller,
which carries the section on from it (over a server that works).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

from longwrite.engines.base import Chunk, Engine, EngineError, Sampling
from longwrite.engines.server_errors import ServerError

BACKOFF_S = 30.0


class FanoutEngine:
    """`engines` (one per server) behind the Engine protocol."""

    def __init__(self, engines: list[Engine], *, backoff: float = BACKOFF_S) -> None:
        if not engines:
            raise ValueError("no engines")
        self.engines = engines
        self.info = engines[0].info
        self._in_flight = [0] * len(engines)
        self._down_until = [0.0] * len(engines)
        self._backoff = backoff
        self._lock = threading.Lock()

    def count_tokens(self, text: str) -> int | None:
        return self.engines[0].count_tokens(text)

    def close(self) -> None:
        for engine in self.engines:
            engine.close()

    def _pick(self, tried: set[int]) -> int | None:
        with self._lock:
            now = time.monotonic()
            free = [i for i in range(len(self.engines)) if i not in tried]
            if not free:
                return None
            up = [i for i in free if self._down_until[i] <= now] or free
            best = min(up, key=lambda i: (self._in_flight[i], i))
            self._in_flight[best] += 1
            return best

    def stream(self, prompt: str, sampling: Sampling) -> Iterator[Chunk]:
        tried: set[int] = set()
        while True:
            i = self._pick(tried)
            assert i is not None  # the last failure re-raises before all are tried
            sent = False
            inner = self.engines[i].stream(prompt, sampling)
            try:
                for chunk in inner:
                    sent = sent or bool(chunk.text or chunk.tokens)
                    yield chunk
                return
            except (EngineError, ServerError):  # the server's failure, or no connection
                tried.add(i)
                with self._lock:
                    self._down_until[i] = time.monotonic() + self._backoff
                if sent or len(tried) == len(self.engines):
                    raise
            finally:
                with self._lock:
                    self._in_flight[i] -= 1
                close = getattr(inner, "close", None)
                if close is not None:
                    close()
