"""Indexing a set of folders and files into one index, incrementally.

A re-index must be cheap enough to run before every `--source DIR` write, so a file is read
again only when its size or mtime changed, and its passages are replaced only when its
SHA-256 changed too (a `touch` or a copy that kept the content costs one read, not a
re-extraction). Files that left the folders leave the index. Hidden files and folders
(".git", ".venv", ".DS_Store") are not walked; symbolic links to folders are not followed
(a link loop would never end); a file of a type we do not read is skipped and named in the
summary with why, as is one we could not read.

Work is committed every `COMMIT_EVERY` files, so Ctrl-C in a large first index keeps what
was done, and the next run carries on from there.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from longwrite.sources.chunk import passages
from longwrite.sources.extract import SUFFIXES, Unreadable, extract
from longwrite.sources.store import FileRow, IndexFile

COMMIT_EVERY = 100

Progress = Callable[[int, int, str], None]  # (files done, files in all, the file now)


@dataclass
class Summary:
    """What one indexing run did, for the summary line and `--json`."""

    read: int = 0  # new or changed files extracted
    unchanged: int = 0
    removed: int = 0  # files no longer under the roots
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, why)
    added: int = 0  # passages stored by this run
    passages: int = 0  # passages in the index after it
    files: int = 0  # files in the index after it

    def lines(self, name: str) -> list[str]:
        """The summary as a few lines: counts, then why files were skipped (grouped)."""
        head = (
            f"{name}: {self.read:,} file(s) read, {self.unchanged:,} unchanged, "
            f"{len(self.skipped):,} skipped, {self.removed:,} removed; {self.added:,} passages "
            f"stored ({self.passages:,} in {self.files:,} file(s) in all)"
        )
        why = Counter(reason for _, reason in self.skipped)
        out = [head]
        for reason, n in why.most_common():
            example = next(f for f, r in self.skipped if r == reason)
            more = f" and {n - 1:,} more" if n > 1 else ""
            out.append(f"  skipped: {reason}: {example}{more}")
        return out

    def to_json(self) -> dict[str, object]:
        return {
            "read": self.read, "unchanged": self.unchanged, "removed": self.removed,
            "skipped": [{"file": f, "why": w} for f, w in self.skipped], "added": self.added,
            "passages": self.passages, "files": self.files,
        }  # fmt: skip


def shown_path(path: Path, root: Path) -> str:
    """How a file is named in citations: from its root folder's name down (a file given
    alone: its name).

    >>> shown_path(Path("/home/a/papers/x/y.pdf"), Path("/home/a/papers"))
    'papers/x/y.pdf'
    """
    if path == root:
        return path.name
    return (Path(root.name) / path.relative_to(root)).as_posix()


def walk(roots: list[Path]) -> Iterator[tuple[Path, Path]]:
    """(file, its root) for every non-hidden file under `roots`, in a stable order."""
    for root in roots:
        if root.is_file():
            yield root, root
            continue
        for folder, dirs, files in os.walk(root, followlinks=False):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                if not name.startswith("."):
                    yield Path(folder) / name, root


def index_paths(index: IndexFile, roots: list[Path], progress: Progress | None = None) -> Summary:
    """Bring `index` up to date with the files under `roots` (absolute paths)."""
    summary = Summary()
    known = index.files()
    todo: list[tuple[Path, Path]] = []
    for path, root in walk(roots):
        if path.suffix.lower() in SUFFIXES:
            todo.append((path, root))
        else:
            summary.skipped.append((shown_path(path, root), _unsupported(path)))
    seen: set[str] = set()
    index.begin()
    try:
        for done, (path, root) in enumerate(todo):
            if progress is not None:
                progress(done, len(todo), shown_path(path, root))
            key = str(path)
            seen.add(key)
            _one(index, path, root, known.get(key), summary)
            if done % COMMIT_EVERY == COMMIT_EVERY - 1:
                index.commit()
                index.begin()
        for key in set(known) - seen:
            index.remove_file(key)
            summary.removed += 1
        index.commit()
    except BaseException:
        index.commit()  # keep the files finished so far (each file is put whole)
        raise
    if progress is not None:
        progress(len(todo), len(todo), "")
    summary.files, summary.passages, _ = index.counts()
    return summary


def _one(index: IndexFile, path: Path, root: Path, row: FileRow | None, summary: Summary) -> None:
    """One file: unchanged, re-read, or skipped (its old passages dropped) with why."""
    shown = shown_path(path, root)
    try:
        stat = path.stat()
    except OSError as e:
        summary.skipped.append((shown, f"cannot read it ({e.strerror or type(e).__name__})"))
        if row is not None:
            index.remove_file(str(path))
        return
    if row is not None and row.size == stat.st_size and row.mtime_ns == stat.st_mtime_ns:
        summary.unchanged += 1
        return
    try:
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        if row is not None and row.sha == sha:
            index.touch_file(str(path), stat.st_size, stat.st_mtime_ns)
            summary.unchanged += 1
            return
        pieces = passages(extract(path))
    except Unreadable as e:
        summary.skipped.append((shown, str(e)))
        if row is not None:
            index.remove_file(str(path))
        return
    except OSError as e:
        summary.skipped.append((shown, f"cannot read it ({e.strerror or type(e).__name__})"))
        if row is not None:
            index.remove_file(str(path))
        return
    index.put_file(str(path), shown, stat.st_size, stat.st_mtime_ns, sha, pieces)
    summary.read += 1
    summary.added += len(pieces)


def _unsupported(path: Path) -> str:
    suffix = path.suffix.lower()
    return f"not a supported type ({suffix})" if suffix else "not a supported type (no extension)"
