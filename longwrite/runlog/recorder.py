"""What a run appends to the log through: raw text in small batches, and how the run ended.

The generation loop hands every piece of raw completion text to `Recorder.add` (the
`on_raw` hook of `generate.rounds`). A piece is not written at once: a 10,000-word document
arrives in tens of thousands of deltas, and one INSERT each would cost more than the
rendering. Pieces are joined and written when `FLUSH_CHARS` have gathered or the oldest has
waited `FLUSH_SECONDS`, whichever comes first; a small thread flushes text that would
otherwise wait for a stalled stream. So `kill -9` loses at most the last half second or so.

Logging must never cost a user the run: any failure (an unwritable home, a full disk, a
locked or broken file) is one warning line on stderr, and the recorder goes quiet while the
document keeps streaming.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

from longwrite.errors import one_line, say
from longwrite.runlog.store import Store, db_path

FLUSH_SECONDS = 0.5
FLUSH_CHARS = 256


class Recorder:
    """Appends one run's raw text in batches; `finish` records how it ended.

    A recorder without a store (logging off, or the log could not be opened) does nothing.
    """

    def __init__(
        self,
        store: Store | None,
        run_id: str | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        interval: float = FLUSH_SECONDS,
        chars: int = FLUSH_CHARS,
        ticker: bool = True,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self._clock = clock
        self._interval = interval
        self._chars = chars
        self._parts: list[str] = []
        self._pending = 0  # characters waiting, the candidates' included
        self._tokens = 0  # tokens not yet written
        self._candidates: dict[int, tuple[list[str], int]] = {}  # best-of: index -> waiting
        self._sections: dict[int, tuple[list[str], int]] = {}  # --parallel: k -> waiting
        self._since: float | None = None  # when the oldest pending piece came
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if store is not None and ticker:
            self._thread = threading.Thread(target=self._tick, name="runlog", daemon=True)
            self._thread.start()

    @property
    def active(self) -> bool:
        return self.store is not None

    def add(self, text: str, tokens: int = 0) -> None:
        """Take a piece of raw text (and the tokens it took); written in a batch soon."""
        if self.store is None:
            return
        with self._lock:
            self._parts.append(text)
            self._pending += len(text)
            self._tokens += tokens
            self._due()

    def _due(self) -> None:
        """Flush when enough has gathered or the oldest piece has waited long enough."""
        now = self._clock()
        if self._since is None:
            self._since = now
        if self._pending >= self._chars or now - self._since >= self._interval:
            self._flush()

    def add_candidate(self, index: int, text: str, tokens: int = 0) -> None:
        """Take a piece of best-of candidate `index` while it is sampled (same batching)."""
        if self.store is None:
            return
        with self._lock:
            parts, waiting = self._candidates.get(index, ([], 0))
            parts.append(text)
            self._candidates[index] = (parts, waiting + tokens)
            self._pending += len(text)
            self._due()

    def add_section(self, k: int, text: str, tokens: int = 0) -> None:
        """Take a piece of section `k` written in parallel (same batching)."""
        if self.store is None:
            return
        with self._lock:
            parts, waiting = self._sections.get(k, ([], 0))
            parts.append(text)
            self._sections[k] = (parts, waiting + tokens)
            self._pending += len(text)
            self._due()

    def section_done(self, k: int, finish: str) -> None:
        """Section `k` ended (`finish`): what waits of it is written, then its end."""
        if self.store is None or self.run_id is None:
            return
        with self._lock:
            self._flush()
            if self.store is not None:
                self._guard(self.store.append_section, self.run_id, k, "", 0, finish)

    def add_cut(self, at_char: int, text: str) -> None:
        """Keep text the loop guard cut from the answer at `at_char` (written at once)."""
        if self.store is None or self.run_id is None:
            return
        with self._lock:
            if self.store is not None:
                self._guard(self.store.append_cut, self.run_id, at_char, text)

    def note(self, options: dict[str, Any]) -> None:
        """Add to the run's options what it learned as it went (after the text so far)."""
        if self.store is None or self.run_id is None:
            return
        with self._lock:
            self._flush()
            if self.store is not None:
                self._guard(self.store.update_options, self.run_id, options)

    def flush(self) -> None:
        with self._lock:
            self._flush()

    def finish(
        self,
        status: str,
        *,
        finish_reason: str | None = None,
        words: int | None = None,
        seconds: float = 0.0,
        error: str | None = None,
    ) -> None:
        """Write what is pending and how the run ended, then close the log."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            self._flush()
            if self.store is not None and self.run_id is not None:
                self._guard(
                    self.store.finish,
                    self.run_id,
                    status,
                    finish_reason=finish_reason,
                    words=words,
                    seconds=seconds,
                    error=error,
                )
            if self.store is not None:
                self.store.close()
                self.store = None

    def _flush(self) -> None:
        if self.store is None or self.run_id is None:
            return
        sections, self._sections = self._sections, {}
        for k, (parts, tokens) in sorted(sections.items()):
            if self.store is not None:
                self._guard(self.store.append_section, self.run_id, k, "".join(parts), tokens)
        candidates, self._candidates = self._candidates, {}
        for index, (parts, tokens) in sorted(candidates.items()):
            if self.store is not None:
                self._guard(self.store.append_candidate, self.run_id, index, "".join(parts), tokens)
        if self._parts or self._tokens:
            text, tokens = "".join(self._parts), self._tokens
            self._parts, self._tokens = [], 0
            if self.store is not None:
                self._guard(self.store.append, self.run_id, text, tokens)
        self._pending, self._since = 0, None

    def _guard(self, action: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Run one write; on failure say so once and stop logging (the run goes on)."""
        try:
            action(*args, **kwargs)
        except (sqlite3.Error, OSError) as e:
            path = self.store.path if self.store is not None else db_path()
            say(
                f"longwrite: warning: the run log stopped ({path}: {one_line(e)}); "
                "the document still streams"
            )
            store, self.store = self.store, None
            if store is not None:
                store.close()

    def _tick(self) -> None:
        while not self._stop.wait(self._interval / 2):
            with self._lock:
                if self._since is not None and self._clock() - self._since >= self._interval:
                    self._flush()


def start_run(
    *,
    kind: str,
    user_prompt: str,
    prompt: str,
    options: dict[str, Any],
    target: int | None = None,
    output: str | None = None,
) -> Recorder:
    """A recorder for a new run, or a quiet one (said in one line) when the log is unusable."""
    try:
        store = Store.open()
    except (sqlite3.Error, OSError) as e:
        return _off(e)
    try:
        run_id = store.new_run(
            kind=kind,
            user_prompt=user_prompt,
            prompt=prompt,
            options=options,
            target=target,
            output=output,
        )
    except sqlite3.Error as e:
        store.close()
        return _off(e)
    return Recorder(store, run_id)


def resume_run(store: Store, run_id: str, options: dict[str, Any], target: int | None) -> Recorder:
    """A recorder appending to an existing run (`continue`), which is running again."""
    try:
        store.claim(run_id, options, target)
    except sqlite3.Error as e:
        return _off(e)
    return Recorder(store, run_id)


def _off(error: BaseException) -> Recorder:
    say(
        f"longwrite: warning: not logging this run ({db_path()}: {one_line(error)}); "
        "the document still streams"
    )
    return Recorder(None, None)


class VersionRecorder(Recorder):
    """A `revise` run's new version of a section, appended as it streams (same batching)."""

    def __init__(self, store: Store | None, run_id: str | None, version: int) -> None:
        super().__init__(store, run_id)
        self.version = version

    def _flush(self) -> None:
        if self.store is None or self.run_id is None:
            return
        if self._parts:
            text, self._parts, self._tokens = "".join(self._parts), [], 0
            self._guard(self.store.append_version, self.version, text)
        self._pending, self._since = 0, None

    def end(self, status: str) -> None:
        """Write what waits, then how the version ended; the log is left open."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            self._flush()
            if self.store is not None:
                self._guard(self.store.finish_version, self.version, status)
