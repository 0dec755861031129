"""Sections written at once (`--parallel N`): the plan's parts as concurrent streams.

Why: a 32B model decodes 20-25 tokens a second per stream, and a server decodes eight
streams at nearly that speed each, so a 50,000-word document written one section after
another leaves most of the server idle for most of an hour. After the plan, up to N sections
are written at the same time over the same engine (a server's concurrency, or several
servers behind `engines.fanout`).

What a section sees. It cannot read the text just before it (not written yet), so its prompt
is the shared prefix (template, request, the whole plan and the outline with every part's
title and share: byte-identical for every section, so a prefix cache computes it once), then
the title and the earlier parts' headings with their text elided, then its own heading: it
knows what its neighbours cover, not how they put it.

The document. Shown in order: the first section live; each later one once every section
before it is shown and it is itself complete, after two checks against the document before
it: a section that restates it (the repetition measure, more than `RESTATE` of it) is
sampled once more with the loop guard reading the document, and the better one kept; a
section whose opening paragraphs restate the end of the one before is trimmed there (the
seam). The status line says "sections 3/10 done, 5 writing". The run log gets each section's
raw text as it streams (`Recorder.add_section`, several at once, so kill -9 loses about half a
second of each) and the document in order as it is shown; `continue` keeps the sections
shown, the sections finished out of order, and carries each unfinished one on from where it
stopped.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from longwrite.engines.base import FINISH_CANCELLED, FINISH_STOP, Chunk, Engine, Sampling
from longwrite.generate.guards import Guards
from longwrite.generate.loops import shingles
from longwrite.generate.parser import AnswerDelta, Done, Event
from longwrite.generate.plan import Outline
from longwrite.generate.rounds import Continuation, CutHook, EventSink, RawHook, Result, Resume
from longwrite.generate.section_choice import Before
from longwrite.generate.section_stream import SectionEngine
from longwrite.generate.sections import (
    ELIDED,
    MAX_HEADINGS,
    SECTION_LEVEL,
    OneStream,
    Sectioned,
    SectionResult,
    answer_of,
    begin,
    section_request,
    shared_prefix,
    title_line,
    whole_result,
    write_heading,
)
from longwrite.io.counting import count_words
from longwrite.length.budget import tokens_per_word
from longwrite.prompt.request import Request
from longwrite.scoring.rewards import PARAGRAPH_BREAK_RE, RAMP_HIGH, TOKEN_RE

RESTATE = 0.2  # a section restating more than this share of itself is sampled once more
SEAM_PARAGRAPHS = 2  # opening paragraphs checked against the end of the section before
ATTEMPTS = 2  # a section whose server fails mid-stream is carried on this many times
TICK_S = 0.25  # how often the status line is refreshed while waiting


def parallel_prompt(prefix: str, title: str, headings: list[str], k: int) -> str:
    """Section `k`'s prompt: the shared prefix, the title, the earlier headings (their text
    elided, at most `MAX_HEADINGS`), then its own heading."""
    earlier = headings[max(0, k - MAX_HEADINGS) : k]
    elided = "".join(f"{SECTION_LEVEL}{h}\n\n{ELIDED}\n\n" for h in earlier)
    return f"{prefix}{title}{elided}{SECTION_LEVEL}{headings[k]}\n\n"


def trim_seam(before: str, text: str) -> tuple[str, int]:
    """`text` without opening paragraphs that restate the end of `before` (containment of
    their shingles in its last paragraphs at the loop guard's "wholly repeated"); the
    characters trimmed."""
    tail = [p for p in PARAGRAPH_BREAK_RE.split(before.strip()) if p.strip()][-SEAM_PARAGRAPHS:]
    seen: set[tuple[str, ...]] = set()
    for paragraph in tail:
        seen |= shingles(TOKEN_RE.findall(paragraph.lower()))
    trimmed = 0
    for _ in range(SEAM_PARAGRAPHS):
        parts = PARAGRAPH_BREAK_RE.split(text, maxsplit=1)
        grams = shingles(TOKEN_RE.findall(parts[0].lower()))
        if len(parts) < 2 or not grams or len(grams & seen) / len(grams) < RAMP_HIGH:
            break
        rest = text[len(parts[0]) :].lstrip("\n")
        trimmed += len(text) - len(rest)
        text = rest
    return text, trimmed


class _Stoppable:
    """An engine whose streams end as Ctrl-C ends them once `stop` is set (a worker thread
    cannot receive the interrupt itself)."""

    def __init__(self, engine: Any, stop: threading.Event) -> None:
        self.engine, self.stop = engine, stop
        self.info = engine.info

    def count_tokens(self, text: str) -> int | None:
        return self.engine.count_tokens(text)

    def stream(self, prompt: str, sampling: Sampling) -> Iterator[Chunk]:
        inner = self.engine.stream(prompt, sampling)
        try:
            for chunk in inner:
                if self.stop.is_set():
                    raise KeyboardInterrupt
                yield chunk
        finally:
            close = getattr(inner, "close", None)
            if close is not None:
                close()


class _Collect:
    """A worker's sink: answer text and tokens handed to the main thread through `events`."""

    def __init__(self, k: int, events: queue.Queue, tokens: list[int], lock: threading.Lock):
        self.k, self.events, self.tokens, self.lock = k, events, tokens, lock

    def handle(self, event: Event) -> None:
        if isinstance(event, AnswerDelta) and event.text:
            self.events.put((self.k, "text", event.text))

    def add_tokens(self, n: int) -> None:
        with self.lock:
            self.tokens[0] += n


@dataclass
class Logged:
    """A parallel run's sections as the run log holds them (for `continue`): the sections
    shown (the document, in order), and each other section's raw text and how it ended."""

    shown: list[tuple[str, str]]
    sections: dict[int, tuple[str, int, str | None]]


def write_parallel(
    engine: Engine,
    request: Request,
    outline: Outline,
    sink: EventSink,
    *,
    parallel: int,
    max_rounds: int = 2,
    guards: Guards | None = None,
    on_raw: RawHook | None = None,
    on_cut: CutHook | None = None,
    on_section_raw: Callable[[int, str, int], None] | None = None,
    on_section_done: Callable[[int, str], None] | None = None,
    on_progress: Callable[[str], None] | None = None,
    plan_tokens: int = 0,
    logged: Logged | None = None,
    replay: bool = False,
    max_tokens: int | None = None,
    prompts: Sequence[str] | None = None,
) -> Sectioned:
    """Write `outline`'s parts `parallel` at a time into `sink` as one document, in order.
    `prompts`: each section's request in the template, in place of `request.prompt` (as for
    `write_sections`)."""
    from longwrite.generate.guards import NO_GUARDS

    guards = guards or NO_GUARDS
    started = time.monotonic()
    prefix, title = shared_prefix(request, outline), title_line(outline)
    prefixes = [shared_prefix(replace(request, prompt=p), outline) for p in prompts or []]
    headings = [p.heading for p in outline.parts]
    tpw, _ = tokens_per_word(request.language, engine.count_tokens)
    stream = OneStream(sink)
    shown = list(logged.shown) if logged else []
    resumed = None
    if logged is not None:
        resumed = title + "".join(f"{SECTION_LEVEL}{h}\n\n{t.strip()}\n\n" for h, t in shown)
    begin(stream, request, outline, title, on_raw, plan_tokens, resumed, replay)
    events: queue.Queue = queue.Queue()
    tokens, lock, stop = [0], threading.Lock(), threading.Event()
    stoppable = _Stoppable(engine, stop)
    n = len(outline.parts)
    done: dict[int, Result] = {}
    resumes: dict[int, str] = {}
    for k, (raw, _, finish) in (logged.sections if logged else {}).items():
        if k < len(shown):
            continue
        if finish is not None and finish != FINISH_CANCELLED:
            done[k] = _finished(request, raw, finish)
        elif raw:
            resumes[k] = raw

    def work(k: int) -> None:
        part = outline.parts[k]
        prompt = parallel_prompt(prefixes[k] if prefixes else prefix, title, headings, k)
        later = headings[k + 1 :]
        stop_at = f"\n{SECTION_LEVEL}{later[0]}" if later else None
        sec = section_request(request, prompt, part.words, part.words, stop_at,
                               engine.info.context, engine.count_tokens, max_tokens)  # fmt: skip
        kept = SectionEngine(stoppable, prompt, part.heading, later, part.words)
        rule = Continuation(sec.target_range[0], max_rounds, tpw) if max_rounds else None
        raw = resumes.get(k, "")

        def log(text: str, n_tokens: int) -> None:
            nonlocal raw
            raw += text
            if on_section_raw is not None:
                on_section_raw(k, text, n_tokens)

        try:
            for attempt in range(ATTEMPTS):
                resume = Resume(raw, FINISH_CANCELLED) if raw else None
                try:
                    result = write_one(kept, sec, _Collect(k, events, tokens, lock), rule,
                                       log, guards, resume, on_cut)  # fmt: skip
                    break
                except Exception:  # noqa: BLE001 - a server's failure: carried on once
                    if attempt + 1 == ATTEMPTS or stop.is_set():
                        raise
            if on_section_done is not None:
                on_section_done(k, result.finish_reason)
            events.put((k, "done", result))
        except BaseException as exc:  # handed to the main thread, which raises it
            events.put((k, "error", exc))

    todo = [k for k in range(len(shown), n) if k not in done]
    figures: list[SectionResult] = []
    results: list[Result] = []
    finish = FINISH_STOP
    pool = ThreadPoolExecutor(max_workers=max(1, parallel), thread_name_prefix="section")
    try:
        for k in todo:
            pool.submit(work, k)
        live: list[str] = []
        finished: set[int] = set(done)
        measure = Before()
        for k in range(len(shown), n):
            before = stream.text
            if k not in done:
                while k not in done:
                    writing = min(parallel, len(todo) - len(finished & set(todo)))
                    _tell(on_progress, len(shown) + len(figures), n, writing)
                    _pass_tokens(sink, tokens, lock)
                    try:
                        j, kind, value = events.get(timeout=TICK_S)
                    except queue.Empty:
                        continue
                    if kind == "error":
                        raise value
                    if kind == "done":
                        done[j] = value
                        finished.add(j)
                    elif (
                        kind == "text" and j == k == len(shown) and k not in resumes and not figures
                    ):
                        if not live:  # the first section streams live
                            write_heading(stream, outline.parts[k], None)
                        live.append(value)
                        stream.add(value)
            result = done.pop(k)
            text, seam, again = result.answer, 0, False
            measure = measure.at(before)
            share = measure.share(text)
            if not live:
                if k:
                    text, seam = trim_seam(before, text)
                    share = measure.share(text) if seam else share
                    if share > RESTATE and result.finish_reason != FINISH_CANCELLED:
                        own = prefixes[k] if prefixes else prefix
                        text, share = _again(k, text, share, measure, work_args=(
                            engine, request, outline, own, title, headings, guards,
                            max_rounds, tpw, max_tokens))  # fmt: skip
                        again = True
                write_heading(stream, outline.parts[k], None)
                stream.add(text)
            if on_raw is not None:
                on_raw(f"{_gap(before)}{SECTION_LEVEL}{headings[k]}\n\n{text}", result.tokens)
            live = []
            results.append(result)
            figures.append(
                SectionResult(
                    headings[k], outline.parts[k].words, count_words(text), result.tokens,
                    len(result.rounds), result.finish_reason, len(prefix),
                    share, None, result.guard, None, outline.parts[k].words,
                    seam, again,
                )
            )  # fmt: skip
            finish = result.finish_reason
            if finish == FINISH_CANCELLED:
                break
    except KeyboardInterrupt:
        finish = FINISH_CANCELLED
    finally:
        stop.set()
        pool.shutdown(wait=True)
    _pass_tokens(sink, tokens, lock)
    sink.handle(Done(finish))
    document = stream.text
    return Sectioned(whole_result(request, outline, document, plan_tokens, results, finish,
                                  started), outline, figures)  # fmt: skip


def write_one(
    engine: Any, request: Request, sink: Any, rule: Any, log: Any, guards: Guards,
    resume: Resume | None, on_cut: CutHook | None, earlier: str = "",
) -> Result:  # fmt: skip
    from longwrite.generate.rounds import write_document

    return write_document(
        engine, request, sink, continuation=rule, on_raw=log, guards=guards, resume=resume,
        earlier=earlier, on_cut=on_cut,
    )  # fmt: skip


def _again(k: int, text: str, share: float, measure: Before, work_args: tuple) -> tuple[str, float]:
    """Section `k` sampled once more, its loop guard reading the document before it; the
    version that restates less is kept, with its share."""
    before = measure.text
    engine, request, outline, prefix, title, headings, guards, max_rounds, tpw, cap = work_args
    part = outline.parts[k]
    prompt = parallel_prompt(prefix, title, headings, k)
    sec = section_request(request, prompt, part.words, part.words, None, engine.info.context,
                           engine.count_tokens, cap)  # fmt: skip
    seed = None if sec.sampling.seed is None else sec.sampling.seed + 1000 + k
    sec = replace(sec, sampling=replace(sec.sampling, seed=seed, repetition_penalty=1.1))
    kept = SectionEngine(engine, prompt, part.heading, headings[k + 1 :], part.words)
    rule = Continuation(sec.target_range[0], max_rounds, tpw) if max_rounds else None
    quiet = _Collect(k, queue.Queue(), [0], threading.Lock())
    result = write_one(kept, sec, quiet, rule, None, guards, None, None, earlier=before)
    fresh = trim_seam(before, result.answer)[0]
    again = measure.share(fresh)
    return (fresh, again) if again < share else (text, share)


def _finished(request: Request, raw: str, finish: str) -> Result:
    answer = answer_of(raw)
    return Result(request.user_prompt, "", answer, count_words(answer), 0, finish, 0.0)


def _gap(text: str) -> str:
    """The line breaks that put a heading after `text` on a paragraph of its own."""
    return "\n\n"[: max(2 - (len(text) - len(text.rstrip("\n"))), 0)] if text else ""


def _pass_tokens(sink: Any, tokens: list[int], lock: threading.Lock) -> None:
    with lock:
        n, tokens[0] = tokens[0], 0
    if n:
        sink.add_tokens(n)


def _tell(on_progress: Any, shown: int, n: int, writing: int) -> None:
    if on_progress is not None:
        on_progress(f"sections {shown}/{n} done, {writing} writing")
