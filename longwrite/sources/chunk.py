"""Blocks into passages of a few hundred tokens, cut at paragraph ends.

A passage is what retrieval returns and what a citation points at, so it should hold one
idea with its context: a few paragraphs, never half a sentence. Paragraphs (blank-line
separated) are gathered until the passage has `TARGET_TOKENS` or the next one would take it
past `MAX_TOKENS`; a scrap left at a block's end joins the passage before it. A paragraph
longer than `MAX_TOKENS` on its own (a PDF page whose text layer has no blank lines, a wall
of text) is cut at sentence ends, and a sentence longer still at spaces (or anywhere, for
Chinese without punctuation).

Tokens are estimated, not counted, since indexing must not load a tokenizer: about 1.4 per
English word and one per CJK character (`length.budget`'s figures for Qwen-family
tokenizers, rounded up), plus one per digit (Qwen splits numbers into digits). The prompt's
share is checked with the engine's own tokenizer when passages are chosen
(`generate.grounded`), so an estimate that runs high only makes passages a little shorter.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from longwrite.sources.extract import Block

TARGET_TOKENS = 300  # a passage closes once it has this many and the next paragraph would pass
MIN_TOKENS = 120
MAX_TOKENS = 420
_PARAGRAPHS = re.compile(r"\n[ \t]*\n+")
_SENTENCE_END = re.compile(r"(?<=[.!?。！？；…])[\"'”’)\]]*\s*")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\u3040-\u30ff\uac00-\ud7af]")
_DIGIT = re.compile(r"[0-9]")


def estimate_tokens(text: str) -> int:
    """A slightly high estimate of `text`'s tokens for a Qwen-family tokenizer: 1.4 a
    space-separated word, one a CJK character, one a digit (a run of hanzi or a number is
    also counted as a word: high, on purpose). Cheap: indexing calls it on every paragraph.

    >>> estimate_tokens("The quick brown fox."), estimate_tokens("城市热岛 in 2020")
    (6, 13)
    """
    cjk = len(_CJK.findall(text)) if _CJK.search(text) else 0
    digits = sum(map(text.count, "0123456789")) if _DIGIT.search(text) else 0
    return cjk + digits + (len(text.split()) * 14 + 9) // 10


@dataclass(frozen=True)
class Piece:
    """One passage before it is stored: where it is, its text, its estimated tokens."""

    locator: str
    text: str
    tokens: int


def split_long(paragraph: str, limit: int = MAX_TOKENS) -> list[tuple[str, int]]:
    """A paragraph as pieces of at most `limit` tokens, each with its estimate: cut at
    sentence ends (then spaces, then anywhere) when it is longer."""
    whole = estimate_tokens(paragraph)
    if whole <= limit:
        return [(paragraph, whole)]
    sentences = [s for s in _SENTENCE_END.split(paragraph) if s] or [paragraph]
    out: list[tuple[str, int]] = []
    buf, size = "", 0
    for sentence in sentences:
        for part in _hard_split(sentence, limit):
            n = estimate_tokens(part)
            if buf and size + n > limit:
                out.append((buf.strip(), size))
                buf, size = "", 0
            glue = not buf or buf.endswith((" ", "\n")) or _CJK.match(part)
            buf += part if glue else " " + part
            size += n
    if buf.strip():
        out.append((buf.strip(), size))
    return out


def _hard_split(sentence: str, limit: int) -> Iterator[str]:
    """A sentence over `limit` tokens in pieces at spaces, or every `limit` characters."""
    if estimate_tokens(sentence) <= limit:
        yield sentence
        return
    words = sentence.split(" ")
    if len(words) > 1:
        buf = ""
        for word in words:
            if buf and estimate_tokens(buf + " " + word) > limit:
                yield buf
                buf = ""
            buf = f"{buf} {word}" if buf else word
        if buf:
            yield from _hard_split(buf, limit) if " " not in buf else [buf]
        return
    step = max(limit * 9 // 10, 1)  # no spaces: CJK, or one huge token (room for the estimate)
    for i in range(0, len(sentence), step):
        yield sentence[i : i + step]


def passages(blocks: Iterable[Block]) -> list[Piece]:
    """Every block's paragraphs gathered into passages (none spans two blocks)."""
    out: list[Piece] = []
    for block in blocks:
        buf: list[str] = []
        size = 0
        for raw in _PARAGRAPHS.split(block.text):
            for para, n in split_long(raw.strip()):
                if not para:
                    continue
                if buf and size + n > MAX_TOKENS or (buf and size >= TARGET_TOKENS):
                    out.append(Piece(block.locator, "\n\n".join(buf), size))
                    buf, size = [], 0
                buf.append(para)
                size += n
        if buf:
            scrap = size < MIN_TOKENS // 2 and bool(out) and out[-1].locator == block.locator
            if scrap and out[-1].tokens + size <= MAX_TOKENS:  # joins the passage before it
                last = out.pop()
                out.append(Piece(last.locator, f"{last.text}\n\n" + "\n\n".join(buf),
                                 last.tokens + size))  # fmt: skip
            else:
                out.append(Piece(block.locator, "\n\n".join(buf), size))
    return out
