"""The passages most relevant to a query, from one or more indexes, within a token budget.

Ranking: BM25 from each index's FTS5 table (`rank`), and with an embedder the nearest
passages by cosine; the lists are fused by reciprocal rank (RRF, k = 60: a passage's score
is the sum of 1 / (60 + its rank) over the lists it is in), which needs no calibration
between BM25 scores of different indexes or between BM25 and cosine. With one index and no
embedder that is simply BM25's order.

Query terms: a section's query (its title and plan notes) has dozens of words, and a term
in most passages would make FTS5 score nearly all of them; `telling` keeps the rarest terms
(by the index's own vocabulary), which carry BM25's ranking anyway.

Relevance floor: a passage whose BM25 score is below `FLOOR` of the best one's matched only
a stray common word; it is not offered, so a narrow query fills less than its share rather
than padding the prompt with noise (the share is a ceiling, not a quota).

Choosing: passages are taken in rank order while they fit the budget (one that does not fit
is passed over for smaller ones after it), duplicates (the same text in two files) once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from longwrite.sources.store import IndexFile, Passage
from longwrite.sources.terms import match_expression, query_terms

CANDIDATES = 80  # per index and per ranking, before fusion
RRF_K = 60
FLOOR = 0.25  # of the best BM25 score in an index
MAX_PASSAGES = 60  # in one prompt, however large the share
COMMON = 0.5  # a term in more than this share of an index's passages is left out of a query
MAX_TERMS = 16  # the rarest terms of a query that are asked
FALLBACK_TERMS = 3  # asked when every term is common


@dataclass(frozen=True)
class Hit:
    passage: Passage
    score: float  # fused (RRF)


class Retriever:
    """The indexes of a run's `--source`s, searched together (one connection each, opened
    here; usable from one thread at a time)."""

    def __init__(self, names: list[str], embed_server: str | None = None) -> None:
        from longwrite.sources.library import open_index

        self.names = names
        self.indexes = [open_index(name) for name in names]
        self.embedder = None
        self.dense = []
        if embed_server:
            from longwrite.sources.embed import DenseIndex, Embedder, fill_vectors

            self.embedder = Embedder(embed_server)
            for index in self.indexes:
                fill_vectors(index, self.embedder)
            self.dense = [DenseIndex(index, self.embedder.model) for index in self.indexes]

    def close(self) -> None:
        for index in self.indexes:
            index.close()
        if self.embedder is not None:
            self.embedder.close()

    def search(self, query: str, limit: int = CANDIDATES) -> list[Hit]:
        """The best `limit` passages for `query`, best first."""
        terms = query_terms(query)
        rankings: list[tuple[IndexFile, list[int]]] = []
        for index in self.indexes:
            found = index.search(match_expression(telling(index, terms)), CANDIDATES)
            if found:
                best = found[0][1]
                rankings.append((index, [pid for pid, s in found if s >= FLOOR * best]))
        if self.embedder is not None and query.strip():
            vector = self.embedder.embed([query])[0]
            for index, dense in zip(self.indexes, self.dense, strict=True):
                rankings.append((index, [pid for pid, _ in dense.search(vector, CANDIDATES)]))
        fused: dict[tuple[int, int], float] = {}
        for index, ids in rankings:
            at = self.indexes.index(index)
            for rank, pid in enumerate(ids):
                fused[(at, pid)] = fused.get((at, pid), 0.0) + 1.0 / (RRF_K + rank + 1)
        order = sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
        by_index: dict[int, list[int]] = {}
        for (at, pid), _ in order:
            by_index.setdefault(at, []).append(pid)
        loaded = {at: self.indexes[at].passages(ids) for at, ids in by_index.items()}
        hits: list[Hit] = []
        for (at, pid), score in order:
            passage = loaded[at].get(pid)
            if passage is not None:
                hits.append(Hit(passage, score))
        return hits


def telling(index: IndexFile, terms: list[str]) -> list[str]:
    """The terms worth asking `index` about: those in at most `COMMON` of its passages, the
    rarest `MAX_TERMS` of them (or, when every term is common, the rarest few). A term in
    most passages gets next to no weight from BM25, but would make FTS5 score nearly every
    passage: leaving it out keeps a query fast and its ranking the same. A single CJK
    character (a prefix query) is always kept."""
    prefixes = [t for t in terms if len(t) == 1]
    words = [t for t in terms if len(t) > 1]
    df = index.frequencies(words)
    present = sorted((w for w in words if df[w] > 0), key=lambda w: df[w])
    size = index.size() if present else 0
    rare = [w for w in present if df[w] <= COMMON * size] or present[:FALLBACK_TERMS]
    return rare[:MAX_TERMS] + prefixes


def choose(
    hits: list[Hit], budget: int, cost: Callable[[Passage], int] | None = None
) -> list[Passage]:
    """Passages in rank order within `budget` tokens (`cost`: a passage's tokens as shown in
    the prompt; default its estimate), each text once, at most `MAX_PASSAGES`."""
    cost = cost or (lambda p: p.tokens + 16)
    chosen: list[Passage] = []
    seen: set[str] = set()
    used = 0
    for hit in hits:
        digest = hashlib.sha256(" ".join(hit.passage.text.split()).encode()).hexdigest()
        if digest in seen:
            continue
        need = cost(hit.passage)
        if used + need > budget:
            continue
        seen.add(digest)
        chosen.append(hit.passage)
        used += need
        if len(chosen) >= MAX_PASSAGES:
            break
    return chosen
