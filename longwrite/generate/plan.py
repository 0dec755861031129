"""The outline of a sectioned document: read from the model's plan, asked for, or even.

LongWriter-Zero plans in its own thinking; for a document longer than one pass that plan is
the outline we write to. We read it from the thinking as Markdown headings (the shallowest
level that has at least two) or, failing that, numbered parts ("1. Title", "Part 2: Title",
"Chapter 3 - Title", and as a Chinese plan numbers them: "一、", "第二章：", "3、"), with a
word count where the model gave one ("(800 words)", "~1,200 words", "（约3000字）"). Parts
without a count get the mean of the counted ones; the counts are then scaled to sum to the
target, because a model's arithmetic rarely adds up to what was asked.
A user's outline (`--plan FILE`) is Markdown headings with the same optional counts.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

SOURCES = ("plan", "outline", "even", "file")
MIN_PARTS = 2

_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.+?)\s*#*\s*$")
_CN_NUMBER = "[一二三四五六七八九十百零〇\\d]+"
_NUMBERED = re.compile(
    r"^\s*(?:[-*]\s+)?(?:\*\*)?(?:(?:part|section|chapter)\s+(?:\d+|[ivxlc]+)\s*[:.\-–—)]"
    r"|\d{1,2}[.)、]"  # 1. 2) 3、
    rf"|第{_CN_NUMBER}[章节部篇][分]?[:：、.\s]?"  # 第一章 第2部分
    rf"|{_CN_NUMBER}、)\s*(.+?)\s*$",  # 一、
    re.IGNORECASE,
)
# "(800 words)", "~1,200 words", "（约3000字）", "3,000字"
_WORDS = re.compile(
    r"[(\[（~≈]?\s*(?:about\s+|approx\.?\s+|~|约|大约)?(\d{1,3}(?:,\d{3})+|\d+)\s*"
    r"(?:words?\b|字)\s*[)\]）]?",
    re.IGNORECASE,
)
_TRAIL = " \t-–—:,;*_：，、"


@dataclass(frozen=True)
class Part:
    """One section: its heading (without `#`s) and its word budget."""

    heading: str
    words: int


@dataclass(frozen=True)
class Outline:
    """The sections to write, where they came from, and the plan that is their thinking."""

    parts: tuple[Part, ...]
    source: str  # one of SOURCES
    thinking: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def words(self) -> int:
        return sum(p.words for p in self.parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "parts": [asdict(p) for p in self.parts],
            "words": self.words,
            "thinking": self.thinking,
        }

    def markdown(self) -> str:
        """The outline as `--plan FILE` reads it."""
        return "".join(f"## {p.heading} ({p.words:,} words)\n" for p in self.parts)


def _split_count(text: str) -> tuple[str, int | None]:
    """("Methods", 800) from "Methods (800 words)"; the title keeps everything else."""
    m = _WORDS.search(text)
    if m is None:
        return text.strip(_TRAIL), None
    title = (text[: m.start()] + text[m.end() :]).strip(_TRAIL)
    title = re.sub(r"\s*[(\[（]\s*[)\]）]\s*", " ", title).strip(_TRAIL)
    return title, int(m.group(1).replace(",", ""))


def _clean(title: str) -> str:
    return title.replace("**", "").strip(_TRAIL).strip()


def _headings(lines: list[str]) -> list[tuple[str, int | None]]:
    found = [(len(m.group(1)), m.group(2)) for m in map(_HEADING.match, lines) if m]
    for level in sorted({lv for lv, _ in found}):
        at = [text for lv, text in found if lv == level]
        if len(at) >= MIN_PARTS:
            return [_split_count(t) for t in at]
    return []


def read_outline(text: str) -> list[tuple[str, int | None]]:
    """The (title, words or None) parts that `text` outlines; [] when it has no outline."""
    lines = text.replace("\r\n", "\n").split("\n")
    parts = _headings(lines)
    if not parts:
        parts = [_split_count(m.group(1)) for m in map(_NUMBERED.match, lines) if m]
    parts = [(_clean(t), w) for t, w in parts]
    parts = [(t, w) for t, w in parts if t]
    return parts if len(parts) >= MIN_PARTS else []


def scale(parts: list[tuple[str, int | None]], target: int) -> tuple[Part, ...]:
    """Word budgets summing exactly to `target`, in the proportions the outline gave."""
    known = [w for _, w in parts if w]
    fill = sum(known) / len(known) if known else 1.0
    weights = [float(w) if w else fill for _, w in parts]
    total = sum(weights)
    words = [int(target * w / total) for w in weights]
    for i in range(target - sum(words)):  # the rounding remainder, one word each
        words[i % len(words)] += 1
    return tuple(Part(t, w) for (t, _), w in zip(parts, words, strict=True))


def even(target: int, n: int) -> tuple[Part, ...]:
    """`n` equal parts with neutral headings (no outline could be had)."""
    return scale([(f"Part {k}", None) for k in range(1, n + 1)], target)


def user_outline(text: str, target: int | None) -> tuple[Part, ...]:
    """A user's outline: Markdown headings with optional "(N words)", at the shallowest level
    that has two or more (a lone `# Title` above them is the title, not a section). Without a
    target the counts are kept as given (parts without one get the mean)."""
    lines = text.splitlines()
    parts = _headings(lines) or [
        _split_count(m.group(2)) for m in map(_HEADING.match, lines) if m
    ]  # a single heading: one section
    parts = [(_clean(t), w) for t, w in parts if _clean(t)]
    if not parts:
        return ()
    if target is None:
        known = [w for _, w in parts if w]
        target = sum(known) + (len(parts) - len(known)) * (
            sum(known) // len(known) if known else 1000
        )
    return scale(parts, target)
