"""The paper's length assessor: an LLM predicts the word range a prompt needs.

When a prompt states no length, an LLM over any OpenAI-compatible endpoint is asked with our
prompt (`prompts/length_assessor_en.txt`, after the paper's rules); the reply is parsed
robustly (the last {"lo": .., "hi": ..} object, else the last "A-B" pair) and clamped to the
paper's rules: multiples of 100, hi <= 12,000, hi - lo <= 3,000; [0, 0] means the request
needs no long answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from longwrite.length.targets import MAX_PREDICTED, MAX_SPREAD, STEP, WordRange, extract_target
from longwrite.prompt.templates import PLACEHOLDER, load_template

ASSESSOR_TEMPLATE = "length_assessor_en"


_INT = r"\d{1,3}(?:,\d{3})+(?!\d)|\d+"


_PAIR = re.compile(rf"({_INT})\s*(?:-|–|—|~|to|,)\s*({_INT})")


def assessor_prompt(question: str) -> str:
    """The length assessor's prompt for `question` (plain substitution: braces are safe)."""
    before, after = load_template(ASSESSOR_TEMPLATE).split(PLACEHOLDER)
    return before + question + after


def parse_range_reply(reply: str) -> tuple[int, int] | None:
    """(lo, hi) from an assessor reply: the last {"lo": .., "hi": ..} object, else the last
    "A-B" or "[A, B]" pair; None when there is neither."""
    for block in reversed(re.findall(r"\{[^{}]*\}", reply)):
        lo, hi = (re.search(rf"\b{key}[\"']?\s*:\s*[\"']?({_INT})", block) for key in ("lo", "hi"))
        if lo and hi:
            return int(lo[1].replace(",", "")), int(hi[1].replace(",", ""))
    pairs = _PAIR.findall(reply)
    if pairs:
        lo, hi = pairs[-1]
        return int(lo.replace(",", "")), int(hi.replace(",", ""))
    return None


def apply_range_rules(lo: int, hi: int) -> WordRange:
    """Clamp a predicted range to the paper's rules: multiples of 100, 0 <= lo <= hi <= 12,000,
    hi - lo <= 3,000 (a wider range is narrowed around its middle)."""
    lo, hi = sorted(min(max(0, (v + STEP // 2) // STEP * STEP), MAX_PREDICTED) for v in (lo, hi))
    if hi - lo > MAX_SPREAD:
        middle = ((lo + hi) // 2 + STEP // 2) // STEP * STEP
        lo = min(max(0, middle - MAX_SPREAD // 2), MAX_PREDICTED - MAX_SPREAD)
        hi = lo + MAX_SPREAD
    return WordRange(lo, hi)


def predict_range(
    prompt: str, complete: Callable[[str], str], *, attempts: int = 3
) -> WordRange | None:
    """Ask an LLM (`complete` sends a prompt and returns the reply) for the word range a
    response to `prompt` needs; retry unparsable replies; None after `attempts` failures.
    Errors raised by `complete` propagate."""
    question = assessor_prompt(prompt)
    for _ in range(attempts):
        if (pair := parse_range_reply(complete(question))) is not None:
            return apply_range_rules(*pair)
    return None


def target_range(prompt: str, complete: Callable[[str], str] | None = None) -> WordRange | None:
    """The stated length's paper range, else the LLM's prediction (when `complete` is given)."""
    if (target := extract_target(prompt)) is not None:
        return target.range
    return predict_range(prompt, complete) if complete else None
