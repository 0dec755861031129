"""Export a finished Markdown document as DOCX, EPUB, HTML, ODT or PDF (pandoc).

A document is read for its title, language and heading levels (`metadata`), then pandoc
writes the format the output's extension names (`formats`, `pandoc`); PDF is typeset by
WeasyPrint (`pdf`). `batch` exports the documents of a batch's OUT file. The command is
`longwrite export` (cli/export.py); `longwrite PROMPT -o report.docx` and `batch --format`
use the same functions once their documents are complete.

Everything that can be checked is checked before a model loads or a file is written
(`check_ready`): pandoc importable, the PDF engine runnable. Nothing here is imported by
`longwrite --help`, and pypandoc loads only when a file is exported.
"""

from __future__ import annotations

from pathlib import Path

from longwrite.export.formats import ExportError, ExportFailed, Format, format_of

__all__ = ["ExportError", "ExportFailed", "Format", "check_ready", "export_markdown", "format_of"]


def check_ready(fmt: Format) -> Path | None:
    """Fail now (one line) if `fmt` cannot be made here; the PDF engine's path for PDF."""
    if not fmt.pandoc:
        return None
    from longwrite.export.pandoc import need_pypandoc

    need_pypandoc(fmt)
    if fmt.name != "pdf":
        return None
    from longwrite.export.pdf import find_engine

    return find_engine()


def export_markdown(
    markdown: str,
    out: Path,
    *,
    title: str | None = None,
    author: str | None = None,
    lang: str | None = None,
    toc: bool = False,
    fallback_title: str | None = None,
    engine: Path | None = None,
) -> None:
    """Write `markdown` to `out` in the format its extension names, atomically.

    `title`, `lang`: override what the document says (its `#` title, its language); a
    document without a title is called `fallback_title` (default: `out`'s name). `engine`:
    the PDF engine `check_ready` found (looked for again when not given)."""
    from longwrite.io.files import atomic_write_text, check_writable

    fmt = format_of(out)
    check_writable(out)
    if not fmt.pandoc:
        atomic_write_text(out, markdown)
        return
    from longwrite.export.metadata import prepare
    from longwrite.export.pandoc import convert

    if engine is None:
        engine = check_ready(fmt)
    doc = prepare(markdown, fallback_title=fallback_title or out.stem, title=title, lang=lang)
    if fmt.name == "pdf" and doc.chinese:
        from longwrite.export.pdf import check_chinese_font

        check_chinese_font()
    convert(doc, fmt, out, author=author, toc=toc, engine=engine)
