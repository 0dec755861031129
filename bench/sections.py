"""Benchmark: what a sectioned document costs as it grows, 100,000 words against 10,000.

Run from the repository root: `python bench/sections.py` (a few seconds).

The engine is the scripted model of the tests (`tests/section_server.Model`: it plans in its
thinking, then writes each section's planned words and the next heading), run in process and
charged on a simulated clock at a 32B model's pace on one GPU: prefill PREFILL_PER_S prompt
tokens a second for the tokens a prefix cache does not already hold (vLLM's, on in `serve`),
decode DECODE_PER_S tokens a second. A token is four characters of prompt, one word of
output. Each document goes the CLI's way: plan once (`plan_outline`), then `write_sections`,
with the number of sections the budget asks for. G = cost(100,000) / cost(10,000), goal
<= 11: linear in length (10 plus the fixed cost of planning spread thinner). A design that
resent the whole document with every section would grow quadratically (about 100x here).
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from longwrite.engines.base import Chunk, EngineInfo, Sampling  # noqa: E402
from longwrite.generate.parser import Event  # noqa: E402
from longwrite.generate.plan import Outline  # noqa: E402
from longwrite.generate.planning import plan_outline  # noqa: E402
from longwrite.generate.sections import (  # noqa: E402
    Sectioned,
    section_cap,
    sections_needed,
    write_sections,
)
from longwrite.io.counting import count_words  # noqa: E402
from longwrite.length.budget import plan_budget  # noqa: E402
from longwrite.prompt.request import build_request  # noqa: E402
from tests.section_server import Model  # noqa: E402

PREFILL_PER_S = 5000.0
DECODE_PER_S = 30.0
CONTEXT = 32768


class ChargedEngine:
    """The scripted model as an in-process engine that bills its time."""

    def __init__(self) -> None:
        self.model = Model()
        self.info = EngineInfo("bench", "scripted", context=CONTEXT)
        self.seconds = 0.0
        self.last_prompt = ""
        self.largest_prompt = 0

    def count_tokens(self, text: str) -> int | None:
        return math.ceil(len(text) / 4)

    def _cached(self, prompt: str) -> int:
        """Characters of `prompt` a prefix cache holds: its common prefix with the last."""
        n = 0
        for a, b in zip(prompt, self.last_prompt, strict=False):
            if a != b:
                break
            n += 1
        return n

    def stream(self, prompt: str, sampling: Sampling) -> Iterator[Chunk]:
        tokens = self.count_tokens(prompt) or 0
        assert tokens + sampling.max_tokens <= CONTEXT, "over the context"
        self.largest_prompt = max(self.largest_prompt, tokens)
        self.seconds += math.ceil((len(prompt) - self._cached(prompt)) / 4) / PREFILL_PER_S
        self.last_prompt = prompt
        text = self.model.reply(prompt, {"min_tokens": sampling.min_tokens})
        stops = [text.find(s) for s in sampling.stop if s in text]
        text = text[: min(stops)] if stops else text
        words = re.findall(r"\S+\s*|\s+", text)[: sampling.max_tokens]
        self.seconds += len(words) / DECODE_PER_S
        for i, w in enumerate(words):
            yield Chunk(w, 1, "stop" if i == len(words) - 1 else None)

    def close(self) -> None:
        pass


class _Null:
    def handle(self, event: Event) -> None:
        pass

    def add_tokens(self, n: int) -> None:
        pass


def report(engine: ChargedEngine, words: int) -> tuple[Sectioned, Outline]:
    """A `words`-word report planned and written through the CLI's path: (the sectioned
    result, the outline)."""
    rng = (round(words * 0.9), math.ceil(words * 1.1))
    request = build_request(
        f"Write a {words:,}-word report on urban heat islands", words=words, target_range=rng
    )
    budget = plan_budget(request.prompt, language="en", target_hi=words, context=CONTEXT,
                         count_tokens=engine.count_tokens)  # fmt: skip
    n = sections_needed(words, budget.max_words)
    outline, plan_tokens = plan_outline(
        engine, request, words, n, forced=False, cap=section_cap(budget.max_words)
    )
    return write_sections(engine, request, outline, _Null(), plan_tokens=plan_tokens), outline


def cost(words: int) -> tuple[float, int, int, int]:
    """(simulated seconds, words written, sections, largest prompt in tokens)."""
    engine = ChargedEngine()
    made, outline = report(engine, words)
    written = count_words(made.result.answer)
    return engine.seconds, written, len(outline.parts), engine.largest_prompt


def main() -> None:
    small, big = cost(10_000), cost(100_000)
    for label, (seconds, words, parts, largest) in (("10,000", small), ("100,000", big)):
        print(f"{label:>8} words asked: {words:,} written in {parts} sections, "
              f"{seconds:,.0f} s simulated, largest prompt {largest:,} tokens")  # fmt: skip
    print(f"sections: growth={big[0] / small[0]:.2f} goal<=11")


if __name__ == "__main__":
    main()
