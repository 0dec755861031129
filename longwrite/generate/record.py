"""A write run's entry in the run log: what is kept of its settings, and how it ended.

The log keeps the resolved settings (engine, model, server URL, sampling, target and range,
budget), enough for `longwrite continue` to rebuild the same request: the exact prompt that
was sent, the same sampling, the same engine. An API key is never among them (it only ever
comes from the environment), and a URL's user:password part is dropped. A run written from
sources (`--source`) also keeps, once it is done, the passages it was given and cited.

`recording` wraps one run: it opens the entry (or a quiet recorder when logging is off or
the log is unusable), and whatever ends the run (a result, Ctrl-C, a server that failed)
closes it with the matching status, so a run is never left "running" by its own process.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from longwrite.engines import configured_server
from longwrite.engines.base import FINISH_CANCELLED, FINISH_LENGTH, Engine, Sampling
from longwrite.errors import one_line
from longwrite.generate.job import WriteOptions
from longwrite.generate.parser import split_think_answer
from longwrite.generate.rounds import Result
from longwrite.io.counting import count_words
from longwrite.prompt.request import Request
from longwrite.redact import public_url
from longwrite.runlog.recorder import Recorder, start_run
from longwrite.runlog.store import CUT_OFF, DONE, FAILED, INTERRUPTED


def answer_words(raw: str) -> int:
    """Words of the answer in a raw completion (how the log counts a run it did not finish)."""
    return count_words(split_think_answer(raw)[1])


def status_of(finish_reason: str) -> str:
    if finish_reason == FINISH_CANCELLED:
        return INTERRUPTED
    if finish_reason == FINISH_LENGTH:
        return CUT_OFF
    return DONE


def run_options(opts: WriteOptions, request: Request, engine: Engine, backend: str) -> dict:
    """The resolved settings of a run, as the log keeps them."""
    s, e = request.sampling, opts.engine
    local = {} if backend == "openai" else {
        "device": e.device, "dtype": e.dtype, "tp": e.tp, "max_model_len": e.max_model_len,
        "gpu_memory_utilization": e.gpu_memory_utilization,
    }  # fmt: skip
    return {
        "engine": backend,
        "model": engine.info.model or e.model,
        "server": public_url(configured_server(e.server) or engine.info.details.get("server"))
        if backend == "openai"
        else None,
        **local,
        "language": request.language,
        "think": request.think,
        "target_words": request.target_words,
        "target_range": list(request.target_range) if request.target_range else None,
        "max_tokens": s.max_tokens,
        "temperature": s.temperature,
        "top_p": s.top_p,
        "seed": s.seed,
        "stop": list(s.stop),
        "max_rounds": opts.max_rounds,
        "best_of": opts.best_of,
        "guard": opts.guard,
        "guard_retries": opts.guard_retries,
        "think_budget": opts.think_budget,
        "parallel": opts.parallel,
        "thinking": opts.thinking,
        "output": str(opts.output) if opts.output is not None else None,
    }


def request_from(user_prompt: str, prompt: str, options: dict[str, Any]) -> Request:
    """The request a logged run sent (the exact prompt, the same sampling and target)."""
    rng = options.get("target_range")
    return Request(
        user_prompt=user_prompt,
        prompt=prompt,
        language=options.get("language", "en"),
        think=options.get("think", True),
        target_words=options.get("target_words"),
        sampling=Sampling(
            max_tokens=options["max_tokens"],
            temperature=options["temperature"],
            top_p=options["top_p"],
            seed=options.get("seed"),
            stop=tuple(options["stop"]),
        ),
        target_range=(rng[0], rng[1]) if rng else None,
    )


@dataclass
class Recording:
    """One run's log entry while it runs; `done(result)` closes it with the result."""

    recorder: Recorder
    started: float
    closed: bool = False

    @property
    def run_id(self) -> str | None:
        return self.recorder.run_id  # None when the run was never logged

    def done(self, result: Result) -> None:
        self.closed = True
        if result.sources is not None:  # --source: the passages given and cited
            self.recorder.note({"sources": result.sources})
        self.recorder.finish(
            status_of(result.finish_reason),
            finish_reason=result.finish_reason,
            words=result.words,
            seconds=time.monotonic() - self.started,
        )

    def ended(self, status: str, error: BaseException) -> None:
        """Closed by an exception: the words so far are counted from what was logged."""
        if self.closed:
            return
        self.closed = True
        self.recorder.flush()
        store, words = self.recorder.store, None
        if store is not None and self.recorder.run_id is not None:
            try:
                words = answer_words(store.raw(self.recorder.run_id))
            except Exception:  # noqa: BLE001 - counting is a nicety; the status is what matters
                words = None
        self.recorder.finish(
            status,
            finish_reason=FINISH_CANCELLED if status == INTERRUPTED else "error",
            words=words,
            seconds=time.monotonic() - self.started,
            error=one_line(error) if status == FAILED else None,
        )


@contextmanager
def recording(
    recorder: Recorder, interrupts: tuple[type[BaseException], ...] = ()
) -> Iterator[Recording]:
    """Close `recorder` with the right status however the block ends (`interrupts`: more
    exceptions that mean the caller stopped the run, as Ctrl-C does)."""
    entry = Recording(recorder, time.monotonic())
    try:
        yield entry
    except (KeyboardInterrupt, *interrupts) as e:
        entry.ended(INTERRUPTED, e)
        raise
    except BaseException as e:
        entry.ended(FAILED, e)
        raise
    if not entry.closed:
        recorder.finish(DONE, seconds=time.monotonic() - entry.started)


def start_recording(opts: WriteOptions, request: Request, engine: Engine, backend: str) -> Recorder:
    """A recorder for a new write run (a quiet one when `opts.log` is off)."""
    if not opts.log:
        return Recorder(None, None)
    return start_run(
        kind="write",
        user_prompt=request.user_prompt,
        prompt=request.prompt,
        options=run_options(opts, request, engine, backend),
        target=request.target_words,
        output=str(opts.output) if opts.output is not None else None,
    )
