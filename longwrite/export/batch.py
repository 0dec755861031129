"""`longwrite batch ... --format docx`: each document of the batch's OUT file as a file.

OUT stays what it always is (one JSON line per prompt, the Markdown in `answer`); the exports
go to a folder (`--export-dir`, default `OUT-FORMAT/` beside OUT: `results.jsonl` gives
`results-docx/`), one file per line named by its id. They are made when the batch has run,
from every line of OUT that has no file yet, so running the same command again after an
interruption (or with another `--format`) exports what is missing and rewrites nothing.
An id that is not a plain file name (`/`, spaces, a leading dot) is made one, with a short
hash of the id added so that two such ids never share a file.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from longwrite.errors import say
from longwrite.export.formats import ExportError, ExportFailed, Format

_UNSAFE = re.compile(r"[^\w.\-]")
NAME_CHARS = 100


@dataclass(frozen=True)
class Exported:
    written: int
    already: int
    failed: int


def default_folder(results: Path, fmt: Format) -> Path:
    return results.with_name(f"{results.stem}-{fmt.name}")


def file_name(item_id: str) -> str:
    """A file name (without extension) for a batch line's id: the id itself when it is one."""
    safe = _UNSAFE.sub("_", item_id).lstrip(".")[:NAME_CHARS]
    if safe == item_id and safe:
        return safe
    return f"{safe or 'item'}-{hashlib.sha256(item_id.encode('utf-8')).hexdigest()[:8]}"


def prepare_folder(folder: Path) -> None:
    """Create the folder now (before the batch runs), or say why it cannot be."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ExportError(f"cannot export into {folder}: it is a file") from None
    except OSError as e:
        raise ExportError(f"cannot create the folder {folder}: {e.strerror}") from None


def export_results(results: Path, folder: Path, fmt: Format, engine: Path | None) -> Exported:
    """Export every line of `results` that has an answer and no file in `folder` yet."""
    from longwrite.export import export_markdown
    from longwrite.io.jsonl import read_records

    written = already = failed = 0
    for record in read_records(results):
        answer, item_id = record.get("answer"), record.get("id")
        if not isinstance(answer, str) or not answer.strip() or item_id is None:
            continue
        path = folder / (file_name(str(item_id)) + fmt.suffix)
        if path.exists():
            already += 1
            continue
        try:
            export_markdown(answer, path, fallback_title=str(item_id), engine=engine)
        except ExportFailed as e:  # one document pandoc cannot take: the others still go
            say(f"longwrite: error: {e}")
            failed += 1
            continue
        written += 1
    return Exported(written, already, failed)
