"""The loop detector: tell "the same content again" from "the same template, new content".

Why a module of its own: what people ask a long-form writer for is full of templates (tables,
schedules, itineraries, numbered steps, changelogs, clauses, similar code functions, refrains),
and a loop guard that reads those as loops deletes documents the user wanted. So the detector
judges each piece of the answer by its kind, read line by line as it streams (a row or an item
is judged the moment its line ends, so a table streams row by row instead of being held as one
paragraph):

* Structured lines (a table row, a list item, a line of a fenced code block) are repeats only
  when the whole line was seen before, numbers included: rows that share their template but
  differ in a day, a room or a number are new. Lines with no tokens at all (a table separator,
  an empty item) are compared by their text, so degenerate structure repeated is still a loop.
  An item long enough to be prose is also judged as prose (below).
* Prose (a paragraph, cut into chunks of `MAX_UNIT` tokens as it fills) is a repeat when most of
  its shingles were seen before (containment >= `RAMP_HIGH`, the repetition penalty's "wholly
  repeated") and it brings next to nothing new: at most one new word per `NOVEL_PER` tokens
  (a word never seen in the document, a number, or for Chinese and Japanese a new pair of
  characters). A paraphrase that swaps one word in four for words already used is a repeat;
  a templated paragraph that names a new place, date or party is not.
* Headings are neutral: they neither break nor extend a run, so one paragraph repeated under
  many headings is still a loop; fence lines and blank lines are structure, not content.

A run of consecutive repeats worth `LOOP_TOKENS` tokens (each line counts at least
`MIN_WEIGHT`, so a line of no tokens repeated still adds up) is a loop, cut back to where the
run began: the start of the paragraph, row or item, so the kept text ends at a line break.

Tokens are every script's words (Latin with accents, Cyrillic, Greek, Hangul, Arabic...),
numbers, and single CJK ideographs and kana (those scripts do not space their words); the
repetition penalty (`scoring.rewards`) uses the same tokens.

Why lines and first characters rather than markdown-it here: the detector must judge a row
the moment it is complete, on a stream, in O(1) per character; markdown-it parses whole
blocks. The line kinds follow CommonMark's block starts (`|` rows, `-`/`*`/`+`/`1.` items,
```` ``` ````/`~~~` fences, `#` headings).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from difflib import SequenceMatcher

from longwrite.scoring.rewards import (
    CJK_RE,
    CJK_SHINGLE,
    MAX_UNIT,
    RAMP_HIGH,
    TOKEN_RE,
    WORD_SHINGLE,
)

LOOP_TOKENS = 2 * MAX_UNIT  # tokens of consecutive repeats that make a loop
MIN_WEIGHT = 4  # what a repeated line counts at least (a separator row has no tokens)
NOVEL_PER = 20  # a prose unit with more than one new word per this many tokens is new
LONG_ITEM = 24  # tokens from which a list item is judged as prose too
VOTE_MIN = 0.15  # share of a unit's word triples one earlier unit must hold to be compared
SIMILAR = 0.6  # token-aligned similarity from which a unit restates (or templates) another

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_HEADING = re.compile(r"^ {0,3}#{1,6}(?:\s|$)")
_ITEM = re.compile(r"^\s*(?:[-*+]|\d{1,9}[.)])(?:\s|$)")
_PARTIAL_WORD = re.compile(r"[^\W_]+\Z")  # a word the next delta may still continue
_UNDECIDED = re.compile(r"^\s*(?:[-*+|]|#{1,6}|`{1,2}|~{1,2}|\d{1,9}[.)]?)?\Z")  # kind still open


@dataclass(frozen=True)
class Loop:
    """A loop found: cut the answer back to `cut` (the start of a paragraph or a line)."""

    cut: int


def shingles(unit: list[str]) -> set[tuple[str, ...]]:
    """The unit's shingles, as the repetition penalty takes them (empty: too short)."""
    cjk = sum(1 for t in unit if CJK_RE.fullmatch(t))
    size = CJK_SHINGLE if 2 * cjk > len(unit) else WORD_SHINGLE
    return set(zip(*(unit[i:] for i in range(size)), strict=False))


def novelty_keys(unit: list[str]) -> set[object]:
    """What counts as new content: each word or number, and for ideographs and kana (one
    token each, and a few thousand of them in common use) each pair of adjacent ones."""
    keys: set[object] = set()
    previous = ""
    for token in unit:
        if CJK_RE.fullmatch(token):
            if previous:
                keys.add((previous, token))
            previous = token
        else:
            keys.add(token)
            previous = ""
    return keys


class LoopDetector:
    """Fed the answer text piece by piece; O(1) per character.

    `feed` returns a `Loop` once a run of repeats reaches `LOOP_TOKENS`. `safe` is the answer
    offset before which no later cut can reach. `earlier`: text before this document (earlier
    sections) that repeating counts against.
    """

    def __init__(self, earlier: str = "") -> None:
        self._seen: set[tuple[str, ...]] = set()  # shingles of everything judged
        self._lines: set[object] = set()  # structured lines seen (tokens, or text)
        self._vocab: set[object] = set()  # novelty keys seen
        self._units: list[list[str]] = []  # every prose unit judged, in order
        self._where: dict[tuple[str, ...], int] = {}  # a word triple -> the first unit with it
        self._line = ""  # the current line so far
        self._line_start = 0  # its offset in the answer
        self._tokenised = 0  # characters of a prose `_line` already tokenised
        self._prose = False  # the current line is prose (decided once its start is known)
        self._fence: str | None = None  # the open code fence's marker
        self._para_start: int | None = None  # offset of the open prose paragraph
        self._unit: list[str] = []  # prose tokens not judged yet
        self._streak = 0  # tokens of consecutive repeats
        self._streak_start = 0  # where that run began
        if earlier:
            self.feed(earlier + "\n\n")
            self._line, self._line_start, self._tokenised, self._prose = "", 0, 0, False
            self._fence, self._para_start, self._unit, self._streak = None, None, [], 0

    @classmethod
    def primed(cls, text: str, earlier: str = "") -> LoopDetector:
        """A detector that has read `text` (an answer kept so far), reporting nothing."""
        detector = cls(earlier)
        detector.feed(text)
        detector._streak = 0
        return detector

    @property
    def safe(self) -> int:
        if self._streak:
            return self._streak_start
        return self._line_start if self._para_start is None else self._para_start

    def feed(self, text: str) -> Loop | None:
        found: Loop | None = None
        self._line += text
        while (end := self._line.find("\n")) >= 0:
            found = self._end_line(self._line[:end]) or found
            self._line_start += end + 1
            self._line, self._tokenised, self._prose = self._line[end + 1 :], 0, False
        if not self._prose and self._fence is None and not _UNDECIDED.match(self._line):
            self._prose = _kind(self._line) == "prose"
            if self._prose and self._para_start is None:
                self._para_start = self._line_start
        if self._prose:  # an endless paragraph on one line is judged as it fills
            found = self._tokenise(len(self._line), final=False) or found
        return found

    # -- lines ------------------------------------------------------------------------------

    def _end_line(self, line: str) -> Loop | None:
        if self._fence is not None:
            if line.strip().startswith(self._fence):
                self._fence = None
                return None
            return self._judge_line(line)
        kind = "prose" if self._prose else _kind(line)  # as decided while it streamed
        if kind == "prose":
            if self._para_start is None:
                self._para_start = self._line_start
            return self._tokenise(len(line), final=True, line=line)
        found = self._end_paragraph()
        if kind == "fence":
            m = _FENCE.match(line)
            assert m is not None
            self._fence = m.group(1)[0] * 3
        elif kind == "heading":
            tokens = TOKEN_RE.findall(line.lower())
            self._lines.add(tuple(tokens))
            self._vocab |= novelty_keys(tokens)
        elif kind == "line":
            found = self._judge_line(line) or found
        return found

    def _judge_line(self, line: str) -> Loop | None:
        tokens = TOKEN_RE.findall(line.lower())
        key: object = tuple(tokens) if tokens else " ".join(line.split())
        if not key:
            return None  # a blank line inside a code block
        repeat = key in self._lines
        self._lines.add(key)
        grams = shingles(tokens)
        prose_repeat = self._prose_repeat(tokens, grams) if len(tokens) >= LONG_ITEM else False
        self._seen |= grams
        self._vocab |= novelty_keys(tokens)
        return self._verdict(repeat or prose_repeat, max(len(tokens), MIN_WEIGHT), self._line_start)

    # -- prose ------------------------------------------------------------------------------

    def _tokenise(self, end: int, *, final: bool, line: str | None = None) -> Loop | None:
        """Tokens of the current line up to `end` into prose units (a word at the end of an
        unfinished line may still grow)."""
        text = self._line if line is None else line
        if not final:
            partial = _PARTIAL_WORD.search(text, self._tokenised, end)
            end = partial.start() if partial else end
        if end <= self._tokenised:
            return None
        self._unit += TOKEN_RE.findall(text[self._tokenised : end].lower())
        self._tokenised = end
        found = None
        while len(self._unit) >= MAX_UNIT:
            unit, self._unit = self._unit[:MAX_UNIT], self._unit[MAX_UNIT:]
            found = self._judge_prose(unit) or found
        return found

    def _end_paragraph(self) -> Loop | None:
        if self._para_start is None:
            return None
        unit, self._unit = self._unit, []
        found = self._judge_prose(unit) if unit else None
        self._para_start = None
        return found

    def _judge_prose(self, unit: list[str]) -> Loop | None:
        grams = shingles(unit)
        if not grams:
            return None  # too short to judge: neither breaks nor extends a run
        repeat = self._prose_repeat(unit, grams)
        self._seen |= grams
        self._vocab |= novelty_keys(unit)
        assert self._para_start is not None
        return self._verdict(repeat, len(unit), self._para_start)

    def _prose_repeat(self, unit: list[str], grams: set[tuple[str, ...]]) -> bool:
        """Whether a prose unit restates what came before: the earlier unit it is most like,
        aligned word by word, decides when there is one (the same words again, or the same
        template with new content); otherwise its containment in everything seen and how
        little it brings that is new (a splice of several earlier units)."""
        similar = self._similar_unit(unit)
        if similar is not None:
            verdict = self._aligned(similar, unit)
            if verdict is not None:
                return verdict
        count = len(unit) - len(next(iter(grams))) + 1  # shingles with repeats
        new = len(grams - self._seen)
        if (count - new) / count < RAMP_HIGH:
            return False
        novel = len(novelty_keys(unit) - self._vocab)
        return novel <= max(1, len(unit) // NOVEL_PER)

    def _similar_unit(self, unit: list[str]) -> list[str] | None:
        """The earlier unit sharing the most word triples with `unit`, if it shares enough;
        `unit` is then indexed for those after it."""
        triples = list(zip(unit, unit[1:], unit[2:], strict=False))
        votes = Counter(self._where[t] for t in triples if t in self._where)
        index = len(self._units)
        self._units.append(unit)
        for t in triples:  # the first unit: variants of one source all point back to it
            self._where.setdefault(t, index)
        if not votes:
            return None
        best, n = votes.most_common(1)[0]
        return self._units[best] if n >= VOTE_MIN * len(triples) else None

    def _aligned(self, source: list[str], unit: list[str]) -> bool | None:
        """None: too different to say. True: `unit` is `source` again, with at most words
        the document already used swapped in. False: the same template with new content (a
        number where `source` has another, or words the document has not used yet)."""
        matcher = SequenceMatcher(None, source, unit, autojunk=False)
        if matcher.ratio() < SIMILAR:
            return None
        for tag, i1, i2, j1, j2 in matcher.get_opcodes():
            if tag in ("replace", "insert"):
                changed = unit[max(j1 - 1, 0) : j2 + 1]  # a neighbour each side: CJK pairs
                if novelty_keys(changed) - self._vocab:
                    return False
                was = source[i1:i2]
                if any(t.isdigit() for t in was) and any(t.isdigit() for t in unit[j1:j2]):
                    return False
        return True

    def _verdict(self, repeat: bool, weight: int, start: int) -> Loop | None:
        if not repeat:
            self._streak = 0
            return None
        if not self._streak:
            self._streak_start = start
        self._streak += weight
        return Loop(self._streak_start) if self._streak >= LOOP_TOKENS else None


def _kind(line: str) -> str:
    """The line's kind: blank, fence, heading, line (a table row or a list item) or prose."""
    stripped = line.strip()
    if not stripped:
        return "blank"
    if _FENCE.match(line):
        return "fence"
    if _HEADING.match(line):
        return "heading"
    if stripped.startswith("|") or stripped.count("|") >= 2 or _ITEM.match(line):
        return "line"
    return "prose"
