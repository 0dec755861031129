"""Rewards for a finished completion: length, format and repetition.

LongWriter-Zero was trained with GRPO on three rewards (length, writing quality, format); this
module holds the two that need no model, as plain pure functions, so that length control at
inference (best-of-N) and the RL trainer score text the same way. Lengths are always
`longwrite.io.counting.count_words` of the answer, the number LongBench-Write scores.

Choices (the paper leaves them open)
------------------------------------
* Length: 1 inside [lo, hi]; `words / lo` below; `(Lmax - words) / (Lmax - hi)` above, clamped
  at 0. Lmax defaults to `hi + max(hi, 500)`: the reward reaches 0 at twice the upper bound, so
  overshooting by a fraction f of hi costs f, the same as falling short by a fraction f of lo
  costs below the range (a relative penalty, fair to 500- and 10,000-word requests alike). The
  500-word floor keeps small and impossible ranges usable: for [0, 0] the reward is 1 at 0
  words and falls to 0 at 500 (a short refusal scores about 0.9).
* Format: 1 or 0, as in R1-style format rewards; GRPO normalises each reward within its
  group, so partial credit would add little but arbitrariness. 1 needs, with only whitespace
  around them: `<think>`, non-blank thinking, `</think>`, `<answer>`, a non-blank answer, then
  optionally `</answer>` (a stop string, so normally absent), as the stream parser reads
  them: a tag quoted inside the plan or the answer is text, not a second segment.
* Repetition: the share of the answer that repeats earlier text (0 = none, 1 = all), below.
* The paper's format reward also punishes repetition; here it is
  `format * (1 - repetition)`: a malformed completion gets 0 whatever its content, and a
  well-formed one loses exactly the padded share. `Scores` keeps both factors for logging.

Repetition metric
-----------------
Tokens are case-folded runs of letters of any script (Latin with accents, Cyrillic, Greek,
Hangul, Arabic...), numbers, and single CJK ideographs and kana (scripts that do not space
their words): a table whose rows differ in their numbers is not a repetition, and a Russian
paragraph repeated is one.
Shingles are runs of 4 tokens, or 6 when most tokens are CJK characters (about 4 words'
worth). The answer is cut into Markdown paragraphs (blank lines), and paragraphs longer than
128 tokens into near-equal chunks of at most 128, so one endless looping paragraph is still
judged piece by piece. Walking the units in order, a unit's containment c is the share of its
shingles already seen earlier in the answer (in any earlier unit, or earlier in the same
unit); its weight ramps linearly from 0 at c = 0.2 to 1 at c = 0.5. The penalty is the
token-weighted mean of the weights.

Why containment in everything seen so far, rather than Jaccard similarity with one earlier
paragraph: padding that splices sentences from several earlier paragraphs has low Jaccard
with each of them but high containment in their union; and one hash set of shingles makes the
whole computation a single linear pass, exact, with no pairwise comparisons or MinHash error.
Why the ramp: common phrases ("on the other hand", "at the end of") make honest paragraphs
re-use some 4-grams (in real manuals: a median of 2% of a paragraph's 4-grams, 18% at the
95th percentile), while a paragraph repeated with one word in ten swapped keeps about 60% of
them. So honest prose scores near 0 (0.01-0.08 for whole manuals), verbatim or lightly
rephrased padding scores its padded share, and the ramp keeps the reward continuous for RL.
The metric is lexical: a rewrite that changes more than about one word in four passes, and
judging that is the writing reward's job.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from longwrite.generate.parser import parse_transcript, split_think_answer
from longwrite.io.counting import count_words

if TYPE_CHECKING:  # only for the annotation: any object with `lo` and `hi` will do
    from longwrite.length.targets import WordRange

MIN_OVERSHOOT = 500  # words between hi and the default Lmax, at least
WORD_SHINGLE = 4  # tokens per shingle in mostly-English text
CJK_SHINGLE = 6  # tokens (characters) per shingle in mostly-Chinese text
MAX_UNIT = 128  # most tokens per unit: longer paragraphs are cut into chunks
RAMP_LOW = 0.2  # containment at or below which a unit counts as original
RAMP_HIGH = 0.5  # containment at or above which a unit counts as wholly repeated

# Ideographs (CJK and its extension A, compatibility ideographs) and kana: one token each.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
CJK_RE = re.compile(f"[{_CJK}]")
# A CJK character, a run of letters of any other script, or a number.
TOKEN_RE = re.compile(f"[{_CJK}]|[^\\W\\d_{_CJK}]+|\\d+")
PARAGRAPH_BREAK_RE = re.compile(r"\n[^\S\n]*\n")


def default_max_words(hi: int) -> int:
    """Lmax for a range ending at `hi`: twice `hi`, but at least `hi + 500`.

    >>> default_max_words(2200), default_max_words(200), default_max_words(0)
    (4400, 700, 500)
    """
    return hi + max(hi, MIN_OVERSHOOT)


def length_reward(words: int, lo: int, hi: int, *, max_words: int | None = None) -> float:
    """The paper's length reward for an answer of `words` words and a target [lo, hi].

    >>> length_reward(2000, 1800, 2200)
    1.0
    >>> length_reward(900, 1800, 2200)  # half of lo
    0.5
    >>> length_reward(3300, 1800, 2200)  # Lmax = 4400: (4400 - 3300) / (4400 - 2200)
    0.5
    >>> length_reward(5000, 1800, 2200)  # past Lmax: clamped
    0.0
    """
    if words < 0:
        raise ValueError(f"words must be >= 0, got {words}")
    if lo < 0 or hi < lo:
        raise ValueError(f"need 0 <= lo <= hi, got [{lo}, {hi}]")
    lmax = default_max_words(hi) if max_words is None else max_words
    if lmax <= hi:
        raise ValueError(f"max_words must be greater than hi={hi}, got {lmax}")
    if words < lo:
        return words / lo
    if words <= hi:
        return 1.0
    return max(0.0, (lmax - words) / (lmax - hi))


def format_reward(text: str) -> float:
    """1.0 if `text` is one `<think>` segment then one `<answer>` segment, else 0.0.

    The layout is read by the stream parser, so a tag the plan or the answer merely quotes
    ("the essay goes inside <answer> tags") counts as text, exactly as at inference.

    >>> format_reward("<think>plan</think>\\n<answer>The document.")
    1.0
    >>> format_reward("<think>I will use <answer> tags.</think><answer>The document.")
    1.0
    >>> format_reward("The document, with no plan.")
    0.0
    """
    parsed = parse_transcript(text)
    ok = parsed.shape.well_formed and parsed.thinking.strip() and parsed.answer.strip()
    return 1.0 if ok else 0.0


def direct_format_reward(text: str) -> float:
    """The format reward for `--no-think`: the direct template already opens `<answer>`, so a
    well-formed completion is the work alone, with no thinking block and nothing after it.

    >>> direct_format_reward("The document."), direct_format_reward("<think>plan</think>Doc")
    (1.0, 0.0)
    """
    parsed = parse_transcript(text)
    shape = parsed.shape
    ok = (
        shape.think_blocks == 0
        and not shape.preamble
        and not shape.trailing
        and parsed.answer.strip()
    )
    return 1.0 if ok else 0.0


def _units(tokens: list[str]) -> list[list[str]]:
    """`tokens` cut into near-equal chunks of at most `MAX_UNIT` tokens."""
    if len(tokens) <= MAX_UNIT:
        return [tokens]
    parts = math.ceil(len(tokens) / MAX_UNIT)
    size = math.ceil(len(tokens) / parts)
    return [tokens[i : i + size] for i in range(0, len(tokens), size)]


def _ramp(containment: float) -> float:
    """0 at or below `RAMP_LOW`, 1 at or above `RAMP_HIGH`, linear between."""
    return min(1.0, max(0.0, (containment - RAMP_LOW) / (RAMP_HIGH - RAMP_LOW)))


def _default_shingle(text: str, tokens: int) -> int:
    """`CJK_SHINGLE` if most of the `tokens` tokens of `text` are CJK characters."""
    if text.isascii():  # the common English case, without a scan for CJK
        return WORD_SHINGLE
    return CJK_SHINGLE if 2 * len(CJK_RE.findall(text)) > tokens else WORD_SHINGLE


def _scan(
    paragraphs: list[list[str]], shingle: int, seen: set[tuple[str, ...]],
    into: set[tuple[str, ...]],
) -> float:  # fmt: skip
    """Repeated tokens of `paragraphs` (token lists, in order), walking their units against
    `seen` and `into`; each unit's new shingles go into `into` (`seen` itself to keep them)."""
    repeated = 0.0
    for paragraph in paragraphs:
        for unit in _units(paragraph):
            grams = len(unit) - shingle + 1
            if grams <= 0:
                continue
            new = set(zip(*(unit[i:] for i in range(shingle)), strict=False))
            new -= seen  # the unit's distinct shingles not seen before
            if into is not seen:
                new -= into
            into |= new
            repeated += _ramp((grams - len(new)) / grams) * len(unit)
    return repeated


def repetition_penalty(text: str, *, shingle: int | None = None) -> float:
    """Share of `text` (in tokens) that repeats earlier text; see the module docs.

    `shingle` overrides the tokens per shingle (default: 4, or 6 for mostly-CJK text).

    >>> repetition_penalty("one two three four five\\n\\none two three four five")
    0.5
    >>> repetition_penalty("one two three four five\\n\\nsix seven eight nine ten")
    0.0
    """
    lowered = text.lower()
    paragraphs = [TOKEN_RE.findall(p) for p in PARAGRAPH_BREAK_RE.split(lowered)]
    total = sum(len(p) for p in paragraphs)
    if total == 0:
        return 0.0
    if shingle is None:
        shingle = _default_shingle(lowered, total)
    if shingle < 1:
        raise ValueError(f"shingle must be >= 1, got {shingle}")
    seen: set[tuple[str, ...]] = set()
    return _scan(paragraphs, shingle, seen, seen) / total


class Running:
    """`repetition_penalty` of a text that grows at its end (a document as sections are
    added), each paragraph read once instead of the whole text again for every section.

    Complete paragraphs (a paragraph break after them) are counted once; the last one, which
    may go on, is held back and read with whatever is asked next. The figures are exactly the
    function's: when the text's default shingle changes (it became mostly CJK), it is counted
    again from the start.
    """

    def __init__(self, text: str = "") -> None:
        self.text = ""
        self._reset(WORD_SHINGLE)
        self.extend(text)

    def _reset(self, shingle: int) -> None:
        self._shingle, self._seen = shingle, set()
        self._repeated, self._tokens, self._cjk = 0.0, 0, 0
        self._pending = ""  # the last paragraph, not counted yet

    def _read(self, more: str) -> tuple[list[str], list[list[str]], int, int]:
        """The held-back paragraph and `more`: (raw paragraphs, their tokens, tokens in all,
        CJK characters in all, the held-back text's included)."""
        raw = PARAGRAPH_BREAK_RE.split(self._pending + more)
        lowered = [p.lower() for p in raw]
        tokens = [TOKEN_RE.findall(p) for p in lowered]
        total = self._tokens + sum(len(t) for t in tokens)
        cjk = self._cjk + sum(len(CJK_RE.findall(p)) for p in lowered if not p.isascii())
        return raw, tokens, total, cjk

    @staticmethod
    def _shingle_for(tokens: int, cjk: int) -> int:
        return CJK_SHINGLE if 2 * cjk > tokens else WORD_SHINGLE

    def repeated(self, more: str = "") -> float:
        """Repeated tokens of `text + more` (the text itself unchanged)."""
        raw, tokens, total, cjk = self._read(more)
        if self._shingle_for(total, cjk) != self._shingle:
            return repetition_penalty(self.text + more) * total
        return self._repeated + _scan(tokens, self._shingle, self._seen, set())

    def penalty(self, more: str = "") -> float:
        """`repetition_penalty(text + more)`."""
        total = self._read(more)[2]
        return self.repeated(more) / total if total else 0.0

    def extend(self, more: str) -> None:
        """`more` appended to the text."""
        self.text += more
        raw, tokens, total, cjk = self._read(more)
        shingle = self._shingle_for(total, cjk)
        if shingle != self._shingle:  # counted again with the text's own shingle
            self._reset(shingle)
            raw, tokens, total, cjk = self._read(self.text)
        self._repeated += _scan(tokens[:-1], self._shingle, self._seen, self._seen)
        self._tokens = total - len(tokens[-1])
        self._cjk = cjk - (len(CJK_RE.findall(raw[-1].lower())) if not raw[-1].isascii() else 0)
        self._pending = raw[-1]


def format_with_repetition(format_score: float, repetition: float) -> float:
    """The paper's format reward: structure, less the repeated share.

    >>> format_with_repetition(1.0, 0.25)
    0.75
    """
    return format_score * (1.0 - repetition)


@dataclass(frozen=True)
class Scores:
    """Rewards of one completion; `length` is None when there was no target."""

    length: float | None
    format: float
    repetition: float
    total: float

    @property
    def format_with_repetition(self) -> float:
        return format_with_repetition(self.format, self.repetition)


def score_completion(text: str, target: WordRange | None, *, think: bool = True) -> Scores:
    """All rewards of a raw completion (`<think>...</think><answer>...`, or with `think=False`
    the answer alone, as the direct template asks).

    `total` is the mean of the rewards present: the length reward (when there is a target)
    and the format reward with repetition folded in.

    >>> from longwrite.length.targets import WordRange
    >>> s = score_completion("<think>plan</think><answer>one two three", WordRange(6, 8))
    >>> s.length, s.format, s.repetition, s.total
    (0.5, 1.0, 0.0, 0.75)
    """
    _, answer = split_think_answer(text)
    fmt = format_reward(text) if think else direct_format_reward(text)
    rep = repetition_penalty(answer)
    shaped = format_with_repetition(fmt, rep)
    if target is None:
        return Scores(length=None, format=fmt, repetition=rep, total=shaped)
    length = length_reward(count_words(answer), target.lo, target.hi)
    return Scores(length=length, format=fmt, repetition=rep, total=(length + shaped) / 2)
