"""A section chosen among K candidates, and how much a section repeats the document before it.

Sections must not restate earlier ones. The measure is the rewards' repetition penalty
(`scoring.rewards.repetition_penalty`) over the whole document: a section's share is how much
the penalty's repeated tokens grow when the section is appended, per token of the section, so
it is the same measure a one-pass document of that length would get. With `--best-of K` each
section is chosen among K candidates by the length reward against the section's range minus
that share; when even the best one repeats the document beyond `REPEAT_LIMIT`, the section is
sampled again (at most `RESAMPLES` times, seed moved on) and the choice is recorded.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from longwrite.engines.base import FINISH_CANCELLED, Engine
from longwrite.generate.best_of import Scorer, best_of
from longwrite.generate.guards import NO_GUARDS, Guards
from longwrite.generate.parser import split_think_answer
from longwrite.generate.rounds import RawHook, Result
from longwrite.io.counting import count_words
from longwrite.prompt.request import Request
from longwrite.scoring.rewards import TOKEN_RE, Running, length_reward

REPEAT_LIMIT = 0.2  # a section a fifth of which restates earlier text is sampled again
RESAMPLES = 1


def _tokens(text: str) -> int:
    return len(TOKEN_RE.findall(text.lower()))


class Before:
    """The document before a section, its repeated tokens counted once (`Running`): a
    document that grows section by section is read once in all, not once per section."""

    def __init__(self, text: str = "") -> None:
        self.running = Running(text)
        self.repeated = self.running.repeated()

    @property
    def text(self) -> str:
        return self.running.text

    def at(self, text: str) -> Before:
        """The document before a later section: `text`, read from where this one ends when it
        goes on from it."""
        if not text.startswith(self.text):
            return Before(text)
        self.running.extend(text[len(self.text) :])
        self.repeated = self.running.repeated()
        return self

    def share(self, section: str) -> float:
        """How much of `section` (in tokens) repeats the document before it, or itself."""
        new = _tokens(section)
        if not new:
            return 0.0
        grown = self.running.repeated(f"\n\n{section}" if self.text else section) - self.repeated
        return round(min(max(grown / new, 0.0), 1.0), 4)


def section_scorer(before: Before, target_range: tuple[int, int]) -> Scorer:
    lo, hi = target_range

    def score(raw: str) -> dict[str, float]:
        answer = split_think_answer(raw)[1]
        length = length_reward(count_words(answer), lo, hi)
        repetition = before.share(answer)
        return {"length": length, "repetition": repetition, "total": length - repetition}

    return score


def choose_section(
    engine: Engine,
    request: Request,
    k: int,
    before: Before,
    on_raw: RawHook | None,
    guards: Guards = NO_GUARDS,
) -> tuple[Result, dict[str, Any]]:
    """The best of `k` candidates for one section, sampled again while it repeats; (the
    chosen one, what was chosen and why, for `--json`). `guards` check each candidate, as
    `best_of` does."""
    assert request.target_range is not None
    score = section_scorer(before, request.target_range)
    tries: list[dict[str, Any]] = []
    spent = 0
    for attempt in range(RESAMPLES + 1):
        sampling = request.sampling
        if attempt and sampling.seed is not None:
            sampling = replace(sampling, seed=sampling.seed + attempt)
        result, candidates, best = best_of(
            engine, replace(request, sampling=sampling), k, score, guards=guards
        )
        spent += result.tokens
        tries.append({"best": best, "candidates": [c.summary() for c in candidates]})
        repeated = candidates[best].scores["repetition"]
        if repeated <= REPEAT_LIMIT or result.finish_reason == FINISH_CANCELLED:
            break
    if on_raw is not None:
        on_raw(result.answer, spent)
    choice = {**tries[-1], "resampled": len(tries) - 1, "tries": tries[:-1]}
    return replace(result, tokens=spent), choice
