"""The formats a document can be exported to, told by the output file's extension.

One table: each format's extension and the pandoc writer that makes it. `.md` is the
Markdown itself (no pandoc). PDF is pandoc's HTML typeset by WeasyPrint (`export.pdf`).

The main command takes `-o report.docx` or `--format docx` (`export_target`): the document is
still written as Markdown (`report.md`, beside the export, and in the run log) and the
export is made from it once it is complete.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from longwrite.errors import EXIT_FAILED, LongwriteError


class ExportError(LongwriteError):
    """A fault the user can fix (format, file, a missing extra or engine): one line, exit 2."""


class ExportFailed(LongwriteError):
    """pandoc or the PDF engine failed on a document: exit 1, the Markdown kept."""

    exit_code = EXIT_FAILED


@dataclass(frozen=True)
class Format:
    name: str  # what --format takes
    suffix: str  # the extension of its files
    writer: str | None  # pandoc's writer; None: the Markdown as it is

    @property
    def pandoc(self) -> bool:
        return self.writer is not None


FORMATS = {
    f.name: f
    for f in (
        Format("docx", ".docx", "docx"),
        Format("epub", ".epub", "epub3"),
        Format("html", ".html", "html5"),
        Format("odt", ".odt", "odt"),
        Format("pdf", ".pdf", "html5"),  # typeset by the PDF engine
        Format("md", ".md", None),
    )
}
_SUFFIXES = {f.suffix: f for f in FORMATS.values()} | {
    ".htm": FORMATS["html"],
    ".markdown": FORMATS["md"],
}
NAMES = tuple(FORMATS)
LISTED = ", ".join(f.suffix for f in FORMATS.values())


def format_of(path: Path) -> Format:
    """The format `path`'s extension names, or an ExportError that lists them."""
    found = _SUFFIXES.get(path.suffix.lower())
    if found is None:
        what = f"{path.suffix} is not a format it makes" if path.suffix else "no extension"
        raise ExportError(f"cannot export to {path}: {what}; end it in one of {LISTED}")
    return found


def named_format(name: str) -> Format:
    found = FORMATS.get(name.lower().lstrip("."))
    if found is None:
        raise ExportError(f"unknown format {name!r}: use one of {', '.join(NAMES)}")
    return found


def export_target(output: Path | None, name: str | None) -> tuple[Path | None, Path | None]:
    """(where the Markdown goes, the file to export or None) for the main command's
    `-o FILE` and `--format NAME`.

    `-o report.docx`: Markdown in report.md, export report.docx. `-o report --format docx`
    or `-o report.md --format docx`: the same. `-o notes.txt` (an extension that is no
    export format) and `-o report.md` stay plain Markdown, as they always were."""
    if name is None:
        if output is None:
            return None, None
        found = _SUFFIXES.get(output.suffix.lower())
        if found is None or not found.pandoc:
            return output, None
        return output.with_suffix(".md"), output
    fmt = named_format(name)
    if output is None:
        raise ExportError(
            f"--format {fmt.name} needs -o FILE: the file to write (the Markdown goes beside it)"
        )
    if not fmt.pandoc:
        return output, None
    stated = _SUFFIXES.get(output.suffix.lower())
    if stated is not None and stated.pandoc and stated is not fmt:
        raise ExportError(f"-o {output} and --format {fmt.name} disagree: give one of them")
    exported = output if stated is fmt else output.with_suffix(fmt.suffix)
    return exported.with_suffix(".md"), exported
