"""One pandoc run per export, through pypandoc (the `pypandoc-binary` wheel bundles pandoc).

pypandoc is imported only here and only when a file is exported, so `longwrite --help` and
every other command stay free of it; without the `export` extra the import fails and the user
is told the one command that installs it.

Choices:
- Input is `gfm` (CommonMark with tables, as markdown-it-py reads it everywhere else in
  longwrite) plus `east_asian_line_breaks`, so a line break inside Chinese text does not
  become a space. Model output is not trusted: pandoc runs with `--sandbox`, so an image link
  to a local file is never read into the export.
- Metadata: title and language always (Word uses the language to pick its Chinese theme font,
  EPUB readers their fonts and hyphenation), the author when given, a table of contents when
  asked (Chinese: titled 目录).
- Chinese HTML, PDF and EPUB name a stack of CJK fonts (the common ones on Linux, macOS and
  Windows, serif first); DOCX and ODT carry the language, which Word and LibreOffice use to
  choose their own Chinese font.
- HTML is one file: `--embed-resources` inlines the stylesheet (there are no scripts).
  Lines are not rewrapped (`--wrap=none`): a break inside Chinese text would show as a space.
- The file is written atomically (`io.files.replacing`); pandoc writes it under a name that
  keeps the extension, since it tells PDF from HTML by the output's extension.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from longwrite.errors import one_line
from longwrite.export.formats import ExportError, ExportFailed, Format
from longwrite.export.metadata import Prepared

INPUT = "gfm+east_asian_line_breaks"
CJK_FONTS = (
    '"Noto Serif CJK SC", "Source Han Serif SC", "Songti SC", SimSun, "Noto Sans CJK SC", '
    '"Source Han Sans SC", "PingFang SC", "Microsoft YaHei", "WenQuanYi Micro Hei", serif'
)
CHINESE_TOC_TITLE = "目录"


def need_pypandoc(fmt: Format):  # -> the pypandoc module
    """pypandoc, or the one line that says how to install it."""
    try:
        import pypandoc
    except ImportError:
        raise ExportError(
            f"exporting to {fmt.suffix} needs pandoc, from the export extra: "
            "pip install 'longwrite[export]'"
        ) from None
    return pypandoc


@contextmanager
def _quiet() -> Iterator[None]:
    """pypandoc logs what pandoc says on stderr: its warnings (no Chinese translation of
    "Abstract") and WeasyPrint's (font subsetting) are not the user's business. A failure
    still raises with pandoc's message."""
    logger = logging.getLogger("pypandoc")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def pandoc_args(doc: Prepared, fmt: Format, *, author: str | None, toc: bool) -> list[str]:
    """pandoc's options for `doc` in `fmt` (without input, output and the PDF engine)."""
    args = ["--standalone", "--wrap=none", f"--metadata=title:{doc.title}",
            f"--metadata=lang:{doc.lang}"]  # fmt: skip
    if author:
        args.append(f"--metadata=author:{author}")
    if doc.shift:
        args.append(f"--shift-heading-level-by={doc.shift}")
    if toc:
        args.append("--toc")
        if doc.chinese:
            args.append(f"--metadata=toc-title:{CHINESE_TOC_TITLE}")
    if fmt.name == "html":
        args.append("--embed-resources")
    if doc.chinese and fmt.name in ("html", "pdf"):
        args.append(f"--variable=mainfont:{CJK_FONTS}")
    if doc.chinese and fmt.name == "epub":
        # after the EPUB's own stylesheet, so it wins over its Georgia
        args.append(f"--variable=header-includes:<style>html, body {{ font-family: "
                    f"{CJK_FONTS}; }}</style>")  # fmt: skip
    return args


def convert(
    doc: Prepared,
    fmt: Format,
    out: Path,
    *,
    author: str | None = None,
    toc: bool = False,
    engine: Path | None = None,
) -> None:
    """Write `doc` to `out` in `fmt` (atomically); `engine`: the PDF engine, for PDF."""
    from longwrite.io.files import replacing

    assert fmt.writer is not None
    pypandoc = need_pypandoc(fmt)
    args = pandoc_args(doc, fmt, author=author, toc=toc)
    if engine is not None:
        args.append(f"--pdf-engine={engine}")
    with replacing(out) as tmp:
        work = tmp.with_name(tmp.name + fmt.suffix)  # pandoc tells PDF by the extension
        try:
            try:
                with _quiet():
                    pypandoc.convert_text(
                        doc.body, fmt.writer, format=INPUT, extra_args=args,
                        outputfile=str(work), sandbox=True,
                    )  # fmt: skip
            except RuntimeError as e:  # pandoc (or the PDF engine) failed: its message
                raise ExportFailed(f"pandoc could not make {out}: {_reason(e)}") from None
            except OSError as e:  # no pandoc at all (pypandoc without the binary wheel)
                raise ExportError(
                    f"cannot run pandoc ({one_line(e)}): pip install 'longwrite[export]'"
                ) from None
            os.replace(work, tmp)
        finally:
            work.unlink(missing_ok=True)


def _reason(error: RuntimeError) -> str:
    """pandoc's own words from pypandoc's "Pandoc died with exitcode ...: <stderr>"."""
    text = str(error)
    head, sep, rest = text.partition("during conversion:")
    return one_line(rest if sep and rest.strip() else text)
