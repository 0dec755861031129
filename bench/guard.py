"""Benchmark: what the loop guard costs while a model writes at 100 tokens/s.

Run from the repository root: `python bench/guard.py` (a few seconds).

The guard (`generate.guards.GuardSink` + `LoopDetector`) sits between the parser and the
display, so its work is paid per delta. The stream: a 10,000-word answer of varied
paragraphs (seeded random prose, no loops), cut into deltas of 1-7 characters, one token
each. The clock is simulated: generation time is tokens / 100 s (the real pace), and the
guard's CPU time over the whole stream is measured (best of RUNS) into a sink that does
nothing. R = guard CPU seconds / generation seconds, goal <= 0.01. Linear: the same for
40,000 words, growth G = CPU(40,000) / CPU(10,000), goal <= 4.5 (4 is linear).

Precision and recall on real text (tests/guard_corpus.py): F of the N human-written structured
documents (tables, schedules, itineraries, clauses, code, changelogs, songs; English, Chinese,
Russian, Japanese, Korean, Greek; package docs and licences) are cut (goal 0), and M of the K
loops built from them are not cut where they begin (goal 0).
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

from longwrite.generate.guards import GuardSink, LoopDetector
from longwrite.generate.parser import AnswerDelta

RUNS = 3
TOKENS_PER_SECOND = 100


class _Null:
    def handle(self, event: object) -> None:
        pass

    def add_tokens(self, n: int) -> None:
        pass


def prose(words: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    vocab = [
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9)))
        for _ in range(5000)
    ]
    paragraphs, n = [], 0
    while n < words:
        size = rng.randint(40, 160)
        paragraphs.append(" ".join(rng.choice(vocab) for _ in range(size)) + ".")
        n += size
    return "\n\n".join(paragraphs)


def deltas(text: str, seed: int = 1) -> list[str]:
    rng, out, i = random.Random(seed), [], 0
    while i < len(text):
        k = rng.randint(1, 7)
        out.append(text[i : i + k])
        i += k
    return out


def guard_seconds(pieces: list[str]) -> float:
    best = float("inf")
    for _ in range(RUNS):
        sink = GuardSink(_Null(), LoopDetector())
        start = time.process_time()
        for piece in pieces:
            sink.handle(AnswerDelta(piece))
        assert sink.loop is None, "honest prose must not trip the guard"
        best = min(best, time.process_time() - start)
    return best


def precision_recall() -> tuple[list[str], list[str], int, int]:
    """(documents cut, loops missed, corpus size, loop count) on tests/guard_corpus.py."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from guard_corpus import CORPUS, LOOPS, stream

    cut = [name for name, doc in CORPUS.items() if stream(doc) is not None]
    missed = [n for n, (kept, loop) in LOOPS.items() if stream(kept + loop) != len(kept)]
    return cut, missed, len(CORPUS), len(LOOPS)


def main() -> None:
    small, large = deltas(prose(10_000)), deltas(prose(40_000, seed=2))
    cpu_small, cpu_large = guard_seconds(small), guard_seconds(large)
    ratio = cpu_small / (len(small) / TOKENS_PER_SECOND)
    growth = cpu_large / cpu_small
    print(f"10,000 words: {len(small):,} tokens, guard {cpu_small:.3f} s CPU")
    print(f"40,000 words: {len(large):,} tokens, guard {cpu_large:.3f} s CPU (growth {growth:.2f})")
    cut, missed, n, k = precision_recall()
    for name in cut:
        print(f"false cut: {name}")
    for name in missed:
        print(f"missed loop: {name}")
    print(
        f"guard: false_cuts={len(cut)}/{n} missed={len(missed)}/{k} ratio={ratio:.5f} "
        "goal: F=0, M=0, R<=0.01"
    )


if __name__ == "__main__":
    main()
