"""The outline of a sectioned document: its parts, their budgets, and a user's plan.

The plan a model writes is read by `generate.outline_read` (which finds the outline in it)
and `generate.outline_lines` (which reads one line: title alone, count); this module holds the
typed result (`Part`, `Outline`), scales the counts to the target (a model's arithmetic rarely
adds up, and many parts have no count: they get the mean), and reads a user's `--plan FILE`:
its `##` headings (or its list), a lone `# Title` being the document's title, each part keeping
the text under it as its notes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from longwrite.generate.outline_lines import title_of
from longwrite.generate.outline_read import (
    MIN_PARTS,
    find_outline,
    heading_runs,
    line_runs,
    lists,
    markdown,
    normalized,
    usable,
)

SOURCES = ("plan", "outline", "even", "file")


@dataclass(frozen=True)
class Part:
    """One section: its heading (without `#`s), its word budget, and the plan's notes for it."""

    heading: str
    words: int
    notes: str = ""


@dataclass(frozen=True)
class Outline:
    """The sections to write, where they came from, the plan that is their thinking, and the
    document's title (empty: none known)."""

    parts: tuple[Part, ...]
    source: str  # one of SOURCES
    thinking: str = ""
    title: str = ""

    @property
    def words(self) -> int:
        return sum(p.words for p in self.parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "title": self.title,
            "parts": [asdict(p) for p in self.parts],
            "words": self.words,
            "thinking": self.thinking,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Outline:
        parts = tuple(
            Part(p["heading"], p["words"], p.get("notes", "")) for p in data.get("parts", [])
        )
        return cls(parts, data["source"], data.get("thinking", ""), data.get("title", ""))

    def markdown(self) -> str:
        """The outline as `--plan FILE` reads it."""
        head = f"# {self.title}\n\n" if self.title else ""
        return head + "".join(f"## {p.heading} ({p.words:,} words)\n" for p in self.parts)


@dataclass(frozen=True)
class Read:
    """Parts read from text: (title, count or None, notes) each."""

    parts: list[tuple[str, int | None, str]]

    def titles(self) -> list[str]:
        return [t for t, _, _ in self.parts]


def read_outline(text: str) -> list[tuple[str, int | None]]:
    """The (title, words or None) parts of the outline in `text`; [] when it has none."""
    return [(t, w) for t, w, _ in find_outline(text)]


def read_parts(text: str) -> Read:
    """The outline in `text`, with each part's notes (the text under it in the plan)."""
    return Read(find_outline(text))


# -- budgets -------------------------------------------------------------------------------------


def scale(parts: list[tuple[str, int | None]], target: int) -> tuple[Part, ...]:
    """Word budgets summing exactly to `target`, in the proportions the outline gave."""
    return scale_parts([(t, w, "") for t, w in parts], target)


def scale_parts(parts: list[tuple[str, int | None, str]], target: int) -> tuple[Part, ...]:
    """`scale` keeping each part's notes."""
    known = [w for _, w, _ in parts if w]
    fill = sum(known) / len(known) if known else 1.0
    weights = [float(w) if w else fill for _, w, _ in parts]
    total = sum(weights)
    words = [int(target * w / total) for w in weights]
    for i in range(target - sum(words)):  # the rounding remainder, one word each
        words[i % len(words)] += 1
    return tuple(Part(t, w, n) for (t, _, n), w in zip(parts, words, strict=True))


def even(target: int, n: int, language: str = "en") -> tuple[Part, ...]:
    """`n` equal parts with neutral headings (no outline could be had)."""
    name = "第{k}部分" if language == "zh" else "Part {k}"
    return scale([(name.format(k=k), None) for k in range(1, n + 1)], target)


# -- a user's plan -------------------------------------------------------------------------------


@dataclass(frozen=True)
class UserPlan:
    """`--plan FILE`: its title (a lone `#` heading), its parts and its whole text."""

    title: str
    parts: tuple[Part, ...]
    text: str


def user_plan(text: str, target: int | None) -> UserPlan:
    """A user's plan: the sections are its `##` headings (the shallowest level that has two or
    more, a lone `# Title` above them being the document's title) or, failing those, its
    top-level list or numbered lines; each part keeps the text under it as its notes. Without
    a target the counts are kept as given (parts without one get the mean, or 1,000 words)."""
    text = normalized(text)
    tokens = markdown().parse(text)
    lines = text.split("\n")
    tops = [
        tokens[i + 1].content
        for i, t in enumerate(tokens)
        if t.type == "heading_open" and t.tag == "h1" and t.level == 0
    ]
    title = title_of(tops[0])[0] if len(tops) == 1 else ""
    runs = [c for c in heading_runs(tokens, lines) if c.parts]
    if title:  # the lone title is not a section
        runs = [c for c in runs if not (len(c.parts) == 1 and c.parts[0][0] == title)]
    chosen = next((c for c in runs if len(c.parts) >= MIN_PARTS), None)
    if chosen is None:
        listed = [c for c in lists(tokens, lines) + line_runs(tokens, lines) if usable(c)]
        chosen = max(listed, key=lambda c: c.end) if listed else (runs[0] if runs else None)
    if chosen is None:
        return UserPlan(title, (), text)
    parts = [(t, w, n) for t, w, n in chosen.parts if t]
    if not parts:
        return UserPlan(title, (), text)
    if target is None:
        known = [w for _, w, _ in parts if w]
        mean = sum(known) // len(known) if known else 1000
        target = sum(w or mean for _, w, _ in parts)
    return UserPlan(title, scale_parts(parts, target), text)


def user_outline(text: str, target: int | None) -> tuple[Part, ...]:
    """The parts of a user's plan (see `user_plan`)."""
    return user_plan(text, target).parts
