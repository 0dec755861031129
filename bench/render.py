"""Benchmark: stream a 10,000-word Markdown document through ThinkAnswerParser + Renderer.

Run from the repository root: `python bench/render.py`. It pushes the document through the
whole display pipeline as fast as possible, in deltas of 1-4 characters, with both stdout and
stderr treated as 100x40 terminals (the most expensive mode: Markdown, live area, status line).

Printed figures:
- ratio R = T / (N / 100): the pipeline's total time T against the time a fast engine needs to
  generate the N tokens at 100 tokens/s; N is estimated as 1.3 tokens per English word.
  Goal R <= 0.01: the display costs at most 1% of generation.
- growth G: seconds per delta over the last 10% of deltas divided by the same over the first
  10%. Goal G <= 2: the cost per delta does not grow with the document.
  The pipeline runs 3 times; T and each segment's time are the best of the 3 (noisy machine).
- the naive approach (re-render the whole accumulated Markdown at every newline) for
  comparison; it is quadratic, so it is timed on a prefix and extrapolated quadratically.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rich.console import Console  # noqa: E402
from rich.markdown import Markdown  # noqa: E402

from longwrite.display.renderer import Renderer, RenderOptions  # noqa: E402
from longwrite.generate.parser import ThinkAnswerParser  # noqa: E402
from longwrite.io.counting import count_words  # noqa: E402

TARGET_WORDS = 10_000
TOKENS_PER_WORD = 1.3
WIDTH, HEIGHT = 100, 40
NAIVE_PREFIX = 0.15  # fraction of the document the naive renderer is timed on
RUNS = 3  # the pipeline is timed this many times; the best time of each segment counts

VOCAB_TEXT = """
the of and to in a is that for it as was with be by on not he this are or his from at which
but have an they you were her she there been one all we their has would when if so no will
more time about into can only other new some could these two may first then do any like my
now over such our man me even most made after also did many before must through back years
where much your way well down should because each just those people river mountain harvest
lantern archive signal quiet garden letter morning window memory engine theory history market
winter village journey promise shadow silver station
"""
VOCAB = VOCAB_TEXT.split()


class NullWriter:
    """A terminal-like sink that keeps only a byte count."""

    def __init__(self) -> None:
        self.chars = 0

    def write(self, text: str) -> int:
        self.chars += len(text)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return True


def sentence(rng: random.Random) -> str:
    words = [rng.choice(VOCAB) for _ in range(rng.randint(8, 20))]
    text = " ".join(words)
    if rng.random() < 0.15:
        text = text.replace(words[2], f"**{words[2]}**", 1)
    return text[0].upper() + text[1:] + "."


def build_document(target: int = TARGET_WORDS, seed: int = 7) -> str:
    """Headings, paragraphs and lists until the document has `target` words."""
    rng = random.Random(seed)
    blocks: list[str] = ["# The Long Report"]
    words = count_words(blocks[0])
    section = 0
    while words < target:
        kind = rng.random()
        if kind < 0.1 or len(blocks) == 1:
            section += 1
            block = f"## Section {section}: {rng.choice(VOCAB).title()}"
        elif kind < 0.25:
            marker = rng.choice(["-", "1."])
            block = "\n".join(f"{marker} {sentence(rng)}" for _ in range(rng.randint(3, 6)))
        else:
            block = " ".join(sentence(rng) for _ in range(rng.randint(3, 7)))
        n = count_words(block)
        if words + n > target:  # last block: trim to hit the target exactly
            kept = block.split(" ")
            while count_words(" ".join(kept)) > target - words:
                kept.pop()
            block, n = " ".join(kept), count_words(" ".join(kept))
            if not block:
                break
        blocks.append(block)
        words += n
    return "\n\n".join(blocks) + "\n"


def cut(text: str, seed: int = 11) -> list[str]:
    rng = random.Random(seed)
    out, i = [], 0
    while i < len(text):
        n = rng.randint(1, 4)
        out.append(text[i : i + n])
        i += n
    return out


def run_pipeline(deltas: list[str]) -> tuple[float, list[float], Renderer]:
    """Total seconds, seconds per 10% segment of the deltas, and the renderer."""
    out, err = NullWriter(), NullWriter()
    parser = ThinkAnswerParser()
    segments: list[float] = []
    bounds = [len(deltas) * k // 10 for k in range(11)]
    start = time.perf_counter()
    with Renderer(
        RenderOptions(target_words=TARGET_WORDS),
        stdout=out,
        stderr=err,
        stdout_tty=True,
        stderr_tty=True,
        width=WIDTH,
        height=HEIGHT,
    ) as renderer:
        for k in range(10):
            t = time.perf_counter()
            for delta in deltas[bounds[k] : bounds[k + 1]]:
                for event in parser.feed(delta):
                    renderer.handle(event)
                renderer.add_tokens(1)
            segments.append(time.perf_counter() - t)
        for event in parser.close("stop"):
            renderer.handle(event)
    return time.perf_counter() - start, segments, renderer


def time_full_render(doc: str) -> float:
    """Seconds for one `console.print(Markdown(doc))` of the whole document."""
    console = Console(file=NullWriter(), force_terminal=True, width=WIDTH, height=HEIGHT)
    start = time.perf_counter()
    console.print(Markdown(doc))
    return time.perf_counter() - start


def run_naive(doc: str, fraction: float) -> float:
    """Seconds to re-render the accumulated Markdown at each newline of doc[:fraction]."""
    console = Console(file=NullWriter(), force_terminal=True, width=WIDTH, height=HEIGHT)
    prefix = doc[: int(len(doc) * fraction)]
    start = time.perf_counter()
    for i, ch in enumerate(prefix):
        if ch == "\n":
            console.print(Markdown(prefix[: i + 1]))
    return time.perf_counter() - start


def main() -> None:
    doc = build_document()
    words = count_words(doc)
    tokens = round(words * TOKENS_PER_WORD)
    stream = "<think>Plan: a long report in sections, with lists.</think>\n<answer>\n" + doc
    deltas = cut(stream)
    print(
        f"document: {words:,} words, {len(doc):,} chars, {doc.count(chr(10)):,} lines, "
        f"~{tokens:,} tokens (1.3 per word), {len(deltas):,} deltas of 1-4 chars"
    )

    runs = [run_pipeline(deltas) for _ in range(RUNS)]
    for _, _, renderer in runs:
        assert renderer.words == words, (renderer.words, words)
    total = min(t for t, _, _ in runs)
    segments = [min(s[k] for _, s, _ in runs) for k in range(10)]
    engine = tokens / 100
    ratio = total / engine
    per_delta = [s / (len(deltas) / 10) * 1e6 for s in segments]
    growth = segments[-1] / segments[0]
    print(
        f"pipeline: {total:.3f} s total (best of {RUNS}); a 100 tok/s engine needs {engine:.1f} s"
    )
    print(
        f"per delta by 10% segment (us, best of {RUNS}): " + " ".join(f"{x:.1f}" for x in per_delta)
    )

    naive = run_naive(doc, NAIVE_PREFIX)
    naive_full = naive / NAIVE_PREFIX**2
    print(
        f"naive (re-render everything per newline): {naive:.2f} s on the first "
        f"{NAIVE_PREFIX:.0%} of the document, quadratic extrapolation to all of it: "
        f"{naive_full:.0f} s, ratio={naive_full / engine:.2f}"
    )
    full = time_full_render(doc)
    print(
        f"naive per delta (re-render at every one of the {len(deltas):,} deltas): about "
        f"{len(deltas):,} x {full * 1e3:.0f} ms (one full render) / 2 = "
        f"{len(deltas) * full / 2:.0f} s, ratio={len(deltas) * full / 2 / engine:.1f}"
    )
    print(f"render: ratio={ratio:.4f} goal<=0.01 growth={growth:.2f} goal<=2")


if __name__ == "__main__":
    main()
