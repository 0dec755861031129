"""Plan a sectioned document once: the model's own plan, an outline asked for, or an even split.

Why apart from `generate.sections`: settling the outline is one step before any section is
written (`--plan-only` stops after it), with its own requests: the plan in the model's own
think template, ended where the thinking ends (the stream parser decides, so a plan that
merely mentions `<answer>` is not cut there), its thinking streamed once with `--thinking
show`; and, when the plan holds no plausible outline, our outline prompt in the request's
language. `generate.plan` reads outlines from text; this module asks for them and judges them.

Implausible: one part; dozens of parts (more than three times the sections needed, and at
least `MAX_PARTS`); titles of more than about twelve words; counts that add up to less than
half or more than twice the target; a part planned longer than one pass holds. Which outline
was taken, and why another was not, is one line on stderr.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from longwrite.engines.base import FINISH_STOP, Engine
from longwrite.errors import say
from longwrite.generate.outline_lines import MAX_TITLE_WORDS, strip_numbering, title_words
from longwrite.generate.outline_read import find_outline
from longwrite.generate.parser import ThinkAnswerParser, ThinkDelta
from longwrite.generate.plan import Outline, Part, even, read_parts, scale_parts
from longwrite.generate.rounds import EventSink
from longwrite.length.budget import THINK_TOKENS
from longwrite.prompt.request import Request

OUTLINE_TOKENS = 800
TITLE_TOKENS = 40
MAX_PARTS = 30  # "dozens": more parts than this (and three times those needed) is a misreading

_TITLE_LINE = re.compile(
    r"^\s*(?:#\s+(.+)|[*_]*(?:working\s+)?title[*_]*\s*[:：]\s*(.+)"
    r"|[*_]*(?:标题|题目)[*_]*\s*[:：]\s*(.+))$",
    re.IGNORECASE | re.MULTILINE,
)
_BOOK_TITLE = re.compile(r"《([^》]{1,40})》")


def write_plan(
    engine: Engine, request: Request, sink: EventSink | None, think_tokens: int
) -> tuple[str, int]:
    """The model's plan for the whole document: (its thinking, tokens). The request stops once
    the thinking has ended (the answer begins); the thinking streams to `sink`."""
    tokens = think_tokens or THINK_TOKENS  # `--think-budget`: the plan is thinking too
    sampling = replace(request.sampling, max_tokens=tokens, min_tokens=0, n=1)
    parser = ThinkAnswerParser()
    used = 0
    stream = engine.stream(request.prompt, sampling)
    try:
        for chunk in stream:
            used += chunk.tokens
            for event in parser.feed(chunk.text or ""):
                if isinstance(event, ThinkDelta) and sink is not None:
                    sink.handle(event)
            if parser.phase in ("answer", "after"):
                break  # the plan is complete: the document itself is written in sections
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()
    for event in parser.close(FINISH_STOP):
        if isinstance(event, ThinkDelta) and sink is not None:
            sink.handle(event)
    return (parser.thinking or parser.answer).strip(), used


def ask_outline(engine: Engine, request: Request, n: int, target: int) -> Outline | None:
    """Our outline prompt's reply, read as a plan (None when it holds no outline)."""
    from longwrite.prompt.templates import load_template

    template = load_template(f"outline_{request.language}")
    text = template.replace("{sections}", str(n)).replace("{words}", f"{target:,}")
    text = text.replace("{question}", request.user_prompt)
    sampling = replace(
        request.sampling, max_tokens=OUTLINE_TOKENS, min_tokens=0, n=1, stop=request.sampling.stop
    )
    reply = "".join(c.text or "" for c in engine.stream(text, sampling))
    read = read_parts(reply)
    if not read.parts:
        return None
    return Outline(scale_parts(read.parts, target), "outline")


def implausible(
    parts: list[tuple[str, int | None, str]], target: int, needed: int, cap: int | None
) -> str | None:
    """Why `parts` read from a plan cannot be the outline; None when they can."""
    if len(parts) < 2:
        return "it has one part" if parts else "it has no outline"
    if len(parts) > max(MAX_PARTS, 3 * needed):
        return f"it has {len(parts)} parts"
    long = [t for t, _, _ in parts if title_words(t) > MAX_TITLE_WORDS]
    if long:
        return f"a heading of {title_words(long[0])} words ({long[0][:40]}...)"
    known = [w for _, w, _ in parts if w]
    if 2 * len(known) >= len(parts):
        total = round(sum(known) * len(parts) / len(known))
        if total < target / 2 or total > target * 2:
            return f"its counts add up to {total:,} words of {target:,}"
    if cap is not None:
        biggest = max(p.words for p in scale_parts(parts, target))
        if biggest > cap:
            return f"a part of {biggest:,} words is longer than one pass holds ({cap:,})"
    return None


def expand(
    parts: list[tuple[str, int | None, str]], target: int, cap: int
) -> list[tuple[str, int | None, str]]:
    """Parts planned longer than one pass written as the sub-parts the plan lists under them
    ("Part I: Horses and Envoys (~24,000 words)" -> its four chapters), where it lists some."""
    if len(parts) < 2:
        return parts
    out: list[tuple[str, int | None, str]] = []
    for (title, words, notes), planned in zip(parts, scale_parts(parts, target), strict=True):
        sub = find_outline(notes) if planned.words > cap else []
        out += sub if len(sub) >= 2 else [(title, words, notes)]
    return out


@dataclass(frozen=True)
class Choice:
    """The outline chosen, and the line that says how."""

    outline: Outline
    said: str


def choose_outline(
    thinking: str,
    ask: Callable[[], Outline | None],
    target: int,
    n: int,
    *,
    forced: bool,
    cap: int,
    language: str = "en",
) -> Outline:
    """The plan's outline when plausible, else the asked one, else an even split; one line on
    stderr says which. With `forced` (`--sections N`), exactly `n` parts are needed."""
    choice = _choose(thinking, ask, target, n, forced=forced, cap=cap, language=language)
    say(choice.said)
    return choice.outline


def _choose(
    thinking: str,
    ask: Callable[[], Outline | None],
    target: int,
    n: int,
    *,
    forced: bool,
    cap: int,
    language: str,
) -> Choice:
    def why_not(parts: list[tuple[str, int | None, str]]) -> str | None:
        if forced and parts and len(parts) != n:
            return f"it has {len(parts)} parts, not the {n} asked for"
        return implausible(parts, target, n, None if forced else cap)

    read = read_parts(thinking).parts
    if not forced:
        read = expand(read, target, cap)
    reason = why_not(read) if thinking else "there is no plan (--no-think)"
    if reason is None:
        outline = Outline(scale_parts(read, target), "plan", thinking)
        return Choice(outline, f"longwrite: outline: {len(read)} sections from the model's plan")
    asked = ask()
    asked_parts = [(p.heading, p.words, p.notes) for p in asked.parts] if asked else []
    second = why_not(asked_parts) if asked else "its reply held none"
    if second is None and asked is not None:
        outline = replace(asked, thinking=thinking)
        why = f"the plan's was not usable ({reason}); " if thinking else ""
        n_asked = len(asked.parts)
        said = f"longwrite: outline: {why}{n_asked} sections from an outline asked of the model"
        return Choice(outline, said)
    outline = Outline(even(target, n, language), "even", thinking)
    said = (
        f"longwrite: note: no usable outline from the model (the plan: {reason}; asked: "
        f"{second}): {n} equal sections"
    )
    return Choice(outline, said)


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
    """Plan once, settle the outline and the document's title: (outline, the plan's tokens)."""
    thinking, tokens = "", 0
    if request.think:  # `--no-think`: no plan of the model's own, straight to the outline
        thinking, tokens = write_plan(engine, request, sink, think_tokens)
    outline = choose_outline(
        thinking, lambda: ask_outline(engine, request, n, target), target, n,
        forced=forced, cap=cap, language=request.language,
    )  # fmt: skip
    title = title_from(request.user_prompt, thinking) or ask_title(engine, request)
    return replace(outline, title=title), tokens


def ask_more_parts(
    engine: Engine, request: Request, outline: Outline, k: int, words: int
) -> tuple[Part, ...]:
    """`k` more sections for a document being extended by `words` (their titles asked of the
    model, given the outline so far; "Part N" where its reply has too few)."""
    from longwrite.prompt.templates import load_template

    template = load_template(f"outline_more_{request.language}")
    so_far = "".join(f"## {p.heading}\n" for p in outline.parts)
    text = template.replace("{sections}", str(k)).replace("{words}", f"{words:,}")
    text = text.replace("{outline}", so_far).replace("{question}", request.user_prompt)
    sampling = replace(
        request.sampling, max_tokens=OUTLINE_TOKENS, min_tokens=0, n=1, stop=request.sampling.stop
    )
    reply = "".join(c.text or "" for c in engine.stream(text, sampling))
    old = {p.heading.casefold() for p in outline.parts}
    parts = [p for p in read_parts(reply).parts if p[0].casefold() not in old][:k]
    name = "第{n}部分" if request.language == "zh" else "Part {n}"
    n = len(outline.parts) + len(parts)
    parts += [(name.format(n=n + i + 1), None, "") for i in range(k - len(parts))]
    return scale_parts(parts, words)


# -- the title -----------------------------------------------------------------------------------


def clean_title(text: str) -> str:
    """A title as written on one line: no `#`, quotes, bold or trailing punctuation."""
    text = text.strip().lstrip("#").strip()
    text = strip_numbering(text).replace("**", "").replace("__", "")
    text = text.strip(" \t\"'“”‘’《》「」*_`.:：。")
    return text if 0 < len(text) <= 120 else ""


def title_from(user_prompt: str, thinking: str) -> str:
    """The title the request names (《秋》, "titled ..."), else the one the plan states (a
    `# Title` line, "Title: ..."), else ""."""
    book = _BOOK_TITLE.search(user_prompt)
    if book:
        return clean_title(book.group(1))
    quoted = re.search(r"\b(?:titled|entitled|called)\s+[\"“']([^\"”']{2,80})[\"”']", user_prompt)
    if quoted:
        return clean_title(quoted.group(1))
    for m in reversed(list(_TITLE_LINE.finditer(thinking))):  # the plan's last word on it
        found = clean_title(next(g for g in m.groups() if g))
        if found:
            return found
    return ""


def ask_title(engine: Engine, request: Request) -> str:
    """One line asked of the model: the document's title ("" when the reply holds none)."""
    from longwrite.prompt.templates import load_template

    text = load_template(f"title_{request.language}").replace("{question}", request.user_prompt)
    sampling = replace(request.sampling, max_tokens=TITLE_TOKENS, min_tokens=0, n=1)
    reply = "".join(c.text or "" for c in engine.stream(text, sampling))
    return next((t for t in map(clean_title, reply.splitlines()) if t), "")
