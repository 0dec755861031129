"""Text out of a user's files, one extractor per type, each saying where its text came from.

A citation is only checkable if the reader can find the passage again, so an extractor
returns blocks with a locator: the page of a PDF ("p. 4"), the heading a Markdown, Word or
HTML passage sits under, the line of a plain-text or JSON Lines file. Passages never span two
blocks (`sources.chunk`), so a locator is exact.

- `.md`, `.markdown`: headings found by markdown-it-py's token stream (not by regex: a `#` in
  a code block is no heading); YAML front matter is dropped. The Markdown is kept as written
  (tables, lists), since the model reads Markdown well.
- `.txt`: paragraphs, located by the line they start on.
- `.pdf`: pypdf's text layer, page by page. A PDF without one (a scan) is skipped with that
  reason: it needs OCR, which we do not do.
- `.docx`: python-docx, paragraphs and tables in body order; a "Heading n" style starts a
  block.
- `.html`, `.htm`: the standard library's parser (`sources.html_text`).
- `.jsonl`: one block per line, from its `text` (else `content`, `body`, `abstract`) field,
  located by its `title` or `id` and line.

Text files must be UTF-8 (a BOM is fine) or UTF-16 with a BOM; anything else is skipped with
that reason rather than guessed at. pypdf and python-docx are imported only when a file needs
them (`longwrite --help` imports neither).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from markdown_it import MarkdownIt

SUFFIXES = (".md", ".markdown", ".txt", ".pdf", ".docx", ".html", ".htm", ".jsonl")
MAX_FILE_BYTES = 64 * 1024 * 1024
JSON_TEXT_KEYS = ("text", "content", "body", "abstract")
JSON_NAME_KEYS = ("title", "name", "id")
_FRONT_MATTER = re.compile(r"\A---\n.*?\n(?:---|\.\.\.)\n", re.S)
_MAYBE_HEADING = re.compile(r"^ {0,3}(?:#|=+[ \t]*$|-+[ \t]*$)", re.M)  # ATX or setext


@dataclass(frozen=True)
class Block:
    """A stretch of a file's text that one locator names (a page, a heading's section)."""

    locator: str
    text: str


class Unreadable(Exception):
    """A file we could not extract text from; the message says why, for the summary."""


def extract(path: Path) -> list[Block]:
    """The blocks of `path` by its type; `Unreadable` says why there are none."""
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise Unreadable(f"not a supported type ({suffix or 'no extension'})")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise Unreadable(f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MB")
    if suffix == ".pdf":
        blocks = pdf_blocks(path)
    elif suffix == ".docx":
        blocks = docx_blocks(path)
    else:
        text = read_text(path)
        if suffix in (".md", ".markdown"):
            blocks = markdown_blocks(text)
        elif suffix in (".html", ".htm"):
            from longwrite.sources.html_text import html_blocks

            blocks = [Block(where, body) for where, body in html_blocks(text)]
        elif suffix == ".jsonl":
            blocks = jsonl_blocks(text)
        else:
            blocks = text_blocks(text)
    blocks = [b for b in blocks if b.text.strip()]
    if not blocks:
        raise Unreadable("no text in it")
    return blocks


def read_text(path: Path) -> str:
    """A text file as UTF-8 (BOM dropped) or BOM-marked UTF-16, with LF line ends."""
    data = path.read_bytes()
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = data.decode("utf-16")
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise Unreadable("not UTF-8 text (save it as UTF-8)") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def text_blocks(text: str) -> list[Block]:
    """Plain text: one block per paragraph run, located by the line it starts on. Paragraphs
    are grouped here into blocks of about 40 lines so that a passage names one line."""
    blocks: list[Block] = []
    lines = text.split("\n")
    start, buf = 0, []
    for i, line in enumerate(lines):
        if not line.strip() and len(buf) >= 40:
            blocks.append(Block(f"line {start + 1}", "\n".join(buf)))
            buf = []
        if not buf:
            if not line.strip():
                continue
            start = i
        buf.append(line)
    if buf:
        blocks.append(Block(f"line {start + 1}", "\n".join(buf)))
    return blocks


@cache
def _markdown() -> MarkdownIt:
    """The block parser alone: headings and their raw text are all we read (inline parsing
    would cost more than the rest of indexing a Markdown file)."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark").enable("table").disable("inline")


def markdown_blocks(text: str) -> list[Block]:
    """Markdown split at its headings; each block is located by its heading (the text before
    the first heading by the line it starts on)."""
    front = _FRONT_MATTER.match(text)
    skipped = text[: front.end()].count("\n") if front else 0
    lines = text.split("\n")
    if not _MAYBE_HEADING.search(text):  # no line could be a heading: one block
        return [Block(f"line {skipped + 1}", "\n".join(lines[skipped:]))]
    tokens = _markdown().parse("\n".join(lines[skipped:]))
    heads: list[tuple[int, int, str]] = []  # (first line, line after, heading text)
    for i, tok in enumerate(tokens):
        if tok.type == "heading_open" and tok.map:
            inline = tokens[i + 1].content if i + 1 < len(tokens) else ""
            heads.append((tok.map[0] + skipped, tok.map[1] + skipped, inline.strip()))
    blocks: list[Block] = []
    first = heads[0][0] if heads else len(lines)
    if "\n".join(lines[skipped:first]).strip():
        blocks.append(Block(f"line {skipped + 1}", "\n".join(lines[skipped:first])))
    for n, (_, body_from, title) in enumerate(heads):
        end = heads[n + 1][0] if n + 1 < len(heads) else len(lines)
        body = "\n".join(lines[body_from:end])
        if body.strip():
            blocks.append(Block(title or f"line {body_from + 1}", body))
    return blocks


def jsonl_blocks(text: str) -> list[Block]:
    """One block per JSON object line that has a text field; other lines are passed over."""
    blocks: list[Block] = []
    for n, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if not isinstance(obj, dict):
            continue
        body = next((obj[k] for k in JSON_TEXT_KEYS if isinstance(obj.get(k), str)), None)
        if not body:
            continue
        name = next((str(obj[k]) for k in JSON_NAME_KEYS if isinstance(obj.get(k), str | int)),
                    None)  # fmt: skip
        where = f"line {n}" if name is None else f"{name} (line {n})"
        blocks.append(Block(where, body))
    return blocks


def pdf_blocks(path: Path) -> list[Block]:
    """A PDF's text layer, one block per page."""
    try:
        from pypdf import PdfReader
        from pypdf.errors import PyPdfError
    except ImportError:
        raise Unreadable("PDF needs pypdf: pip install 'longwrite[sources]'") from None
    # pypdf logs its complaints about damaged files; the summary says what matters, once.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(path)
        if reader.is_encrypted and not reader.decrypt(""):
            raise Unreadable("an encrypted PDF")
        blocks = [
            Block(f"p. {n}", page.extract_text() or "") for n, page in enumerate(reader.pages, 1)
        ]
    except Unreadable:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, OSError) as e:
        raise Unreadable(f"a PDF pypdf cannot read ({type(e).__name__})") from None
    if not any(b.text.strip() for b in blocks):
        raise Unreadable("a PDF without a text layer (a scan needs OCR first)")
    return blocks


def docx_blocks(path: Path) -> list[Block]:
    """A Word document's paragraphs and tables in order, split at its headings."""
    try:
        import docx
        from docx.opc.exceptions import PackageNotFoundError
    except ImportError:
        raise Unreadable("DOCX needs python-docx: pip install 'longwrite[sources]'") from None
    try:
        document = docx.Document(str(path))
    except (PackageNotFoundError, ValueError, KeyError, OSError) as e:
        raise Unreadable(f"a DOCX python-docx cannot read ({type(e).__name__})") from None
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    blocks: list[Block] = []
    heading, lines = "", []
    for item in document.iter_inner_content():
        if isinstance(item, Paragraph):
            style = (item.style.name if item.style is not None else "") or ""
            if style.lower().startswith(("heading", "title")) and item.text.strip():
                if "\n".join(lines).strip():
                    blocks.append(Block(heading or "start", "\n\n".join(lines)))
                heading, lines = item.text.strip(), []
            elif item.text.strip():
                lines.append(item.text)
        elif isinstance(item, Table):
            rows = [" | ".join(c.text.strip() for c in row.cells) for row in item.rows]
            lines.append("\n".join(rows))
    if "\n".join(lines).strip():
        blocks.append(Block(heading or "start", "\n\n".join(lines)))
    return blocks
