"""`longwrite export ID|FILE.md -o OUT`: a logged run's document, or a Markdown file, as
DOCX, EPUB, HTML, ODT, PDF or Markdown (the format from OUT's extension; `longwrite.export`).

SOURCE is a file when one of that name exists, or when it looks like a path (a Markdown
extension, a folder separator; `-` is stdin); otherwise a run of the log, named as `logs show`
names one (an id, any unique prefix, `last`), and the document is its answer exactly as
`logs show` prints it. A run that is not done exports what it has, with a note. Sectioned
runs (their log options hold the outline) get a table of contents unless `--no-toc`.
Everything is checked before anything is written: the format, OUT's folder, pandoc, the PDF
engine; each fault is one line and exit 2 (pandoc failing on a document: exit 1).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from longwrite.cli import options as opt
from longwrite.cli.completion import run_ids
from longwrite.cli.declare import declared
from longwrite.errors import LongwriteError, say

MARKDOWN_SUFFIXES = (".md", ".markdown", ".txt")


@dataclass(frozen=True)
class Source:
    """The document to export and what is known about where it came from."""

    markdown: str
    name: str  # the file's stem, or the run id: a title for a document without one
    sectioned: bool


Author, Lang = opt.ExportAuthor, opt.ExportLang


@declared
def export_command(
    source: Annotated[str, typer.Argument(help="A run id (any unique prefix, or `last`), or a "
                      "Markdown file ('-': stdin).", show_default=False, metavar="ID|FILE",
                      autocompletion=run_ids)],
    output: Annotated[Path, typer.Option("--output", "-o", help="The file to write; its "
                      "extension is the format: .docx .epub .html .odt .pdf .md.",
                      show_default=False, metavar="FILE")],
    *,
    title: Annotated[str | None, typer.Option(help="The title (default: the document's "
                     "`#` heading, else the file's name).", show_default=False)] = None,
    author: Author,
    lang: Lang,
    toc: Annotated[bool | None, typer.Option("--toc/--no-toc", help="A table of contents "
                   "(default: for sectioned runs).", show_default=False)] = None,
) -> None:  # fmt: skip
    """Export a run's document or a Markdown file through pandoc: DOCX, EPUB, HTML (one
    self-contained file), ODT, PDF (typeset by WeasyPrint, installed with the extra), or Markdown.
    Needs the export extra: pip install 'longwrite[export]'."""
    from longwrite.export import check_ready, export_markdown, format_of
    from longwrite.io.counting import count_words
    from longwrite.io.files import check_writable

    fmt = format_of(output)
    check_writable(output)
    engine = check_ready(fmt)
    doc = read_source(source)
    export_markdown(
        doc.markdown, output, title=title, author=author, lang=lang,
        toc=doc.sectioned if toc is None else toc, fallback_title=doc.name, engine=engine,
    )  # fmt: skip
    say(f"exported {count_words(doc.markdown):,} words to {output}")


def is_file_source(source: str) -> bool:
    path = Path(source)
    return (
        source == "-"
        or path.is_file()
        or path.suffix.lower() in MARKDOWN_SUFFIXES
        or os.sep in source
        or "/" in source
    )


def read_source(source: str) -> Source:
    """The document SOURCE names: a file (or stdin) or a logged run."""
    from longwrite.io.files import read_user_text

    if not is_file_source(source):
        return read_run(source)
    if source == "-":
        if sys.stdin is None or sys.stdin.isatty():
            raise LongwriteError("no document on stdin: pipe Markdown in, or name a file")
        return Source(sys.stdin.read(), "document", sectioned=False)
    return Source(read_user_text(source), Path(source).stem, sectioned=False)


def read_run(ref: str) -> Source:
    """A logged run's answer, as `logs show` prints it."""
    from longwrite.cli.logs import need_log, with_versions
    from longwrite.generate.parser import split_think_answer
    from longwrite.io.counting import count_words
    from longwrite.runlog.store import DONE

    store = need_log()
    try:
        record = store.resolve(ref)
        raw = store.raw(record.id)
        revised = store.versions(record.id)
    finally:
        store.close()
    raw = with_versions(raw, revised)  # sections written again (`revise`): their latest
    if record.kind == "batch":
        raise LongwriteError(
            f"run {record.id} is a batch run: its documents are in {record.output} "
            "(`longwrite batch ... --format FMT` exports them)"
        )
    answer = split_think_answer(raw)[1]
    if not answer.strip():
        raise LongwriteError(f"run {record.id} ({record.status}) has no document yet")
    if record.status != DONE:
        say(
            f"longwrite: note: run {record.id} is {record.status}: exporting the "
            f"{count_words(answer):,} words it has"
        )
    return Source(answer, record.id, sectioned="outline" in record.options)
