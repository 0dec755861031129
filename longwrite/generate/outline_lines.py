"""One line of an outline: its numbering, its title alone, its word count.

Why a module of its own: the plan reader (`generate.outline_read`), the user's plan
(`generate.plan`) and the section stream (`generate.section_stream`, which must recognise a
later part's heading in whatever form the model writes it) all read lines the same way.

A part's title is the title alone: no numbering (`1.`, `I.`, `Part One:`, `Chapter 3:`,
`第二章：`, `一、`, `（三）`, `4、`), bold, count, or description after a colon, a dash or a
parenthesis (a span of years stays: "The Age of Justinian (527–565)"); bold text at the start
is the title whole. Its count is read from `(about 1,500 words)`, `~1,500 words`,
`– 2,000 words`, `, 6,000 words`, `1.5k words`, `(~1.5k)`, a range (its midpoint),
`（约3000字左右）`, `1500字上下`; None when the line gives none.
"""

from __future__ import annotations

import re

_CN = "一二三四五六七八九十百零〇两"
_WORDS_NUM = "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve"
# A part's numbering at the start of a line (after any bold marker).
NUMBERING = re.compile(
    rf"^(?:(?:part|chapter|section|book|act|stage|phase)\s+(?:\d+|[ivxlc]+|{_WORDS_NUM})\b"
    r"(?:\s*[:.\-–—)](?=\s|$)|(?=\s)|$)"  # Part One:  Chapter 3 -  (not Phase 1–3)
    r"|(?-i:[IVXLC]+)[.)](?=\s)"  # I.  IV)
    r"|\d{1,2}[.)、](?!\d)"  # 1.  2)  3、  (not 1.1)
    rf"|第[{_CN}\d]+[章节部篇回卷幕][分]?[:：、.]?"  # 第一章  第2部分
    rf"|[{_CN}]+[、.]"  # 一、
    rf"|[(（][{_CN}\d]+[)）])\s*",  # （一）
    re.IGNORECASE,
)
SUBPOINT = re.compile(r"^\s*\d+\.\d+")  # 1.1, 2.3: a sub-point, never a part
_NUM = r"\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?"
_COUNT = re.compile(
    rf"(?:about|around|approx(?:imately|\.)?|roughly|~|≈|约|大约|共)?\s*"
    rf"({_NUM})\s*(k)?(?:\s*(?:-|–|—|~|to|至|到)\s*({_NUM})\s*(k)?)?\s*"
    r"(?:words?\b|字)(?:\s*(?:左右|上下))?"
    rf"|(?<=[(（])\s*[~≈约]?\s*({_NUM})\s*(k)(?=\s*[)）])",  # (~1.5k): thousands of words
    re.IGNORECASE,
)
_BRACKETS = re.compile(r"[(\[（【]\s*[)\]）】]")
_DESCRIPTION = re.compile(r"\s*(?::\s|：|\s[–-]\s|—|[(（\[])")
_YEARS = re.compile(
    r"[(（]\s*(?:c\.\s*)?\d{1,4}\s*(?:BCE|BC|CE|AD)?\s*(?:[–\-—~至到]\s*\d{1,4}"
    r"\s*(?:BCE|BC|CE|AD)?)?\s*(?:年)?\s*[)）]"
)
_SUM = re.compile(r"[+=×]|^(?:total|sum|check|合计|总计|共计)", re.IGNORECASE)
MAX_TITLE_WORDS = 12  # a longer "title" is a sentence: notes, not a part
_TRAIL = " \t-–—:,;.*_：，、。～~[]【】"
LABELS = re.compile(  # a list under such a label is not the outline
    r"^(?:\S+\s+){0,2}(?:character|cast|people|source|reference|citation|key (?:point|idea|term)"
    r"|style|tone|notes?\b|things to|question|人物|角色|来源|参考|要点|风格|语气|注意|问题)",
    re.IGNORECASE,
)


# -- one line ------------------------------------------------------------------------------------


def count_of(text: str) -> int | None:
    """The word count a line gives for its part: a range's midpoint, `1.5k` as 1,500."""
    m = _COUNT.search(text)
    if m is None:
        return None

    def value(num: str, k: str | None) -> float:
        return float(num.replace(",", "")) * (1000 if k else 1)

    if m.group(5):  # (~1.5k)
        return round(value(m.group(5), m.group(6)))
    lo = value(m.group(1), m.group(2) or m.group(4))
    hi = value(m.group(3), m.group(4)) if m.group(3) else lo
    words = round((lo + hi) / 2)
    return words if words > 0 else None


def strip_numbering(text: str) -> str:
    """`text` without a leading part number (`1.`, `I.`, `Part One:`, `第二章：`, `一、`)."""
    return NUMBERING.sub("", text.strip(), count=1)


def title_of(line: str) -> tuple[str, int | None]:
    """(title alone, count or None) of one outline line."""
    text = line.strip()
    words = count_of(text)
    text = strip_numbering(text)
    bold = re.match(r"^(\*\*|__)(.+?)\1", text)
    if bold:  # "**Why compost** (~1,500 words): ..." -> the bold text is the title, whole
        title = strip_numbering(bold.group(2))
        title = _BRACKETS.sub("", _COUNT.sub("", title))
        return title.strip(_TRAIL).strip(), words
    text = _COUNT.sub("", text)
    text = _BRACKETS.sub("", text)
    text = text.replace("**", "").replace("__", "").strip().lstrip(":：-–—.,， ")
    text = _cut_description(text)
    return text.strip(_TRAIL).strip().strip("*_`").strip(), words


def _cut_description(text: str) -> str:
    """`text` up to its description (after `: `, `：`, a dash, or a parenthesis other than a
    span of years, which belongs to the title: "The Age of Justinian (527–565)")."""
    for m in _DESCRIPTION.finditer(text):
        rest = text[m.start() :].lstrip()
        years = _YEARS.match(rest)
        if years:
            continue
        return text[: m.start()]
    return text


def is_question(title: str) -> bool:
    return title.rstrip().endswith(("?", "？"))


def title_words(title: str) -> int:
    """A title's length in words (four Chinese characters read about as one word)."""
    cjk = len(re.findall(r"[\u4e00-\u9fff]", title))
    return len(title.split()) + cjk // 4


def is_part_line(line: str) -> bool:
    """Whether a line of a paragraph reads as one part of an outline: numbered (`I. ...`,
    `一、...`, `Part One: ...`), or a short title with a count ("The Revival — 2,100 words");
    never a sub-point (`1.1`), a sum ("1500 + 3000 = 4,500 words") or a sentence."""
    text = line.strip().lstrip("*_ ")
    if not text or SUBPOINT.match(line):
        return False
    if NUMBERING.match(text):
        return True
    m = _COUNT.search(text)
    if m is None or _SUM.search(text):
        return False
    title = title_of(text)[0]
    before = text[: m.start()].replace("**", "").replace(title, "", 1)
    if not title or before.strip(_TRAIL + "()（）约~≈"):
        return False  # the count is not the title's: "Structure — ten parts at 5,000 words"
    return title_words(title) <= MAX_TITLE_WORDS and not text.endswith(("?", "？"))
