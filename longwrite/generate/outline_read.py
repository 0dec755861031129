"""Find the outline in a plan a model wrote: the structure is read with markdown-it.

Reasoning models plan untidily: they ask themselves questions, draft an outline and revise it,
check their sums, list characters, sources, requirements or style notes, nest sub-points, put
budgets in a table, and number parts every way there is. So each of these is a candidate
outline, read from markdown-it's token stream (headings, lists and their nesting, tables) and,
for what Markdown does not see as structure, from the lines of top-level paragraphs:
- a run of headings of one level (deeper headings and the text under them are notes);
- a top-level list (an item's first line is the part; nested items, `1.1` points and
  further lines are its notes), but not a list indented under a part or hanging right below
  one (sub-points);
- a run of part lines in paragraphs (`I. ...`, `一、...`, `Part One: ...`, or a bare
  "Title — 2,000 words"), lines indented deeper and the lists hanging below them being notes;
- a table with a title column (and a words column).
The outline is the last candidate that gives counts for at least half its parts, or failing
that the last candidate; a candidate of questions, or under a label such as "Characters:",
"Sources:", "Style:" with no counts, is never one. A final outline of one part ("Final
structure: 1. The whole essay") means the plan wants none: no outline.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from functools import cache
from typing import Any

from longwrite.generate.outline_lines import (
    LABELS,
    MAX_TITLE_WORDS,
    NUMBERING,
    SUBPOINT,
    count_of,
    is_part_line,
    is_question,
    title_of,
    title_words,
)

MIN_PARTS = 2
Parts = list[tuple[str, int | None, str]]  # (title, words or None, notes)
_BULLET = re.compile(r"\s*[-*+]\s")
_FINAL = re.compile(r"final|revised|最终|定稿|调整后", re.IGNORECASE)
_TITLE_COLUMN = re.compile(r"section|title|part|chapter|heading|章节|部分|标题|名称|内容", re.I)
_WORDS_COLUMN = re.compile(r"words?|length|count|字数|篇幅|字", re.IGNORECASE)


@cache
def markdown() -> Any:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark").enable("table")


@dataclass
class Candidate:
    parts: Parts
    start: int  # its first line
    end: int  # the line after its last
    label: str  # the line before it

    @property
    def counted(self) -> bool:
        return 2 * sum(1 for _, w, _ in self.parts if w) >= len(self.parts)


def normalized(text: str) -> str:
    """`text` with the line ends markdown-it reads (CRLF and a lone CR are line breaks to
    it), so that its token maps count the lines `text.split("\\n")` gives."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _label(lines: list[str], start: int) -> str:
    return next((lines[i].strip() for i in range(start - 1, -1, -1) if lines[i].strip()), "")


def part(line: str, lines: list[str], start: int, end: int) -> tuple[str, int | None, str]:
    """One part: its title and count from `line`, its notes `lines[start:end]`; a count on
    the first line of the notes ("Length: ~2,000 words") when the line gives none."""
    title, words = title_of(line)
    notes = textwrap.dedent("\n".join(lines[start:end])).strip("\n")
    first = notes.split("\n", 1)[0]
    if words is None and first and title_words(first) <= 8:
        words = count_of(first)
    return title, words, notes


def heading_runs(tokens: list[Any], lines: list[str]) -> list[Candidate]:
    """Per level, the runs of headings of that level not broken by a shallower one."""
    heads = [
        (int(t.tag[1]), t.map[0], tokens[i + 1].content)
        for i, t in enumerate(tokens)
        if t.type == "heading_open" and t.level == 0 and t.map
    ]
    out: list[Candidate] = []
    for level in sorted({lv for lv, _, _ in heads}):
        run: list[tuple[int, str]] = []
        for lv, line, content in [*heads, (0, len(lines), "")]:
            if lv > level:
                continue
            if lv == level:
                run.append((line, content))
                continue
            if run:
                ends = [ln for ln, _ in run[1:]] + [line]
                parts = [part(c, lines, ln + 1, e) for (ln, c), e in zip(run, ends, strict=True)]
                out.append(Candidate(parts, run[0][0], line, _label(lines, run[0][0])))
            run = []
    return out


def _hangs(t: Any, lines: list[str]) -> bool:
    """A list indented, or right below a part line with no blank line: a part's sub-points."""
    start = t.map[0]
    return _indent(lines[start]) >= 2 or (start > 0 and is_part_line(lines[start - 1]))


def lists(tokens: list[Any], lines: list[str]) -> list[Candidate]:
    """Top-level lists: each item's first line is a part, the rest of the item its notes."""
    out: list[Candidate] = []
    for i, t in enumerate(tokens):
        if t.type not in ("bullet_list_open", "ordered_list_open") or t.level or not t.map:
            continue
        if _hangs(t, lines):
            continue
        parts: Parts = []
        for j in range(i + 1, len(tokens)):
            item = tokens[j]
            if item.type == t.type.replace("_open", "_close") and item.level == 0:
                break
            if item.type == "list_item_open" and item.level == 1 and item.map:
                content = next((x.content for x in tokens[j + 1 :] if x.type == "inline"), "")
                parts += _item_parts(content, lines, *item.map)
        out.append(Candidate(parts, t.map[0], t.map[1], _label(lines, t.map[0])))
    return out


def _item_parts(content: str, lines: list[str], start: int, end: int) -> Parts:
    """The parts one list item holds: its first line, and any unindented numbered line that
    Markdown folded into it ("Part 3: Outlook" right under "2. History")."""
    heads = [start] + [
        n
        for n in range(start + 1, end)
        if lines[n][:1].strip()
        and NUMBERING.match(lines[n].strip().lstrip("*_ "))
        and not SUBPOINT.match(lines[n])
    ]
    if SUBPOINT.match(content):
        heads = heads[1:]
    out = []
    for k, n in enumerate(heads):
        line = content.partition("\n")[0] if n == start else lines[n]
        out.append(part(line, lines, n + 1, heads[k + 1] if k + 1 < len(heads) else end))
    return out


def line_runs(tokens: list[Any], lines: list[str]) -> list[Candidate]:
    """Part lines inside top-level paragraphs (which Markdown does not read as a list),
    consecutive paragraphs joined; deeper lines and hanging lists are notes."""
    out: list[Candidate] = []
    run: list[int] = []  # line numbers of the parts
    depth = 0  # the indentation of the run's parts
    end = 0

    def flush() -> None:
        if run:
            ends = [*run[1:], end]
            parts = [part(lines[n], lines, n + 1, e) for n, e in zip(run, ends, strict=True)]
            out.append(Candidate(parts, run[0], end, _label(lines, run[0])))
        run.clear()

    for t in tokens:
        if t.level or not t.map or not t.type.endswith("_open"):
            continue
        start, stop = t.map
        if t.type in ("bullet_list_open", "ordered_list_open") and run and _hangs(t, lines):
            # sub-points of the last part; Markdown folds the next unindented part lines
            # into their last item (lazy continuation): those are parts again
            run.extend(
                n
                for n in range(start + 1, stop)
                if _indent(lines[n]) <= depth
                and is_part_line(lines[n])
                and not _BULLET.match(lines[n])
            )
            end = stop
            continue
        if t.type != "paragraph_open":
            flush()
            continue
        hits = [n for n in range(start, stop) if is_part_line(lines[n])]
        if run:
            hits = [n for n in hits if _indent(lines[n]) <= depth]
        if not hits:
            if run and (SUBPOINT.match(lines[start]) or _indent(lines[start]) > depth):
                end = stop  # "1.1 ..." or an indented note under a part keeps the run
            else:
                flush()
            continue
        if hits[0] != start:  # "Plan:" then the parts, in one paragraph
            flush()
        if not run:
            depth = _indent(lines[hits[0]])
            hits = [n for n in hits if _indent(lines[n]) <= depth]
        run.extend(hits)
        end = stop
    flush()
    return out


def tables(tokens: list[Any], lines: list[str]) -> list[Candidate]:
    """Tables with a title column: one part a row, the count from a words column."""
    out: list[Candidate] = []
    for i, t in enumerate(tokens):
        if t.type != "table_open" or t.level or not t.map:
            continue
        rows: list[list[str]] = []
        for x in tokens[i + 1 :]:
            if x.type == "table_close":
                break
            if x.type == "tr_open":
                rows.append([])
            elif x.type == "inline" and rows:
                rows[-1].append(x.content)
        if len(rows) < 3:
            continue
        head, body = rows[0], rows[1:]
        titled = [k for k, h in enumerate(head) if _TITLE_COLUMN.search(h)]
        counted = [k for k, h in enumerate(head) if _WORDS_COLUMN.search(h)]
        if not titled:
            continue
        parts: Parts = []
        for row in body:
            cell = row[titled[0]] if titled[0] < len(row) else ""
            words = None
            if counted and counted[0] < len(row):
                raw = row[counted[0]]
                words = count_of(raw) or count_of(raw + " words")
            notes = " ".join(c for k, c in enumerate(row) if k not in (titled[0], *counted[:1]))
            parts.append((title_of(cell)[0], words, notes.strip()))
        out.append(Candidate(parts, t.map[0], t.map[1], _label(lines, t.map[0])))
    return out


def usable(c: Candidate) -> bool:
    """Whether a candidate can be the outline (see the module docstring)."""
    titles = [t for t, _, _ in c.parts if t]
    if len(titles) != len(c.parts) or not titles:
        return False
    if len(titles) < MIN_PARTS and not _FINAL.search(c.label):
        return False  # a lone item is an outline only when the plan calls it the final one
    if 2 * sum(map(is_question, titles)) >= len(titles) > 1:
        return False  # the model's questions to itself
    if LABELS.match(c.label.lstrip("#*-_ ")) and not c.counted:
        return False  # characters, sources, requirements, style notes
    return 2 * sum(title_words(t) > MAX_TITLE_WORDS for t in titles) < len(titles)


def find_outline(text: str) -> Parts:
    """The parts of the outline in `text` (see the module docstring); [] when it has none."""
    text = normalized(text)
    lines = text.split("\n")
    tokens = markdown().parse(text)
    found = [
        c
        for c in heading_runs(tokens, lines)
        + lists(tokens, lines)
        + line_runs(tokens, lines)
        + tables(tokens, lines)
        if usable(c)
    ]
    if not found:
        return []
    pool = [c for c in found if c.counted] or found
    best = max(pool, key=lambda c: (c.end, -c.start))  # the last; the outer of nested ones
    return best.parts if len(best.parts) >= MIN_PARTS else []
