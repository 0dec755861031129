"""Plan a sectioned document once: the model's own plan, an outline asked for, or an even split.

Why apart from `generate.sections`: settling the outline is one step before any section is
written (`--plan-only` stops after it), with its own requests: the plan in the model's own
think template (stopped at `<answer>`, its thinking streamed once with `--thinking show`)
and, when the plan holds no usable outline, our `prompts/outline_en.txt`. `generate.plan`
reads outlines from text; this module asks for them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from longwrite.engines.base import FINISH_STOP, Engine
from longwrite.errors import say
from longwrite.generate.parser import ThinkAnswerParser, ThinkDelta
from longwrite.generate.plan import Outline, Part, even, read_outline, scale
from longwrite.generate.rounds import EventSink
from longwrite.length.budget import THINK_TOKENS
from longwrite.prompt.request import Request

OUTLINE_TOKENS = 800
PLAN_STOP = "<answer>"


def write_plan(
    engine: Engine, request: Request, sink: EventSink | None, think_tokens: int
) -> tuple[str, int]:
    """The model's plan for the whole document: (its thinking, tokens); thinking streams to
    `sink` (shown once with `--thinking show`)."""
    tokens = think_tokens or THINK_TOKENS  # `--think-budget`: the plan is thinking too
    sampling = replace(
        request.sampling, max_tokens=tokens, min_tokens=0, n=1,
        stop=(*request.sampling.stop, PLAN_STOP),
    )  # fmt: skip
    parser = ThinkAnswerParser()
    used = 0
    stream = engine.stream(request.prompt, sampling)
    try:
        for chunk in stream:
            used += chunk.tokens
            for event in parser.feed(chunk.text or ""):
                if isinstance(event, ThinkDelta) and sink is not None:
                    sink.handle(event)
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()
    for event in parser.close(FINISH_STOP):
        if isinstance(event, ThinkDelta) and sink is not None:
            sink.handle(event)
    return (parser.thinking or parser.answer).strip(), used


def ask_outline(engine: Engine, request: Request, n: int, target: int) -> list:
    """Our outline prompt's parts, or [] when the reply holds none."""
    from longwrite.prompt.templates import load_template

    template = load_template("outline_en")
    text = template.replace("{sections}", str(n)).replace("{words}", f"{target:,}")
    text = text.replace("{question}", request.user_prompt)
    sampling = replace(
        request.sampling, max_tokens=OUTLINE_TOKENS, min_tokens=0, n=1, stop=request.sampling.stop
    )
    reply = "".join(c.text or "" for c in engine.stream(text, sampling))
    return read_outline(reply)


def choose_outline(
    thinking: str, ask: Callable[[], list], target: int, n: int, *, forced: bool, cap: int
) -> Outline:
    """The plan's outline when usable, else the asked one, else an even split (said so).

    Usable: exactly `n` parts when the count was forced, otherwise at least `n` parts none
    of which is planned longer than a section may be."""

    def usable(parts: list) -> tuple[Part, ...] | None:
        if not parts or (forced and len(parts) != n) or (not forced and len(parts) < n):
            return None
        scaled = scale(parts, target)
        return scaled if forced or max(p.words for p in scaled) <= cap else None

    if (parts := usable(read_outline(thinking))) is not None:
        return Outline(parts, "plan", thinking)
    if (parts := usable(ask())) is not None:
        return Outline(parts, "outline", thinking)
    say(f"longwrite: note: no usable outline from the model: {n} equal sections")
    return Outline(even(target, n), "even", thinking)


def plan_outline(
    engine: Engine,
    request: Request,
    target: int,
    n: int,
    *,
    forced: bool,
    cap: int,
    sink: EventSink | None = None,
    think_tokens: int = THINK_TOKENS,
) -> tuple[Outline, int]:
    """Plan once and settle the outline: (outline, the plan's tokens)."""
    thinking, tokens = "", 0
    if request.think:  # `--no-think`: no plan of the model's own, straight to the outline
        thinking, tokens = write_plan(engine, request, sink, think_tokens)
    outline = choose_outline(
        thinking, lambda: ask_outline(engine, request, n, target), target, n,
        forced=forced, cap=cap,
    )  # fmt: skip
    return outline, tokens
