"""Benchmark: score a GRPO group's worth of long completions with `score_completion`.

Run from the repository root: `python bench/rewards.py`. It builds 64 completions of 10,000
answer words each (a 300-word plan in `<think>`, then the answer: half honest English, a
quarter English padded with lightly altered repeats, a quarter Chinese), scores them all
(think/answer split, format, repetition, `count_words`, length) in one process on one core,
then does the same with 20,000-word answers.

Printed figures (each time is the best of 3 runs; the machine is shared and noisy):
- seconds for 64 x 10k words, and for 64 x 20k words, and their ratio (about 2 when the
  scoring is linear in the text length);
- the mean repetition penalty per kind of answer, as a sanity check of the metric;
- last line: `rewards: ratio=R goal<=1.0`, R = seconds for 64 x 10k words. Goal R <= 1.0:
  scoring a group must cost far less than generating it.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from longwrite.length.targets import WordRange  # noqa: E402
from longwrite.scoring.rewards import score_completion  # noqa: E402

GROUP = 64
RUNS = 3
KINDS = ("english", "english", "padded", "chinese")  # cycled over the group

SYLLABLES = ("ka", "lo", "mi", "ren", "sta", "vor", "pel", "tur", "dan", "shi")
SYLLABLES += ("qua", "bel", "nor", "fin", "gal", "es", "ot", "ri", "um", "ax")
CJK_POOL = [chr(0x4E00 + i) for i in range(0, 20_000, 7)]  # ~2,900 distinct characters


def vocabulary(rng: random.Random, size: int = 5_000) -> list[str]:
    """Made-up words of 1-4 syllables (letters only, so each one counts as a word)."""
    words = {"".join(rng.choices(SYLLABLES, k=rng.randint(1, 4))) for _ in range(size * 2)}
    return sorted(words)[:size]


def english(rng: random.Random, vocab: list[str], words: int) -> str:
    paragraphs: list[str] = []
    left = words
    while left > 0:
        k = min(left, rng.randint(60, 160))
        paragraphs.append(" ".join(rng.choices(vocab, k=k)) + ".")
        left -= k
    return "\n\n".join(paragraphs)


def padded(rng: random.Random, vocab: list[str], words: int) -> str:
    """30% original paragraphs, then copies of them with one word in ten replaced."""
    originals = english(rng, vocab, int(words * 0.3)).split("\n\n")
    paragraphs = list(originals)
    left = words - int(words * 0.3)
    while left > 0:
        copy = rng.choice(originals).rstrip(".").split()[:left]
        for i in range(0, len(copy), 10):
            copy[i] = rng.choice(vocab)
        paragraphs.append(" ".join(copy) + ".")
        left -= len(copy)
    return "\n\n".join(paragraphs)


def chinese(rng: random.Random, words: int) -> str:
    paragraphs: list[str] = []
    left = words
    while left > 0:
        k = min(left, rng.randint(150, 400))
        chars = rng.choices(CJK_POOL, k=k)
        for i in range(20, k, 20):
            chars[i] += "，"
        paragraphs.append("".join(chars) + "。")
        left -= k
    return "\n".join(paragraphs)


def completion(kind: str, rng: random.Random, vocab: list[str], words: int) -> str:
    plan = " ".join(rng.choices(vocab, k=300))
    if kind == "english":
        answer = english(rng, vocab, words)
    elif kind == "padded":
        answer = padded(rng, vocab, words)
    else:
        answer = chinese(rng, words)
    return f" <think>{plan}</think>\n<answer>{answer}"


def build_group(words: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    vocab = vocabulary(rng)
    kinds = [KINDS[i % len(KINDS)] for i in range(GROUP)]
    return [(kind, completion(kind, rng, vocab, words)) for kind in kinds]


def time_group(group: list[tuple[str, str]], target: WordRange) -> tuple[float, dict[str, float]]:
    """Best-of-RUNS seconds to score the group, and the mean repetition per kind."""
    best = float("inf")
    penalties: dict[str, list[float]] = {}
    for _ in range(RUNS):
        start = time.perf_counter()
        scores = [score_completion(text, target) for _, text in group]
        best = min(best, time.perf_counter() - start)
    for (kind, _), s in zip(group, scores, strict=True):
        penalties.setdefault(kind, []).append(s.repetition)
    return best, {k: sum(v) / len(v) for k, v in penalties.items()}


def main() -> None:
    results = {}
    for words in (10_000, 20_000):
        group = build_group(words, seed=words)
        target = WordRange(int(words * 0.9), int(words * 1.1))
        seconds, penalties = time_group(group, target)
        results[words] = seconds
        kinds = ", ".join(f"{k} {v:.3f}" for k, v in penalties.items())
        print(f"{GROUP} x {words:,} words: {seconds:.3f} s   mean repetition: {kinds}")
    print(f"20k/10k time ratio: {results[20_000] / results[10_000]:.2f} (linear: about 2)")
    print(f"rewards: ratio={results[10_000]:.3f} goal<=1.0")


if __name__ == "__main__":
    main()
