"""Documents longer than one pass: plan once, then write section by section.

LongWriter-Zero plans in its thinking, so one request in its own template (ended where the
thinking ends) gives the plan; `generate.planning` settles the outline and the title from it
(or asks for them). Each section is then a raw continuation in the same template:

    template(request) <think>PLAN + OUTLINE</think> <answer>\n  <- shared, byte-identical
    # Title\n\n## Earlier heading\n\n[…]\n\n ...          <- headings of earlier sections
    [...] last TAIL_CHARS of the document                   <- bounded recent text
    ## This section's heading\n\n                         <- where the model writes

(`--no-think`: the direct template, which opens the answer itself, and no plan.) What every
section shares comes first and never changes, so a server's prefix cache computes it once; the
rest is bounded (at most `MAX_HEADINGS` headings and `TAIL_CHARS` characters), so a prompt's
size does not grow with the document and the cost is linear in its length.

Each section's requests go through `section_stream.SectionEngine`: the model's restatement of
the heading is dropped, a heading it writes for a later section ends the section, the section
ends at the first paragraph end past its words, and a pass cut off by its budget is trimmed
to its last complete paragraph. Its words are its share of the target, corrected by what the
sections before it wrote (within half to one and a half times the share; the last section
gets what is left), so the document lands near the target instead of every section's overshoot
adding up. Its length control is the one-pass machinery (`rounds.write_document`: budget,
continuation when short), and its loop guard has read the sections before it, so a section
that restates them is cut and sampled again as a loop would be. The sink sees one document:
the plan's thinking once, the title, headings and sections in order, one `Done`. The raw hook
sees the same document as a one-pass transcript (`<think>plan</think> <answer>` then the
sections), so the run log keeps the plan and every section as they complete.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from longwrite.engines.base import FINISH_CANCELLED, FINISH_STOP, Engine
from longwrite.generate.guards import NO_GUARDS, Guards
from longwrite.generate.parser import AnswerDelta, Done, Event, ThinkAnswerParser
from longwrite.generate.plan import Outline, Part
from longwrite.generate.rounds import (
    Continuation,
    CutHook,
    EventSink,
    RawHook,
    Result,
    Resume,
    write_document,
)
from longwrite.generate.section_choice import Before, choose_section
from longwrite.generate.section_stream import SectionEngine
from longwrite.io.counting import count_words
from longwrite.length.budget import plan_budget, tokens_per_word
from longwrite.prompt.request import Request

TAIL_CHARS = 6000  # about 1.5k tokens of the most recent text
MAX_HEADINGS = 40  # earlier headings shown; older ones are left out
ELIDED = "[…]"
SECTION_LEVEL = "## "
PLAN_END = "</think> <answer>\n"  # where the logged transcript's plan ends


@dataclass(frozen=True)
class Written:
    """A sectioned run carried on: the sections finished, and the raw text of the one that
    was being written (its heading already shown) when it stopped; None: start the next."""

    done: tuple[tuple[str, str], ...]
    partial: str | None
    document: str  # the document so far, as it was shown
    titled: bool = True  # the title line is written (or there is none)


@dataclass(frozen=True)
class SectionResult:
    """One section's figures for `--json`."""

    heading: str
    target: int
    words: int
    tokens: int
    rounds: int
    finish_reason: str
    prompt_chars: int
    repetition: float  # the share of the section that repeats the document before it
    choice: dict[str, Any] | None = None  # with best-of: the candidates and the one chosen
    guard: list[dict[str, Any]] = field(default_factory=list)  # e.g. a restatement cut
    ended: str | None = None  # "heading" (the next part's heading came) or "length" (its words)
    aim: int = 0  # the words it was written to: `target` corrected by the sections before it
    seam: int = 0  # --parallel: characters trimmed that restated the end of the section before
    resampled: bool = False  # --parallel: sampled again for restating the document before it


@dataclass(frozen=True)
class Sectioned:
    """A sectioned document: the whole as one `Result`, with its outline and sections."""

    result: Result
    outline: Outline
    sections: list[SectionResult] = field(default_factory=list)

    def extra(self) -> dict[str, Any]:
        """The `--json` fields beside the result's: the plan and per-section figures."""
        return {"plan": self.outline.to_json(), "sections": [vars(s) for s in self.sections]}


def section_cap(max_words: int) -> int:
    """The most words one section is planned to hold: half of what one pass holds once the
    recent text is in the prompt (long passes lose quality; the rest is headroom)."""
    return max((max_words - TAIL_CHARS // 4) // 2, 300)


def sections_needed(target: int, max_words: int) -> int:
    return max(math.ceil(target / section_cap(max_words)), 2)


# -- the sections ---------------------------------------------------------------------------


def plan_text(outline: Outline) -> str:
    """The thinking every section sees: the plan, then the outline as it will be written
    (its word counts scaled to the target; the plan's own may differ, or it may have none)."""
    if outline.source == "file":  # the user's plan is the outline, notes and all
        return f"{outline.thinking}\n"
    plan = f"{outline.thinking}\n\n" if outline.thinking else ""
    return f"{plan}Outline:\n{outline.markdown()}"


def shared_prefix(request: Request, outline: Outline) -> str:
    """What every section's prompt starts with, byte for byte. `--no-think`: the direct
    template, which has opened the answer already (no plan to show)."""
    if not request.think:
        return f"{request.prompt}\n"
    return f"{request.prompt} <think>{plan_text(outline)}{PLAN_END}"


def opening(request: Request, outline: Outline) -> str:
    """What the logged transcript starts with, before the document."""
    return f"<think>{plan_text(outline)}{PLAN_END}" if request.think else ""


def title_line(outline: Outline) -> str:
    return f"# {outline.title}\n\n" if outline.title else ""


def recent(done: list[tuple[str, str]], tail_chars: int = TAIL_CHARS) -> str:
    """The bounded view of the document so far: earlier headings, then the latest text."""
    out: list[str] = []
    room = tail_chars
    for heading, text in reversed(done):
        body = text.strip()
        if room <= 0:
            out.append(f"{SECTION_LEVEL}{heading}\n\n{ELIDED}\n\n")
        elif len(body) <= room:
            out.append(f"{SECTION_LEVEL}{heading}\n\n{body}\n\n")
        else:
            cut = body[-room:]
            para = cut.find("\n\n")
            cut = cut[para + 2 :] if 0 <= para < len(cut) // 2 else cut
            out.append(f"{SECTION_LEVEL}{heading}\n\n{ELIDED}\n\n{cut}\n\n")
        room -= len(body)
        if len(out) >= MAX_HEADINGS:
            break
    return "".join(reversed(out))


def section_prompt(prefix: str, done: list[tuple[str, str]], heading: str, title: str = "") -> str:
    return f"{prefix}{title}{recent(done)}{SECTION_LEVEL}{heading}\n\n"


class OneStream:
    """The sections' events as one document: no `Done` between sections, no thinking; the
    answer text as shown is kept (the document exactly as the user sees it)."""

    def __init__(self, sink: EventSink) -> None:
        self.sink = sink
        self.shown: list[str] = []

    def handle(self, event: Event) -> None:
        if isinstance(event, AnswerDelta):
            self.shown.append(event.text)
            self.sink.handle(event)

    def add_tokens(self, n: int) -> None:
        self.sink.add_tokens(n)

    def message(self, text: str) -> None:
        """A line for the reader (a guard's), where the display takes one."""
        message = getattr(self.sink, "message", None)
        if callable(message):
            message(text)

    def add(self, text: str) -> None:
        self.handle(AnswerDelta(text))

    @property
    def text(self) -> str:
        return "".join(self.shown)


def section_request(
    request: Request, prompt: str, words: int, floor: int, stop: str | None,
    context: int | None, count_tokens: Callable[[str], int | None], cap: int | None = None,
) -> Request:  # fmt: skip
    """A section's request: `words` is its target, `floor` the words below which it is carried
    on; the budget leaves room past the target, since the section stream ends the section at
    the first paragraph end once it has its words."""
    lo, hi = min(round(floor * 0.9), words), math.ceil(words * 1.1)
    budget = plan_budget(
        prompt, language=request.language, target_hi=math.ceil(words * 1.25), think=False,
        context=context, count_tokens=count_tokens,
    )  # fmt: skip
    stops = (*request.sampling.stop, stop) if stop else request.sampling.stop
    tokens = min(budget.max_tokens, cap) if cap else budget.max_tokens
    sampling = replace(request.sampling, max_tokens=tokens, min_tokens=0, stop=stops)
    return replace(
        request, prompt=prompt, think=False, target_words=words, target_range=(lo, hi),
        sampling=sampling,
    )  # fmt: skip


def section_words(part: Part, planned_before: int, written_before: int, left: int | None) -> int:
    """A section's target: its share, corrected by how far the sections before it strayed
    (within half to one and a half times the share); the last one gets what is `left`."""
    if left is not None:
        return max(left, part.words // 2, 1)
    wanted = part.words + planned_before - written_before
    return min(max(wanted, part.words // 2, 1), part.words * 3 // 2)


def write_heading(stream: OneStream, part: Part, on_raw: RawHook | None) -> None:
    """The section's heading, after a paragraph break (only the line breaks missing)."""
    shown = stream.text
    sep = "\n\n"[: max(2 - (len(shown) - len(shown.rstrip("\n"))), 0)] if shown else ""
    head = f"{sep}{SECTION_LEVEL}{part.heading}\n\n"
    stream.add(head)
    if on_raw is not None:
        on_raw(head, 0)


def _offset(on_cut: CutHook | None, at: int) -> CutHook | None:
    """A section's cut hook with offsets in the whole document, not the section."""
    if on_cut is None:
        return None
    return lambda offset, text: on_cut(at + offset, text)


def read_written(raw: str, outline: Outline) -> Written:
    """Where a logged sectioned run stopped: its finished sections and the partial one."""
    doc = raw.partition(PLAN_END)[2] if PLAN_END in raw else raw
    found: list[tuple[str, int, int]] = []  # (heading, where it starts, where its text does)
    at = 0
    for part in outline.parts:
        marker = f"{SECTION_LEVEL}{part.heading}\n\n"
        i = doc.find(marker, at)
        if i < 0 or (i > 0 and doc[i - 1] != "\n"):
            break
        found.append((part.heading, i, i + len(marker)))
        at = i + len(marker)
    done: list[tuple[str, str]] = []
    head = doc[: found[0][1]] if found else doc  # the title, before the first section
    shown: list[str] = [head.lstrip("\n")] if head.strip() else []
    for n, (heading, start, text_at) in enumerate(found):
        end = found[n + 1][1] if n + 1 < len(found) else len(doc)
        answer = answer_of(doc[text_at:end])
        marker = doc[start:text_at] if shown else doc[start:text_at].lstrip("\n")
        shown += [marker, answer]
        done.append((heading, answer))
    partial = None
    if found:  # the last one found may not be finished: carried on from its raw text
        done.pop()
        partial = doc[found[-1][2] :]
        shown[-1] = answer_of(partial)
    return Written(tuple(done), partial, "".join(shown), bool(head.strip()) or not outline.title)


def answer_of(raw: str) -> str:
    """The answer (document text) of a piece of raw transcript."""
    parser = ThinkAnswerParser()
    parser.feed(raw)
    parser.close(FINISH_STOP)
    return parser.answer


def write_sections(
    engine: Engine,
    request: Request,
    outline: Outline,
    sink: EventSink,
    *,
    max_rounds: int = 2,
    guards: Guards = NO_GUARDS,
    on_raw: RawHook | None = None,
    on_cut: CutHook | None = None,
    on_section: Callable[[int, int], None] | None = None,
    plan_tokens: int = 0,
    written: Written | None = None,
    replay: bool = False,
    best: int = 1,
    max_tokens: int | None = None,
    prompts: Sequence[str] | None = None,
) -> Sectioned:
    """Write `outline`'s parts in order into `sink` as one document; with `written`, carry a
    logged run on (the document so far goes to `sink` only with `replay`). With `best` > 1
    each section is the best of that many candidates (`generate.section_choice`).
    `max_tokens` caps each section's requests (`--max-tokens` with sections). `prompts`:
    each section's request in the template, in place of `request.prompt` (with `--source`,
    the request with the section's own passages; `generate.grounded`)."""
    started = time.monotonic()
    prefix = shared_prefix(request, outline)
    title = title_line(outline)
    tpw, _ = tokens_per_word(request.language, engine.count_tokens)
    stream = OneStream(sink)
    done: list[tuple[str, str]] = list(written.done) if written else []
    partial = written.partial if written else None
    begin(stream, request, outline, title, on_raw, plan_tokens,
          written.document if written else None, replay)  # fmt: skip
    figures: list[SectionResult] = []
    results: list[Result] = []
    finish = FINISH_STOP
    parts = outline.parts
    before = Before()
    for k in range(len(done), len(parts)):
        part = parts[k]
        if on_section is not None:
            on_section(k + 1, len(parts))
        earlier = stream.text  # what a restating section would repeat
        before = before.at(earlier)
        if partial is None:
            write_heading(stream, part, on_raw)
        written_before = sum(count_words(text) for _, text in done)
        planned_before = sum(p.words for p in parts[:k])
        left = outline.words - written_before if k == len(parts) - 1 else None
        words = section_words(part, planned_before, written_before, left)
        stop = f"\n{SECTION_LEVEL}{parts[k + 1].heading}" if k + 1 < len(parts) else None
        own = shared_prefix(replace(request, prompt=prompts[k]), outline) if prompts else prefix
        prompt = section_prompt(own, done, part.heading, title)
        floor = part.words if left is None else left  # the last one is carried to the end
        sec = section_request(request, prompt, words, floor, stop, engine.info.context,
                               engine.count_tokens, max_tokens)  # fmt: skip
        kept = SectionEngine(engine, prompt, part.heading, [p.heading for p in parts[k + 1 :]],
                             words)  # fmt: skip
        rule = Continuation(sec.target_range[0], max_rounds, tpw) if max_rounds else None
        choice = None
        if best > 1 and partial is None:
            result, choice = choose_section(engine, sec, best, before, on_raw, guards)
            stream.add(result.answer)
        else:
            resume = Resume(partial, FINISH_CANCELLED) if partial is not None else None
            result = write_document(
                kept, sec, stream, continuation=rule, on_raw=on_raw, guards=guards,
                resume=resume, earlier=earlier, on_cut=_offset(on_cut, len(earlier)),
            )  # fmt: skip
        partial = None
        results.append(result)
        done.append((part.heading, result.answer))
        figures.append(
            SectionResult(
                part.heading, part.words, result.words, result.tokens, len(result.rounds),
                result.finish_reason, len(prompt), before.share(result.answer), choice,
                result.guard, kept.ended, words,
            )
        )  # fmt: skip
        finish = result.finish_reason
        if finish == FINISH_CANCELLED:
            break
    sink.handle(Done(finish))
    document = stream.text
    return Sectioned(whole_result(request, outline, document, plan_tokens, results, finish,
                                  started), outline, figures)  # fmt: skip


def begin(
    stream: OneStream, request: Request, outline: Outline, title: str,
    on_raw: RawHook | None, plan_tokens: int, resumed: str | None, replay: bool,
) -> None:  # fmt: skip
    """The document's start: a fresh run logs the opening (plan) and shows the title; a run
    carried on has `resumed`, the document so far, shown again with `replay` or else taken
    as already shown."""
    if resumed is None:
        if on_raw is not None:
            on_raw(opening(request, outline), plan_tokens)
        if title:
            stream.add(title)
            if on_raw is not None:
                on_raw(title, 0)
    elif replay:
        stream.add(resumed)
    else:
        stream.shown.append(resumed)


def whole_result(
    request: Request, outline: Outline, document: str, plan_tokens: int,
    results: list[Result], finish: str, started: float,
) -> Result:  # fmt: skip
    """The sections' results as one run's: the document, the plan's tokens and theirs, their
    rounds and guard events."""
    return Result(
        prompt=request.user_prompt,
        thinking=outline.thinking,
        answer=document,
        words=count_words(document),
        tokens=plan_tokens + sum(r.tokens for r in results),
        finish_reason=finish,
        seconds=round(time.monotonic() - started, 3),
        rounds=[rd for r in results for rd in r.rounds],
        guard=[g for r in results for g in r.guard],
    )
