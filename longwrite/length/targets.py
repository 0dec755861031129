"""The length a prompt asks for, in LongBench-Write words, and the range the paper grants it.

Length control, the RL length reward and `eval length` all need to know how long the answer
should be. When the prompt says so ("a 3,000-word essay", "不少于800字", "five posts of about
300 words each") `extract_target` reads it with regular expressions; when it does not,
`length.assess.predict_range` asks an LLM, as the paper's length assessor does.

Choices, each one a rule rather than a list of known prompts:

- A number is a length only when a unit follows it (words, characters, pages, 字, 词, 页) or
  a label precedes it (字数, 篇幅, 长度, word count, length), as in "字数1400左右". That alone
  ignores years, prices, ages, percentages, item counts ("5 bad habits", "三个星座") and list
  numbering. Numbers after $, ¥, €, £ or # are never lengths.
- "字" and English "characters" count as words: LongBench-Write counts one CJK character as
  one word. A lone Chinese numeral before 字 (十字, 八字, 千字文) is an idiom, not a length,
  and "characters" below 50 are people in a story; any length below 10 words is a count of
  items ("use these 5 words"). Sentences, paragraphs and lines have no fixed size: None.
- Pages: 200 words per page in English (LongBench-Write records a 50-page novel as 10,000
  words) and 500 characters per page in Chinese (a 20 x 25 manuscript sheet).
- Bounds and the benchmark's conventions for `Target.words`: exact, about, at least and at
  most N all give N; a range "A to B" gives B, the upper end ("100至200字" is recorded as 200).
  The range stays honest: `paper_range` gives [A, B]. "A to B" is a range only when
  A < B <= 5 A ("1-2k" and "3-5千" share the suffix); otherwise B alone is the length.
- Several pieces: "N posts of M words", "N 500-word essays", "each M words", "每篇M字" with
  "五篇" (before or after), "各写M字" after "两部分": the target is N x M. The count is a
  number before a plural noun or a Chinese measure word (篇, 首, 天, 部分...) and must be >= 2.
- Input versus output: a length right after "this", "these", "my", "following", "here is
  a", "这篇", "以下"... describes the text the user supplies ("summarise this 3,000-word
  article in 200 words") and is never the target. After "the" or "of a" it probably does, so
  it counts only when the prompt states no other length. Among the rest the largest wins:
  the whole outweighs its parts ("a 2,000-word essay, intro under 200 words").
- Text is NFKC-normalised first (full-width digits and colons), so `source` quotes the
  normalised prompt; for a multiplied target it reads "五篇 × 每篇400字左右".
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

KINDS = ("exact", "about", "at_least", "at_most", "between")


WORDS_PER_PAGE = {"en": 200, "zh": 500}


MIN_WORDS = 10


MIN_CHARACTERS = 50


MAX_PREDICTED, MAX_SPREAD, STEP = 12_000, 3_000, 100  # the paper's rules for predicted ranges


@dataclass(frozen=True)
class WordRange:
    lo: int
    hi: int


@dataclass(frozen=True)
class Target:
    words: int
    range: WordRange
    kind: str
    source: str


_CN_DIGITS = {
    "一": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}


_CN_UNITS = {"十": 10, "百": 100, "千": 1000}


_CN_MYRIAD = 10_000  # 万: multiplies everything before it


def parse_chinese_number(text: str) -> int:
    """ "两千五百" -> 2500, "一万五千" -> 15000, "十万" -> 100000, "1.2万" -> 12000.

    Colloquial endings are read as the next unit down: "两千五" -> 2500, "一万五" -> 15000;
    a zero only marks a skipped unit: "一千零五" -> 1005.
    """
    tokens = re.findall(r"\d+(?:\.\d+)?|\S", text.strip())
    if not tokens:
        raise ValueError("not a Chinese number: empty text")
    total = section = 0.0
    digit: float | None = None
    last_unit = 0
    for token in tokens:
        if token in ("零", "〇"):
            last_unit = 0
        elif token[0].isdigit() or token in _CN_DIGITS:
            if digit is not None:
                raise ValueError(f"not a Chinese number: {text!r}")
            digit = float(token) if token[0].isdigit() else _CN_DIGITS[token]
        elif token in _CN_UNITS:
            section += (1 if digit is None else digit) * _CN_UNITS[token]
            digit, last_unit = None, _CN_UNITS[token]
        elif token == "万":
            total += (section + (digit or 0) or 1) * _CN_MYRIAD
            section, digit, last_unit = 0, None, _CN_MYRIAD
        else:
            raise ValueError(f"not a Chinese number: {text!r}")
    if digit is not None and last_unit >= 100:  # 两千五: the 五 means five hundred
        digit *= last_unit // 10
    return round(total + section + (digit or 0))


_EN_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
)


_EN_TENS = "twenty thirty forty fifty sixty seventy eighty ninety"


_EN_VALUES = dict(zip(_EN_ONES.split(), range(20), strict=True))


_EN_VALUES |= dict(zip(_EN_TENS.split(), range(20, 100, 10), strict=True))


def parse_english_number(text: str) -> int:
    """ "twenty-five hundred" -> 2500, "a thousand" -> 1000, "two thousand five hundred" -> 2500."""
    words = [w for w in re.split(r"[\s-]+", text.strip().lower()) if w != "and"]
    if words[:1] in (["a"], ["an"]):
        words[0] = "one"
    total = current = 0
    for word in words:
        if word in _EN_VALUES:
            current += _EN_VALUES[word]
        elif word == "hundred":
            current = (current or 1) * 100
        elif word == "thousand":
            total, current = total + (current or 1) * 1000, 0
        else:
            raise ValueError(f"not an English number: {text!r}")
    return total + current


_SCALE = {"k": 1000, "thousand": 1000, "千": 1000, "万": 10_000}


_DIGITS_RE = re.compile(r"(\d[\d,]*(?:\.\d+)?)\s*(k|thousand|千|万)?", re.I)


def parse_number(text: str) -> int:
    """Any number form this module reads: "10,000", "1.5k", "3千", "两千五百", "five hundred"."""
    if m := _DIGITS_RE.fullmatch(text.strip()):
        return round(float(m[1].replace(",", "")) * _SCALE.get((m[2] or "").lower(), 1))
    if re.search(r"[\u4e00-\u9fff]", text):
        return parse_chinese_number(text)
    return parse_english_number(text)


_NW = "|".join(sorted(_EN_VALUES, key=len, reverse=True) + ["hundred", "thousand"])


_EN_NUM = rf"(?:an?[\s-]+(?=hundred|thousand))?\b(?:{_NW})(?:(?:[\s-]+and)?[\s-]+(?:{_NW}))*\b"


_NUM = (
    r"(?<![A-Za-z\d.])(?<!\d,)(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+(?:\.\d+)?)"
    r"(?:[kK](?![A-Za-z])|\s?thousand\b|[千万])?"
    rf"|[零〇一二两三四五六七八九十百千万]+|{_EN_NUM}"
)


_UNIT = r"words?\b|characters?\b|chars?\b|pages?\b|个?(?:汉字|字|词|页)"


_BOUNDS = {
    "at_least": (
        r"at\s+least|no[t]?\s+(?:less|fewer)\s+than|(?:a\s+)?minimum\s+of|at\s+(?:the\s+)?minimum"
        r"|more\s+than|over|upwards\s+of|in\s+excess\s+of|longer\s+than"
        r"|不少于|不低于|不小于|不得少于|不能少于|至少|最少|最低|起码|多于|超过|大于|高于",
        r"or\s+(?:more|longer|above)|plus|minimum|at\s+least|或以上|及以上|以上|起",
    ),
    "at_most": (
        r"no[t]?\s+more\s+than|no\s+longer\s+than|at\s+most|at\s+(?:the\s+)?maximum"
        r"|(?:a\s+)?maximum\s+of|max|up\s+to|under|(?:less|fewer|shorter)\s+than|within"
        r"|not\s+exceeding|not\s+to\s+exceed|below"
        r"|不超过|不多于|不大于|不高于|不得超过|不能超过|不要超过|不可超过|最多|至多|少于|低于|控制在",
        r"or\s+(?:less|fewer|shorter|under)|max(?:imum)?|at\s+most|tops|以内|之内"
        r"|以下(?![的内几要材问文这是面列述])",
    ),
    "about": (
        r"about|approximately|approx\.?|around|roughly|circa|nearly|close\s+to|some|~"
        r"|大约|大概|大致|约|差不多|将近|接近",
        r"or\s+so|give\s+or\s+take|more\s+or\s+less|左右|上下|许",
    ),
}


_PRE = "|".join(pre for pre, _ in _BOUNDS.values())


_SUF = "|".join(suf for _, suf in _BOUNDS.values())


_LABEL = r"字数|篇幅|长度|word\s+(?:count|limit)|length"


_LENGTH = re.compile(
    rf"(?:(?P<label>{_LABEL})\s*(?:要求|限制|控制)?\s*(?::|is|of|在|为|是|需要|要)?\s*)?"
    rf"(?:(?:(?P<between>between)|(?P<pre>from|{_PRE}))\s*(?:of\s+|要|为|在|是|写|达到?)?\s*)?"
    rf"(?:(?P<a>{_NUM})\s*(?:{_UNIT})?\s*"
    r"(?(between)(?:and|-|–|to)|(?:(?<![a-z])-|–|—|~|to|至|到))\s*)?"
    rf"(?P<n>{_NUM})(?P<plus>\s*\+)?\s*(?:-\s*)?(?P<unit>{_UNIT})?(?:\s*(?P<suf>{_SUF}))?",
    re.I,
)


# Several pieces: a count is a number before a plural noun, or before a Chinese measure word.
_MEASURE = r"篇|首|段|章|节|天|日|部分|封|则|幕|集|课|讲|期|条|份|回|周|部|本|组|项|次"


_COUNT_NUM = rf"(?:\d+|[一二两三四五六七八九十]+|{_EN_NUM})"


_COUNT_EN = rf"(?P<c>{_COUNT_NUM})\s+(?:[a-z-]+\s+){{0,3}}?(?!words|characters|pages)[a-z-]+s\b"


_COUNT_ZH = rf"(?<!第)(?P<c>{_COUNT_NUM})\s*个?(?:{_MEASURE})"


_EACH_AFTER = re.compile(r"\s*(?:each|apiece|per\s+[a-z]+)\b", re.I)


_EACH_BEFORE = re.compile(r"\beach\b[^.!?;\n\d]{0,30}$", re.I)


_OF_EN = re.compile(rf"{_COUNT_EN}\s+(?:of|with)\s+$", re.I)


_DIRECT_EN = re.compile(rf"(?<![A-Za-z\d.,-])(?P<c>{_COUNT_NUM})\s+$", re.I)


_DIRECT_ZH = re.compile(rf"{_COUNT_ZH}\s*的?\s*$")


_PER_ZH = re.compile(
    rf"(?:每|各)(?:一|个)?(?P<cls>{_MEASURE})?(?:写|约|大约|大概|需要|要|都|为|在|是)*\s*:?\s*$"
)


# A length right after these words describes the user's own text: never the target ...
_INPUT = re.compile(
    r"(?:\b(?:this|that|these|those|my|your|his|her|our|their|its|following|attached|given"
    r"|provided|original|existing|previous|here\s+is\s+an?)\s+"
    r"|(?:这|该|此|上面|以下|下面|上述|原文)一?(?:篇|段|份|个|部|本)?的?\s*)$",
    re.I,
)


# ... and after these it probably does ("summarise the 3,000-word report in 200 words"): such a
# length is the target only when the prompt states no other.
_MAYBE_INPUT = re.compile(r"\b(?:the|of\s+an?)\s+$", re.I)


def _value(text: str) -> int:
    try:
        return parse_number(text)
    except ValueError:
        return 0


def _kind(phrase: str | None) -> str | None:
    """The bound a phrase such as "no less than" or "左右" expresses."""
    for kind, (pre, suf) in _BOUNDS.items():
        if phrase and re.fullmatch(rf"(?:{pre}|{suf})", phrase.strip(), re.I):
            return kind
    return None


def _scale(text: str) -> int:
    """1000 for "2k" or "3千", 10000 for "1.2万", else 1."""
    m = _DIGITS_RE.fullmatch(text.strip())
    return _SCALE.get((m[2] or "").lower(), 1) if m else 1


def _count(text: str, start: int, end: int) -> tuple[int, str] | None:
    """How many pieces the length at text[start:end] is for (>= 2), and the count's text."""
    before = text[:start]
    found = _OF_EN.search(before) or _DIRECT_EN.search(before) or _DIRECT_ZH.search(before)
    if not found and (_EACH_AFTER.match(text, end) or _EACH_BEFORE.search(before)):
        found = next(reversed(list(re.finditer(_COUNT_EN, before, re.I))), None)
    if not found and (per := _PER_ZH.search(before)):
        measure = per["cls"] or _MEASURE  # 每篇 looks for 五篇 anywhere; 各写 for any count before
        hits = re.finditer(rf"(?<![每各第])(?P<c>{_COUNT_NUM})\s*个?(?:{measure})", text)
        hits = [h for h in hits if _value(h["c"]) >= 2 and (per["cls"] or h.end() <= per.start())]
        found = min(hits, key=lambda h: abs(h.start() - start), default=None)
    if found and 2 <= (n := _value(found["c"])) <= 100:
        return n, re.sub(r"\s+(?:of|with)\s*$", "", found[0].strip(), flags=re.I)
    return None


@dataclass(frozen=True)
class _Candidate:
    target: Target
    rank: int  # 0 the answer's length, 1 maybe the user's text's, 2 the user's text's


def _candidate(text: str, m: re.Match[str]) -> _Candidate | None:
    """The target one match of `_LENGTH` states, or None when the number is not a length."""
    unit = (m["unit"] or "").strip()
    if not unit and not (m["label"] and (m["suf"] or not re.match(r"\s*\w", text[m.end() :]))):
        return None
    if text[max(0, m.start("n") - 1) : m.start("n")] in {"$", "¥", "€", "£", "#"}:
        return None
    if re.fullmatch(r"[零〇一二两三四五六七八九十百千万]", m["n"]) and re.match(r"个?[字词]", unit):
        return None  # 十字, 八字, 千字文: idioms, not lengths
    n, a = _value(m["n"]), _value(m["a"]) if m["a"] else 0
    if a and _scale(m["a"]) == 1 and a * _scale(m["n"]) <= n:
        a *= _scale(m["n"])  # "1-2k words", "3-5千字"
    between = 0 < a < n <= 5 * a
    bound = None if (m["pre"] or "").lower() == "from" else _kind(m["pre"])
    kind = "between" if between else bound or _kind(m["suf"]) or "exact"
    if kind == "exact" and m["plus"]:
        kind = "at_least"
    per_unit = 1
    if re.fullmatch(r"pages?", unit, re.I):
        per_unit = WORDS_PER_PAGE["en"]
    elif unit.endswith("页"):
        per_unit = WORDS_PER_PAGE["zh"]
    if n * per_unit < (MIN_CHARACTERS if re.match(r"char", unit, re.I) else MIN_WORDS):
        return None
    count = _count(text, m.start(), m.end())
    times, source = (count[0], f"{count[1]} × {m[0].strip()}") if count else (1, m[0].strip())
    words = n * per_unit * times
    lo = a * per_unit * times if between else None
    target = Target(words, paper_range(words, kind, lo, words if between else None), kind, source)
    before = text[max(0, m.start() - 60) : m.start()]
    rank = 2 if _INPUT.search(before) else 1 if _MAYBE_INPUT.search(before) else 0
    return _Candidate(target, rank)


# A lower and an upper bound in one breath: "at least 800 words and at most 1,200",
# "no more than 1200 and no fewer than 800 words", "不少于800字，不超过1200字".
_AT_LEAST, _AT_MOST = _BOUNDS["at_least"][0], _BOUNDS["at_most"][0]
_JOIN = r"\s*(?:,|;|，|；|、)?\s*(?:and|but|yet|且|但|并且|而且)?\s*"
_PAIR = re.compile(
    rf"(?:(?P<p1>{_AT_LEAST})|(?P<q1>{_AT_MOST}))\s*(?P<x>{_NUM})\s*(?P<u1>{_UNIT})?"
    rf"{_JOIN}(?(p1)(?:{_AT_MOST})|(?:{_AT_LEAST}))\s*(?P<y>{_NUM})\s*(?P<u2>{_UNIT})?",
    re.I,
)


def _pair(text: str) -> _Candidate | None:
    """Both bounds stated apart, as one 'between' target (one of them names the unit)."""
    for m in _PAIR.finditer(text):
        unit = (m["u1"] or m["u2"] or "").strip()
        if not unit:
            continue
        per_unit = 1
        if re.fullmatch(r"pages?", unit, re.I):
            per_unit = WORDS_PER_PAGE["en"]
        elif unit.endswith("页"):
            per_unit = WORDS_PER_PAGE["zh"]
        x, y = _value(m["x"]) * per_unit, _value(m["y"]) * per_unit
        lo, hi = (x, y) if m["p1"] else (y, x)
        if 0 < lo < hi <= 5 * lo and hi >= MIN_WORDS:
            before = text[max(0, m.start() - 60) : m.start()]
            rank = 2 if _INPUT.search(before) else 0
            target = Target(hi, paper_range(hi, "between", lo, hi), "between", m[0].strip())
            return _Candidate(target, rank)
    return None


def extract_target(prompt: str) -> Target | None:
    """The length `prompt` asks for, or None when it states none."""
    text = unicodedata.normalize("NFKC", prompt)
    pair = _pair(text)
    if pair is not None and pair.rank == 0:
        return pair.target
    found = [c for m in _LENGTH.finditer(text) if (c := _candidate(text, m))]
    for rank in (0, 1):
        if ranked := [c.target for c in found if c.rank == rank]:
            return max(ranked, key=lambda t: t.words)
    return None


def _tenth(words: int, tenths: int) -> int:
    """words * tenths / 10, rounded half up."""
    return (words * tenths + 5) // 10


def paper_range(words: int, kind: str, lo: int | None = None, hi: int | None = None) -> WordRange:
    """The paper's range for an explicit request of `words`: +/-10% for exact and about,
    [N, 1.1 N] for at least, [0.9 N, N] for at most, [lo, hi] for between."""
    if kind == "between":
        if lo is None or hi is None or not 0 <= lo <= hi:
            raise ValueError(f"a 'between' range needs 0 <= lo <= hi, not {lo}, {hi}")
        return WordRange(lo, hi)
    ranges = {
        "exact": (_tenth(words, 9), _tenth(words, 11)),
        "about": (_tenth(words, 9), _tenth(words, 11)),
        "at_least": (words, _tenth(words, 11)),
        "at_most": (_tenth(words, 9), words),
    }
    if kind not in ranges:
        raise ValueError(f"unknown kind {kind!r}: use one of {', '.join(KINDS)}")
    return WordRange(*ranges[kind])
