"""Citations: passages numbered into the prompt, `[n]` read back, checked and listed.

- `Numbering`: a passage gets a number the first time a prompt of the run shows it, and keeps
  it (a passage that two sections are given is `[7]` in both), so numbers name passages
  across the whole document.
- `ask_with_sources`: the user's request with the numbered passages and the instruction to
  cite them, in our template `prompts/sources_{en,zh}.txt`. This text is what goes into the
  model's own template as the user's request (`{question}`), so the think templates stay as
  they are, byte for byte.
- `CitationFilter`: the answer as it streams, with every number that names no passage of the
  run removed (and counted): `[9]` goes with the space before it, `[2, 9]` becomes `[2]`.
  It works on whole lines (the loop guard already holds text back a paragraph at a time, so
  nothing is shown later than it was), and leaves fenced and inline code alone.
- `references`: the References section listing every cited passage with its file, its page,
  heading or line, and the sentence of it that shares most words with the text citing it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from longwrite.sources.store import Passage
from longwrite.sources.terms import query_terms

MARKER = re.compile(r"([ \t]*)\[(\s*\d{1,4}(?:\s*(?:[,;，、]|[-–])\s*\d{1,4})*\s*)\]")
_ITEM = re.compile(r"(\d{1,4})(?:\s*[-–]\s*(\d{1,4}))?")
_INLINE_CODE = re.compile(r"(`+).*?\1")
_SENTENCE = re.compile(r"(?<=[.!?。！？；])\s*")
_SPACES = re.compile(r"\s+")
HEADINGS = {"en": "References", "zh": "参考资料"}
QUOTE_CHARS = 180
MAX_RANGE = 20  # [3-7] is five citations; [3-900] is not taken as 898


def numbers_in(inner: str) -> list[int]:
    """The numbers a marker's inside names.

    >>> numbers_in("2, 5-7"), numbers_in("3–900")
    ([2, 5, 6, 7], [3, 900])
    """
    out: list[int] = []
    for m in _ITEM.finditer(inner):
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) else lo
        out += list(range(lo, hi + 1)) if 0 <= hi - lo <= MAX_RANGE else [lo, hi]
    return out


def _outside_code(line: str) -> list[tuple[bool, str]]:
    """A line in pieces, (is code, text), inline code spans apart."""
    out: list[tuple[bool, str]] = []
    at = 0
    for m in _INLINE_CODE.finditer(line):
        out += [(False, line[at : m.start()]), (True, m.group(0))]
        at = m.end()
    return [*out, (False, line[at:])]


def cited_numbers(text: str) -> list[int]:
    """Every number `text` cites, in order of first appearance (code left out).

    >>> cited_numbers("A [2]. B [2, 9] and `x[4]` [1-2]")
    [2, 9, 1]
    """
    seen: dict[int, None] = {}
    fence = False
    for line in text.split("\n"):
        if line.lstrip().startswith(("```", "~~~")):
            fence = not fence
            continue
        if fence:
            continue
        for code, piece in _outside_code(line):
            if not code:
                for m in MARKER.finditer(piece):
                    seen.update(dict.fromkeys(numbers_in(m.group(2))))
    return list(seen)


@dataclass
class Numbering:
    """The run's passages by number (1, 2, ... in the order prompts first show them)."""

    passages: dict[int, Passage] = field(default_factory=dict)
    _by_key: dict[str, int] = field(default_factory=dict)

    def number(self, passages: Iterable[Passage]) -> list[tuple[int, Passage]]:
        out = []
        for p in passages:
            n = self._by_key.get(p.key)
            if n is None:
                n = self._by_key[p.key] = len(self.passages) + 1
                self.passages[n] = p
            out.append((n, p))
        return out


def where(p: Passage) -> str:
    """Where a passage is, as a reader looks it up: "papers/heat.pdf, p. 4"."""
    return f"{p.file}, {p.locator}" if p.locator else p.file


def render_passages(numbered: list[tuple[int, Passage]]) -> str:
    return "\n\n".join(f"[{n}] {where(p)}\n{p.text.strip()}" for n, p in numbered)


def ask_with_sources(question: str, numbered: list[tuple[int, Passage]], language: str) -> str:
    """The request as the model's template receives it: the user's request, the numbered
    passages, the instruction to cite them (`prompts/sources_LANG.txt`)."""
    from longwrite.prompt.templates import templates_dir

    name = f"sources_{language if language in HEADINGS else 'en'}"
    template = (templates_dir() / f"{name}.txt").read_bytes().decode("utf-8")
    values = {"question": question, "passages": render_passages(numbered)}
    return re.sub(r"\{(question|passages)\}", lambda m: values[m.group(1)], template)


class CitationFilter:
    """Answer text in, the same text out without citations of unknown numbers.

    `known(n)` says whether passage n exists in the run. Text is passed on a whole line at a
    time; `close()` passes the rest. `removed` counts the numbers taken out, `cited` the
    known numbers cited, in order of first appearance.
    """

    def __init__(self, known: Callable[[int], bool]) -> None:
        self.known = known
        self.removed = 0
        self.cited: dict[int, None] = {}
        self._pending = ""
        self._fence = False

    def feed(self, text: str) -> str:
        self._pending += text
        cut = self._pending.rfind("\n")
        if cut < 0:
            return ""
        done, self._pending = self._pending[: cut + 1], self._pending[cut + 1 :]
        return "\n".join(self._line(line) for line in done.split("\n"))

    def close(self) -> str:
        rest, self._pending = self._pending, ""
        return self._line(rest) if rest else ""

    def _line(self, line: str) -> str:
        if line.lstrip().startswith(("```", "~~~")):
            self._fence = not self._fence
            return line
        if self._fence or "[" not in line:
            return line
        out = "".join(
            piece if code else MARKER.sub(self._marker, piece)
            for code, piece in _outside_code(line)
        )
        if out[:1].isspace() and not line[:1].isspace():  # a marker that began the line
            out = out.lstrip(" \t")
        return out

    def _marker(self, m: re.Match[str]) -> str:
        numbers = numbers_in(m.group(2))
        good = [n for n in dict.fromkeys(numbers) if self.known(n)]
        self.removed += len(numbers) - len([n for n in numbers if self.known(n)])
        self.cited.update(dict.fromkeys(good))
        if len(good) == len(numbers):
            return m.group(0)
        if good:
            return f"{m.group(1)}[{', '.join(map(str, good))}]"
        return ""


def clean(text: str, known: Callable[[int], bool]) -> tuple[str, CitationFilter]:
    """`text` through a fresh filter at once (what the stream shows, for text at rest)."""
    f = CitationFilter(known)
    return f.feed(text) + f.close(), f


def citing_sentences(document: str, n: int) -> list[str]:
    """The sentences of `document` that cite passage `n` (the text before each marker, back
    to the sentence's start)."""
    out = []
    for m in MARKER.finditer(document):
        if n in numbers_in(m.group(2)):
            before = document[max(0, m.start() - 400) : m.start()]
            before = before.rsplit("\n", 1)[-1]
            parts = [s for s in _SENTENCE.split(before) if s.strip()]
            out.append(parts[-1].strip() if parts else before.strip())
    return out


def quote(text: str, contexts: list[str]) -> str:
    """The sentence of `text` sharing most terms with `contexts` (the first if none), cut
    to `QUOTE_CHARS` at a space."""
    sentences = [s.strip() for s in _SENTENCE.split(_SPACES.sub(" ", text)) if s.strip()]
    if not sentences:
        return ""
    wanted = set(query_terms(" ".join(contexts)))
    best = max(sentences, key=lambda s: len(wanted & set(query_terms(s)))) if wanted else None
    chosen = best or sentences[0]
    if len(chosen) > QUOTE_CHARS:
        cut = chosen[:QUOTE_CHARS]
        space = cut.rfind(" ")
        chosen = (cut[:space] if space > QUOTE_CHARS // 2 else cut).rstrip(",;: ") + "…"
    return chosen


def references(
    cited: Iterable[int], passages: dict[int, Passage], document: str, language: str
) -> str:
    """The References section: every cited passage, by number, with where it is and a short
    quote (empty when nothing was cited)."""
    numbers = sorted(n for n in set(cited) if n in passages)
    if not numbers:
        return ""
    lines = []
    for n in numbers:
        p = passages[n]
        said = quote(p.text, citing_sentences(document, n)).replace('"', "'")
        lines.append(f'[{n}] {where(p)}: "{said}"' if said else f"[{n}] {where(p)}")
    heading = HEADINGS.get(language, HEADINGS["en"])
    return f"## {heading}\n\n" + "\n\n".join(lines) + "\n"


def body_of(document: str) -> str:
    """`document` without the References section we appended (for counting its citations)."""
    for heading in HEADINGS.values():
        at = document.rfind(f"\n## {heading}\n")
        if at >= 0:
            return document[:at]
        if document.startswith(f"## {heading}\n"):
            return ""
    return document
