"""The main job: one request through engine -> parser -> renderer.

Kept apart from the CLI so that batch runs and tests drive the same loop. Ctrl-C is not an
error here: the engine is stopped, whatever was generated goes through the parser and the
renderer like any other ending, and the result says `finish_reason="cancelled"` so the caller
can keep it and exit 130.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from longwrite.counting import count_words
from longwrite.engines.base import FINISH_CANCELLED, FINISH_STOP, Engine
from longwrite.prompting import Request
from longwrite.stream import Event, ThinkAnswerParser


class EventSink(Protocol):
    def handle(self, event: Event) -> None: ...
    def add_tokens(self, n: int) -> None: ...


@dataclass(frozen=True)
class Result:
    """What one request produced; `--json` prints exactly these fields."""

    prompt: str
    thinking: str
    answer: str
    words: int
    tokens: int
    finish_reason: str
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def write_document(engine: Engine, request: Request, sink: EventSink) -> Result:
    """Stream `request` through `engine`, feeding parsed events to `sink` as they come."""
    parser = ThinkAnswerParser()
    tokens = 0
    finish: str | None = None
    started = time.monotonic()
    stream = engine.stream(request.prompt, request.sampling)
    try:
        for chunk in stream:
            if chunk.tokens:
                tokens += chunk.tokens
                sink.add_tokens(chunk.tokens)
            for event in parser.feed(chunk.text):
                sink.handle(event)
            if chunk.finish_reason is not None:
                finish = chunk.finish_reason
    except KeyboardInterrupt:
        finish = FINISH_CANCELLED
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()  # stops generation promptly if we left the loop early
    finish = finish or FINISH_STOP  # an engine that ended without saying why
    for event in parser.close(finish):
        sink.handle(event)
    return Result(
        prompt=request.user_prompt,
        thinking=parser.thinking,
        answer=parser.answer,
        words=count_words(parser.answer),
        tokens=tokens,
        finish_reason=finish,
        seconds=round(time.monotonic() - started, 3),
    )
