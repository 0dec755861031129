"""The outline of a sectioned document, read from the plan a model (or a user) wrote.

LongWriter-Zero plans in its own thinking, and reasoning models plan untidily: they ask
themselves questions, draft an outline and revise it, check their arithmetic, list characters,
sources or style notes, nest sub-points, and number parts every way there is (`1.`, `I.`,
`Part One:`, `Chapter 3:`, bold bullets, `## 2. Methods`, `一、`, `第二章：`, `（三）`, `4、`).
So the plan is read as Markdown with markdown-it (headings, lists and their nesting come from
its token stream), plus the numbered lines a plain paragraph holds (`I. ...`, `一、...`, which
are not Markdown lists). Each top-level heading run, top-level list and run of numbered lines
is a candidate outline; the outline is the last candidate of two or more parts that is not a
list of questions, notes, characters or sources. Only top-level parts count: nested items,
deeper headings and `1.1`-style points are notes of the part above them.

A part's title is the title alone: no numbering, bold, count, or description after a colon or
dash; its count is read from `(about 1,500 words)`, `~1,500 words`, `– 2,000 words`, `, 6,000
words`, `1.5k words`, a range (its midpoint), `（约3000字左右）`; None when the plan gives none.
Counts are then scaled to the target (`scale`), since a model's arithmetic rarely adds up.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from functools import cache
from typing import Any

SOURCES = ("plan", "outline", "even", "file")
MIN_PARTS = 2
MAX_TITLE_WORDS = 12  # a longer "title" is a sentence: notes, not a part

_CN = "一二三四五六七八九十百零〇两"
_WORDS_NUM = "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve"
# A part's numbering at the start of a line (after any bold marker).
_NUMBERING = re.compile(
    rf"^(?:(?:part|chapter|section|book|act|stage|phase)\s+(?:\d+|[ivxlc]+|{_WORDS_NUM})\b"
    r"\s*[:.\-–—)]?"  # Part One:  Chapter 3 -
    r"|(?-i:[IVXLC]+)[.)](?=\s)"  # I.  IV)
    r"|\d{1,2}[.)、](?!\d)"  # 1.  2)  3、  (not 1.1)
    rf"|第[{_CN}\d]+[章节部篇回卷幕][分]?[:：、.]?"  # 第一章  第2部分
    rf"|[{_CN}]+[、.]"  # 一、
    rf"|[(（][{_CN}\d]+[)）])\s*",  # （一）
    re.IGNORECASE,
)
_SUBPOINT = re.compile(r"^\s*\d+\.\d+")  # 1.1, 2.3: a sub-point, never a part
_NUM = r"\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?"
_COUNT = re.compile(
    rf"(?:about|around|approx(?:imately|\.)?|roughly|~|≈|约|大约|共)?\s*"
    rf"({_NUM})\s*(k)?(?:\s*(?:-|–|—|~|to|至|到)\s*({_NUM})\s*(k)?)?\s*"
    r"(?:words?\b|字)(?:\s*左右)?",
    re.IGNORECASE,
)
_BRACKETS = re.compile(r"[(\[（【]\s*[)\]）】]")
_DESCRIPTION = re.compile(r"\s*(?::\s|：|\s[–-]\s|—|\s*[(（\[]).*$")
_TRAIL = " \t-–—:,;.*_：，、。～~()（）[]【】"
_LABELS = re.compile(  # a list under such a label is not the outline
    r"^(?:\S+\s+){0,2}(?:character|cast|people|source|reference|citation|key (?:point|idea|term)"
    r"|style|tone|notes?\b|things to|question|人物|角色|来源|参考|要点|风格|语气|注意|问题)",
    re.IGNORECASE,
)


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


# -- one line ------------------------------------------------------------------------------------


def count_of(text: str) -> int | None:
    """The word count a line gives for its part: a range's midpoint, `1.5k` as 1,500."""
    m = _COUNT.search(text)
    if m is None:
        return None

    def value(num: str, k: str | None) -> float:
        return float(num.replace(",", "")) * (1000 if k else 1)

    lo = value(m.group(1), m.group(2) or m.group(4))
    hi = value(m.group(3), m.group(4)) if m.group(3) else lo
    words = round((lo + hi) / 2)
    return words if words > 0 else None


def strip_numbering(text: str) -> str:
    """`text` without a leading part number (`1.`, `I.`, `Part One:`, `第二章：`, `一、`)."""
    return _NUMBERING.sub("", text.strip(), count=1)


def title_of(line: str) -> tuple[str, int | None]:
    """(title alone, count or None) of one outline line."""
    text = line.strip()
    words = count_of(text)
    text = strip_numbering(text)
    bold = re.match(r"^(\*\*|__)(.+?)\1", text)
    if bold:  # "**Why compost** (~1,500 words): ..." -> the bold text is the title
        text = strip_numbering(bold.group(2))
    text = _COUNT.sub("", text)
    text = _BRACKETS.sub("", text)
    text = text.replace("**", "").replace("__", "").strip().lstrip(":：-–—.,， ")
    text = _DESCRIPTION.sub("", text)
    return text.strip(_TRAIL).strip().strip("*_`").strip(), words


def _is_question(title: str) -> bool:
    return title.rstrip().endswith(("?", "？"))


def title_words(title: str) -> int:
    """A title's length in words (four Chinese characters read about as one word)."""
    cjk = len(re.findall(r"[\u4e00-\u9fff]", title))
    return len(title.split()) + cjk // 4


# -- candidates ----------------------------------------------------------------------------------


@cache
def _markdown() -> Any:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark")


@dataclass
class _Candidate:
    parts: list[tuple[str, int | None, str]]
    start: int  # first line
    end: int  # line after the last
    label: str  # the line before it


def _candidates(text: str) -> list[_Candidate]:
    lines = text.split("\n")
    tokens = _markdown().parse(text)
    found: list[_Candidate] = []
    found += _heading_runs(tokens, lines)
    found += _lists(tokens, lines)
    found += _numbered_runs(tokens, lines)
    return found


def _label(lines: list[str], start: int) -> str:
    for i in range(start - 1, -1, -1):
        if lines[i].strip():
            return lines[i].strip()
    return ""


def _notes(lines: list[str], start: int, end: int) -> str:
    return "\n".join(lines[start:end]).strip()


def _heading_runs(tokens: list[Any], lines: list[str]) -> list[_Candidate]:
    """Per level, the runs of headings of that level not broken by a shallower one."""
    heads = [
        (int(t.tag[1]), t.map[0], tokens[i + 1].content)
        for i, t in enumerate(tokens)
        if t.type == "heading_open" and t.level == 0 and t.map
    ]
    out: list[_Candidate] = []
    for level in sorted({lv for lv, _, _ in heads}):
        run: list[tuple[int, str]] = []
        for lv, line, content in [*heads, (0, len(lines), "")]:
            if lv == level:
                run.append((line, content))
                continue
            if lv > level:
                continue
            if len(run) >= 1:
                ends = [ln for ln, _ in run[1:]] + [line]
                parts = []
                for (ln, content_), end in zip(run, ends, strict=True):
                    title, words = title_of(content_)
                    parts.append((title, words, _notes(lines, ln + 1, end)))
                out.append(_Candidate(parts, run[0][0], line, _label(lines, run[0][0])))
            run = []
    return out


def _lists(tokens: list[Any], lines: list[str]) -> list[_Candidate]:
    """Top-level lists: each item's first line is a part, the rest of the item its notes."""
    out: list[_Candidate] = []
    i = 0
    while i < len(tokens):
        t = tokens[i]
        if t.type in ("bullet_list_open", "ordered_list_open") and t.level == 0 and t.map:
            close = t.type.replace("_open", "_close")
            parts = []
            j = i + 1
            while j < len(tokens) and not (tokens[j].type == close and tokens[j].level == 0):
                item = tokens[j]
                if item.type == "list_item_open" and item.level == 1 and item.map:
                    content = next((x.content for x in tokens[j + 1 :] if x.type == "inline"), "")
                    parts += _item_parts(content, lines, item.map[0], item.map[1])
                j += 1
            out.append(_Candidate(parts, t.map[0], t.map[1], _label(lines, t.map[0])))
            i = j
        i += 1
    return out


def _item_parts(
    content: str, lines: list[str], start: int, end: int
) -> list[tuple[str, int | None, str]]:
    """The parts one list item holds: its first line, and any unindented numbered line that
    Markdown folded into it ("Part 3: Outlook" right under "2. History")."""
    heads = [start] + [
        n
        for n in range(start + 1, end)
        if lines[n][:1].strip()
        and _NUMBERING.match(lines[n].strip().lstrip("*_ "))
        and not _SUBPOINT.match(lines[n])
    ]
    if _SUBPOINT.match(content):
        heads = heads[1:]
    out = []
    for k, n in enumerate(heads):
        line = content.partition("\n")[0] if n == start else lines[n]
        title, words = title_of(line)
        stop = heads[k + 1] if k + 1 < len(heads) else end
        out.append((title, words, _notes(lines, n + 1, stop)))
    return out


def _numbered_runs(tokens: list[Any], lines: list[str]) -> list[_Candidate]:
    """Numbered part lines inside top-level paragraphs (`I. ...`, `一、...`, `Part One: ...`,
    which Markdown does not read as lists), consecutive paragraphs joined."""
    out: list[_Candidate] = []
    run: list[tuple[int, str]] = []
    run_end = 0

    def flush() -> None:
        if run:
            ends = [ln for ln, _ in run[1:]] + [run_end]
            parts = []
            for (ln, line), end in zip(run, ends, strict=True):
                title, words = title_of(line)
                parts.append((title, words, _notes(lines, ln + 1, end)))
            out.append(_Candidate(parts, run[0][0], run_end, _label(lines, run[0][0])))
        run.clear()

    for t in tokens:
        if t.level != 0 or not t.map or not t.type.endswith("_open"):
            continue
        if t.type != "paragraph_open":
            flush()
            continue
        start, end = t.map
        hits = [
            (n, lines[n])
            for n in range(start, end)
            if _NUMBERING.match(lines[n].strip().lstrip("*_ ")) and not _SUBPOINT.match(lines[n])
        ]
        if not hits:
            if not _SUBPOINT.match(lines[start]):  # "1.1 ..." under a part keeps the run
                flush()
            continue
        if hits[0][0] != start:  # "Plan:" then the parts, in one paragraph
            flush()
        run.extend(hits)
        run_end = end
    flush()
    return out


def _usable(c: _Candidate) -> bool:
    titles = [t for t, _, _ in c.parts if t]
    if len(titles) < MIN_PARTS or len(titles) != len(c.parts):
        return False
    if sum(map(_is_question, titles)) * 2 >= len(titles):
        return False  # the model's questions to itself
    if _LABELS.match(c.label.lstrip("#*-_ ")) and not any(w for _, w, _ in c.parts):
        return False  # characters, sources, style notes, key points
    return sum(title_words(t) > MAX_TITLE_WORDS for t in titles) * 2 < len(titles)


def read_outline(text: str) -> list[tuple[str, int | None]]:
    """The (title, words or None) parts of the last outline in `text`; [] when it has none."""
    return [(t, w) for t, w, _ in read_parts(text).parts]


def read_parts(text: str) -> Read:
    """The last outline in `text`, with each part's notes (the text under it in the plan)."""
    text = text.replace("\r\n", "\n")
    found = [c for c in _candidates(text) if _usable(c)]
    if not found:
        return Read([])
    best = max(found, key=lambda c: (c.end, -c.start))  # the last; the outer of nested ones
    return Read(best.parts)


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
    text = text.replace("\r\n", "\n")
    tokens = _markdown().parse(text)
    lines = text.split("\n")
    tops = [
        tokens[i + 1].content
        for i, t in enumerate(tokens)
        if t.type == "heading_open" and t.tag == "h1" and t.level == 0
    ]
    title = title_of(tops[0])[0] if len(tops) == 1 else ""
    runs = [c for c in _heading_runs(tokens, lines) if c.parts]
    if title:  # the lone title is not a section
        runs = [c for c in runs if not (len(c.parts) == 1 and c.parts[0][0] == title)]
    chosen = next((c for c in runs if len(c.parts) >= MIN_PARTS), None)
    if chosen is None:
        listed = [c for c in _lists(tokens, lines) + _numbered_runs(tokens, lines) if _usable(c)]
        chosen = max(listed, key=lambda c: c.end) if listed else (runs[0] if runs else None)
    if chosen is None:
        return UserPlan(title, (), text)
    parts = [(t, w, n) for t, w, n in chosen.parts if t]
    if target is None:
        known = [w for _, w, _ in parts if w]
        mean = sum(known) // len(known) if known else 1000
        target = sum(w or mean for _, w, _ in parts)
    return UserPlan(title, scale_parts(parts, target), text)


def user_outline(text: str, target: int | None) -> tuple[Part, ...]:
    """The parts of a user's plan (see `user_plan`)."""
    return user_plan(text, target).parts
