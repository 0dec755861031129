"""What a document says about itself before pandoc sees it: title, language, heading levels.

LongWriter-Zero opens most documents with one `# Title` and writes its parts as `##`
headings; sectioned runs write `##` sections with no title at all. An exported file wants the
title in its metadata (the title page of an EPUB, the `<title>` of a page, Word's Title
style) and the parts as top-level headings (EPUB chapters, Word's Heading 1). So:

- The title is the first block of the document when that block is the only level-1 heading
  (Markdown's structure, read with markdown-it-py as everywhere in longwrite); it is taken
  out of the body. A document whose level-1 headings are its chapters keeps them all, and
  its title comes from `--title` or the file's name.
- The remaining headings are shifted up so the shallowest becomes level 1 (pandoc's
  `--shift-heading-level-by`): `##` parts become chapters.
- The language is Chinese when the document has at least as many Chinese characters as
  English words (the units LongBench-Write counts), else English: a Chinese report that
  quotes some code stays Chinese, an English one that names a Chinese city stays English.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from markdown_it import MarkdownIt

# CommonMark with GitHub's tables and strikethrough: what pandoc's `gfm` reader reads.
_PARSER = MarkdownIt().enable("strikethrough").enable("table")
_CJK = re.compile(r"[\u4e00-\u9fff]")
_ENGLISH_WORD = re.compile(r"\b[a-zA-Z]+\b")

CHINESE, ENGLISH = "zh-CN", "en"


@dataclass(frozen=True)
class Prepared:
    """A document ready for pandoc: the body without its title, and what to say about it."""

    body: str
    title: str
    lang: str  # BCP 47: "en", "zh-CN", or what --lang gave
    shift: int  # heading levels to shift by (0 or negative)
    title_from_document: bool

    @property
    def chinese(self) -> bool:
        return self.lang.lower().startswith("zh")


def document_language(text: str) -> str:
    """`zh-CN` when Chinese characters are at least as many as English words, else `en`."""
    chinese = len(_CJK.findall(text))
    return CHINESE if chinese and chinese >= len(_ENGLISH_WORD.findall(text)) else ENGLISH


def prepare(
    markdown: str, *, fallback_title: str, title: str | None = None, lang: str | None = None
) -> Prepared:
    """Split off the title heading, measure the heading shift, settle the language.

    `title` and `lang` (the user's options) win over what the document says; a document
    with no title heading is called `fallback_title` (the file's name)."""
    text = markdown.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff")
    tokens = _PARSER.parse(text)
    headings = [(i, int(t.tag[1])) for i, t in enumerate(tokens) if t.type == "heading_open"]
    level_one = [i for i, level in headings if level == 1]
    first_block = next((i for i, t in enumerate(tokens) if t.level == 0 and t.nesting >= 0), None)
    found = None
    if len(level_one) == 1 and level_one[0] == first_block:
        i = level_one[0]
        found = _plain(tokens[i + 1].children or [])
        start, end = tokens[i].map or (0, 0)
        lines = text.split("\n")  # as markdown-it counts them (not str.splitlines: U+2028...)
        text = "\n".join(lines[:start] + lines[end:]).lstrip("\n")
        headings = [(j, level) for j, level in headings if j != i]
    shallowest = min((level for _, level in headings), default=1)
    return Prepared(
        body=text,
        title=title or found or fallback_title,
        lang=lang or document_language(text),
        shift=1 - shallowest,
        title_from_document=title is None and bool(found),
    )


def _plain(children: list) -> str:
    """The text of a heading's inline tokens, without its Markdown (`**`, backticks)."""
    parts = []
    for tok in children:
        if tok.type in ("text", "code_inline"):
            parts.append(tok.content)
        elif tok.type in ("softbreak", "hardbreak"):
            parts.append(" ")
    return " ".join("".join(parts).split())
