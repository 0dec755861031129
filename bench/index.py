"""Benchmark: indexing a folder of documents, and retrieving from it, for `--source`.

Run from the repository root: `python bench/index.py`. The bench writes 2,000 documents into
a temporary folder, about 4 million words in all: Markdown and plain text of 2,000 words
each (a tenth of them Chinese, 2,000 characters each), paragraphs of sentences drawn from a
vocabulary of 20,000 made-up words with Zipf frequencies, as natural text has (so BM25's
posting lists are as long for common words as in real prose). It then indexes the folder
with the real code (`sources.library.build`: walk, read, extract, cut into passages, FTS5),
in a temporary LONGWRITE_HOME, and runs 100 queries (`sources.retrieve.Retriever.search`,
which also loads the passages found): 70 short ones of 3-8 words, as a request is, and 30 of
about 40 words, as a section's title and plan notes are; a tenth of them Chinese.

Printed figures: the documents, words and passages, indexing seconds, a re-index of the
unchanged folder, query times; then
docs_per_s D = documents / indexing seconds (the first index, everything read);
query_ms Q = mean milliseconds per query.
Goal D >= 200 (a folder of 2,000 papers indexed in 10 s) and Q <= 50 (retrieval for a
40-section report costs 2 s, nothing beside the writing).
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

DOCS = 2_000
WORDS_PER_DOC = 2_000
VOCABULARY = 20_000
QUERIES = 100
SEED = 0
HANZI = [chr(c) for c in range(0x4E00, 0x4E00 + 3_000)]


def vocabulary(rng: random.Random) -> tuple[list[str], list[float]]:
    """Made-up words of 2-11 letters and their Zipf weights (1/rank)."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    words: set[str] = set()
    while len(words) < VOCABULARY:
        words.add("".join(rng.choices(letters, k=rng.randint(2, 11))))
    ordered = sorted(words)
    rng.shuffle(ordered)
    return ordered, [1.0 / (rank + 1) for rank in range(VOCABULARY)]


def english(rng: random.Random, words: list[str], weights: list[float]) -> str:
    drawn = rng.choices(words, weights, k=WORDS_PER_DOC)
    paragraphs, at = [], 0
    while at < len(drawn):
        size = rng.randint(60, 160)
        sentences, part = [], drawn[at : at + size]
        for i in range(0, len(part), 15):
            sentence = " ".join(part[i : i + 15])
            sentences.append(sentence[:1].upper() + sentence[1:] + ".")
        paragraphs.append(" ".join(sentences))
        at += size
    return "\n\n".join(paragraphs)


def chinese(rng: random.Random, weights: list[float]) -> str:
    chars = rng.choices(HANZI, weights[: len(HANZI)], k=WORDS_PER_DOC)
    paragraphs = []
    for at in range(0, len(chars), 150):
        part = chars[at : at + 150]
        paragraphs.append("。".join("".join(part[i : i + 25]) for i in range(0, len(part), 25)))
    return "\n\n".join(p + "。" for p in paragraphs)


def write_corpus(folder: Path, rng: random.Random) -> tuple[int, list[str], list[float]]:
    words, weights = vocabulary(rng)
    total = 0
    for n in range(DOCS):
        sub = folder / f"part{n % 20:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        if n % 10 == 9:
            text = chinese(rng, weights)
            (sub / f"doc{n:04d}.txt").write_text(text, encoding="utf-8")
        elif n % 2:
            text = f"# Document {n}\n\n" + english(rng, words, weights)
            (sub / f"doc{n:04d}.md").write_text(text, encoding="utf-8")
        else:
            (sub / f"doc{n:04d}.txt").write_text(english(rng, words, weights), encoding="utf-8")
        total += WORDS_PER_DOC
    return total, words, weights


def queries(rng: random.Random, words: list[str], weights: list[float]) -> list[str]:
    out = []
    for k in range(QUERIES):
        if k % 10 == 9:
            out.append("".join(rng.choices(HANZI, weights[: len(HANZI)], k=rng.randint(4, 12))))
        elif k % 10 < 3:
            out.append(" ".join(rng.choices(words, weights, k=40)))  # a section's notes
        else:
            out.append(" ".join(rng.choices(words, weights, k=rng.randint(3, 8))))
    return out


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["LONGWRITE_HOME"] = str(Path(tmp) / "home")
        from longwrite.sources.library import build, resolve_paths
        from longwrite.sources.retrieve import Retriever

        rng = random.Random(SEED)
        folder = Path(tmp) / "corpus"
        total, words, weights = write_corpus(folder, rng)
        roots = resolve_paths([str(folder)])
        started = time.perf_counter()
        summary = build(roots, "bench")
        index_s = time.perf_counter() - started
        started = time.perf_counter()
        again = build(roots, "bench")
        refresh_s = time.perf_counter() - started
        assert summary.read == DOCS and again.unchanged == DOCS, (summary, again)
        retriever = Retriever(["bench"])
        asked = queries(rng, words, weights)
        retriever.search(asked[0])  # the first query opens the file's pages
        times, found = [], 0
        for query in asked:
            started = time.perf_counter()
            hits = retriever.search(query)
            times.append((time.perf_counter() - started) * 1000)
            found += bool(hits)
        retriever.close()
    docs_per_s = DOCS / index_s
    query_ms = statistics.mean(times)
    print(f"documents: {DOCS:,} ({total:,} words), {summary.passages:,} passages")
    print(f"index: {index_s:.2f} s; re-index, nothing changed: {refresh_s:.2f} s")
    p95 = sorted(times)[int(0.95 * len(times)) - 1]
    print(f"queries: {QUERIES} ({found} found passages), mean {query_ms:.1f} ms, "
          f"p95 {p95:.1f} ms, max {max(times):.1f} ms")  # fmt: skip
    print(f"index: docs_per_s={docs_per_s:.0f} query_ms={query_ms:.1f} goal: D>=200, Q<=50")


if __name__ == "__main__":
    main()
