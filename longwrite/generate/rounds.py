"""The main job: one request through engine -> parser -> renderer, in one or more rounds.

Kept apart from the CLI so that batch runs and tests drive the same loop.

Continuation (length control): when an answer ends below the lower end of its target range,
the same prompt plus everything generated so far is sent again as raw text, so the model
carries on where it stopped; the user sees one seamless stream. The model had chosen to
stop, so a continuation asks for `min_tokens` (the tokens the missing words need): vLLM and
compatible servers ignore EOS and stop strings until then. Rounds are bounded, and each
round's tokens count against the request's `max_tokens`.

A run can be carried on later (`longwrite continue`): `Resume` hands back the raw text it had
generated, which goes through a fresh parser (shown only when asked) before the next round
starts exactly where it stopped. `on_raw` receives every piece of raw text as it comes (the
run log records it), separators included, so that the log holds what the model will see.

Ctrl-C is not an error here: the engine is stopped, whatever was generated goes through the
parser and the renderer like any other ending, and the result says
`finish_reason="cancelled"` so the caller can keep it and exit 130.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol

from longwrite.engines.base import (
    FINISH_CANCELLED,
    FINISH_LENGTH,
    FINISH_STOP,
    Engine,
    Sampling,
    fit_max_tokens,
)
from longwrite.generate.guards import (
    CLOSE_THINKING,
    FINISH_GUARD,
    NO_GUARDS,
    Document,
    Guards,
    Watch,
)
from longwrite.generate.parser import Event, ThinkAnswerParser
from longwrite.io.counting import count_words
from longwrite.prompt.request import Request

PARAGRAPH = "\n\n"  # what a continuation round starts with when the answer had stopped
MIN_ROUND_TOKENS = 16  # a continuation with less room than this is not worth a request


RawHook = Callable[[str, int], None]  # (raw text, tokens it took)
CutHook = Callable[[int, str], None]  # (answer offset, text a loop cut dropped there)


class EventSink(Protocol):
    def handle(self, event: Event) -> None: ...
    def add_tokens(self, n: int) -> None: ...


@dataclass(frozen=True)
class Continuation:
    """Continue while the answer has fewer than `below` words, at most `max_rounds` times."""

    below: int
    max_rounds: int = 2
    tokens_per_word: float = 1.4


@dataclass(frozen=True)
class Resume:
    """A run carried on: the raw text it had generated and how its last request ended."""

    raw: str
    finish_reason: str
    replay: bool = False  # show the text so far again (its events go to the sink first)


@dataclass(frozen=True)
class Round:
    """One request to the engine: a first pass or a continuation."""

    tokens: int
    finish_reason: str
    answer_words: int
    guard: str | None = None  # the guard that ended this round, if one did


@dataclass(frozen=True)
class Result:
    """What one request produced; `--json` prints these fields."""

    prompt: str
    thinking: str
    answer: str
    words: int
    tokens: int
    finish_reason: str
    seconds: float
    rounds: list[Round] = field(default_factory=list)
    guard: list[dict[str, Any]] = field(default_factory=list)  # the guards' interventions
    sources: dict[str, Any] | None = None  # --source: passages given and cited (grounded)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        if self.sources is None:
            del out["sources"]
        return out


def _stream_round(
    engine: Engine, prompt: str, sampling: Sampling, parser: ThinkAnswerParser, watch: Watch
) -> tuple[str, int, str]:
    """One engine request fed through `parser` into the watch's sink: (raw text, tokens,
    finish); finish is `FINISH_GUARD` when a guard stopped the request."""
    pieces: list[str] = []
    tokens = 0
    finish: str | None = None
    sink = watch.sink
    stream = engine.stream(prompt, sampling)
    try:
        for chunk in stream:
            if chunk.tokens:
                tokens += chunk.tokens
                sink.add_tokens(chunk.tokens)
            if chunk.text:
                pieces.append(chunk.text)
                for event in parser.feed(chunk.text):
                    sink.handle(event)
            if chunk.finish_reason is not None:
                finish = chunk.finish_reason
            if watch.chunk(parser, chunk.text, chunk.tokens) and finish is None:
                finish = FINISH_GUARD
                break
    except KeyboardInterrupt:
        finish = FINISH_CANCELLED
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()  # stops generation promptly if we left the loop early
    return "".join(pieces), tokens, finish or FINISH_STOP  # FINISH_STOP: ended without a word


def tokens_left(engine: Engine, request: Request, generated: str, used: int) -> int:
    """How many new tokens the next request for `request` may ask for, `used` being spent.

    The one owner of that number: the request's budget less what was used, within what the
    engine's context leaves after the prompt plus the text so far (counted with the engine's
    tokenizer where it has one). Engines apply the same rule (`fit_max_tokens`), so a round
    never asks for more than fits and the caller's count matches the engine's.
    """
    left = request.sampling.max_tokens - used
    context = engine.info.context
    if context:
        counted = engine.count_tokens(request.prompt + generated)
        if counted is not None:
            left = fit_max_tokens(left, counted, context)
    return left


def _next_round(
    request: Request,
    continuation: Continuation | None,
    rounds: list[Round],
    left: int,
    generated: str,
) -> tuple[Sampling, str] | None:
    """The sampling and separator of the next continuation round, or None to stop."""
    if continuation is None or not rounds:
        return None
    last = rounds[-1]
    if last.finish_reason == FINISH_CANCELLED or last.answer_words >= continuation.below:
        return None
    if len(rounds) > continuation.max_rounds:
        return None
    if left < MIN_ROUND_TOKENS:
        return None
    return _carry_on(request, continuation, last, left, generated)


def _carry_on(
    request: Request, continuation: Continuation | None, last: Round, left: int, generated: str
) -> tuple[Sampling, str]:
    """The sampling and separator of a request that carries on after `last`."""
    missing = 0
    if continuation is not None and last.answer_words < continuation.below:
        words = continuation.below - last.answer_words
        missing = math.ceil(words * continuation.tokens_per_word)
    sampling = replace(request.sampling, max_tokens=left, min_tokens=min(missing, left), n=1)
    # The model stopped on its own: start a new paragraph (only the line breaks the text does
    # not already end with). Cut off by max_tokens, interrupted, or still thinking: carry on
    # mid-sentence, exactly where the text ends.
    separator = ""
    if last.finish_reason == FINISH_STOP and last.answer_words:
        separator = PARAGRAPH[min(_trailing_newlines(generated), len(PARAGRAPH)) :]
    return sampling, separator


def _tokens_of(engine: Engine, cut: str, kept_tokens: int, whole: str) -> int:
    """Tokens of `cut`, the end of `whole` (which took `kept_tokens`): counted with the
    engine's tokenizer where it has one, else `whole`'s tokens per character.

    A whole reply (`batch`'s default) reaches the guard only once every token of it is
    spent, so without this a loop found in it would leave nothing to carry on with."""
    counted = engine.count_tokens(cut)
    if counted is not None:
        return min(counted, kept_tokens)
    return min(kept_tokens, round(kept_tokens * len(cut) / max(len(whole), 1)))


def _trailing_newlines(text: str) -> int:
    return len(text) - len(text.rstrip("\n"))


def write_document(
    engine: Engine,
    request: Request,
    sink: EventSink,
    *,
    continuation: Continuation | None = None,
    on_raw: RawHook | None = None,
    resume: Resume | None = None,
    guards: Guards = NO_GUARDS,
    earlier: str = "",
    on_cut: CutHook | None = None,
) -> Result:
    """Stream `request` through `engine`, feeding parsed events to `sink` as they come.

    With `resume`, carry on from its raw text; `request.sampling.max_tokens` is then what
    this call may add, and the result's tokens, seconds and rounds are this call's.
    `guards` watch the stream (`generate.guards`); their interventions are in the result.
    `earlier`: text before this document (earlier sections) that restating counts as a loop.
    `on_cut` receives the text each loop cut drops (the run log keeps it)."""
    state = Document(guards, sink, on_raw, earlier, on_cut)
    started = time.monotonic()
    rounds: list[Round] = []
    sampling, separator = request.sampling, ""
    if resume is not None:
        state.resume(resume.raw, resume.replay)
        last = Round(0, resume.finish_reason, count_words(state.parser.answer))
        left = tokens_left(engine, request, state.generated, 0)
        sampling, separator = _carry_on(request, continuation, last, max(left, 1), state.generated)
    else:
        left = tokens_left(engine, request, "", 0)
        if 0 < left < sampling.max_tokens:  # the context holds less than the budget
            sampling = replace(sampling, max_tokens=left, min_tokens=min(sampling.min_tokens, left))
    dropped = 0  # tokens of text a guard cut from the document: spent, but not kept
    while True:
        state.add(separator)
        try:
            text, tokens, finish = _stream_round(
                engine, request.prompt + state.generated, sampling, state.parser, state.watch
            )
        except BaseException:  # a fault: keep what was held back, then let it be reported
            state.salvage(len(rounds) + 1)
            raise
        state.generated += text
        before = state.generated
        fix = state.repair(finish, len(rounds) + 1, request.think)
        rounds.append(Round(tokens, finish, count_words(state.parser.answer), fix))
        used = sum(r.tokens for r in rounds)
        if len(state.generated) < len(before):  # a loop cut: its tokens go back to the budget
            dropped += _tokens_of(engine, before[len(state.generated) :], used - dropped, before)
        left = tokens_left(engine, request, state.generated, used - dropped)
        step = None
        if fix == "loop_kept" or finish == FINISH_CANCELLED:
            break
        if fix is not None and left >= MIN_ROUND_TOKENS:
            last = replace(rounds[-1], finish_reason=FINISH_LENGTH)
            sampling, separator = _carry_on(request, continuation, last, left, state.generated)
            if fix == "loop":
                sampling = state.resample(sampling)
            else:
                separator = CLOSE_THINKING
            continue
        if continuation is not None:
            plain = [r for r in rounds if r.guard is None] or rounds[-1:]
            step = _next_round(request, continuation, plain, left, state.generated)
        if step is None:
            break
        sampling, separator = step
    if finish == FINISH_GUARD:
        finish = FINISH_STOP if rounds[-1].guard == "loop_kept" else FINISH_LENGTH
    for event in state.parser.close(finish):
        state.sink.handle(event)
    state.watch.flush()
    return Result(
        prompt=request.user_prompt,
        thinking=state.parser.thinking,
        answer=state.parser.answer,
        words=count_words(state.parser.answer),
        tokens=sum(r.tokens for r in rounds),
        finish_reason=finish,
        seconds=round(time.monotonic() - started, 3),
        rounds=rounds,
        guard=[g.to_json() for g in state.interventions],
    )
