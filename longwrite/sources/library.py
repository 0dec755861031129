"""Where indexes live and how `--source DIR|NAME` finds one: the user's library of sources.

Each index is one SQLite file, `$LONGWRITE_HOME/sources/NAME.sqlite` (beside the run log; the
folder is the user's alone, as documents can be private). It remembers the folders and files
it was built from (its roots), so:

- `longwrite index DIR... [--name NAME]` builds or refreshes the index NAME (default: the
  first path's name); a NAME that already holds other roots is refused rather than mixed.
- `--source DIR` (or a file) finds the index whose roots are exactly that path and refreshes
  it (only changed files are read again), or builds one under the path's name (`-2`, `-3`...
  when that name is taken by other roots). A path is refreshed once per process: a batch of
  a thousand lines walks the folder once.
- `--source NAME` opens the index NAME as it is (refresh it with `longwrite index`).

A path wins over a name: `--source notes` means the folder ./notes when there is one.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from longwrite.errors import LongwriteError, one_line
from longwrite.sources.build import Progress, Summary, index_paths
from longwrite.sources.extract import SUFFIXES
from longwrite.sources.store import IndexFile

SUFFIX = ".sqlite"  # an index file
_NAME = re.compile(r"[^\W_][\w.\-]{0,63}")
_BAD_NAME_CHARS = re.compile(r"[^\w.\-]+")
_locks: dict[str, threading.Lock] = {}
_locks_lock = threading.Lock()
_refreshed: dict[str, str] = {}  # resolved path -> index name, refreshed in this process
_builds: dict[str, int] = {}  # index file -> builds in this process (a cache key for readers)


def sources_home() -> Path:
    from longwrite.runlog.store import log_home

    return log_home() / "sources"


def index_path(name: str) -> Path:
    return sources_home() / f"{name}{SUFFIX}"


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise LongwriteError(
            f"index name {name!r}: use letters, digits, '.', '-' or '_' (at most 64, "
            "starting with a letter or digit)"
        )
    return name


def name_for(path: Path) -> str:
    """A valid index name from a path's name ("My Papers" -> "My-Papers").

    >>> name_for(Path("/x/My Papers")), name_for(Path("/x/notes.md")), name_for(Path("/"))
    ('My-Papers', 'notes', 'sources')
    """
    base = path.stem if path.suffix.lower() in SUFFIXES else path.name
    cleaned = _BAD_NAME_CHARS.sub("-", base).strip("-._")[:64]
    return cleaned if cleaned and _NAME.fullmatch(cleaned) else "sources"


@dataclass(frozen=True)
class IndexInfo:
    """One index as `longwrite index --list` shows it."""

    name: str
    roots: list[str]
    files: int
    passages: int
    tokens: int
    updated: float | None

    def to_json(self) -> dict[str, object]:
        return dict(vars(self))


def _private(folder: Path) -> None:
    """`folder` created readable by the user alone (and any missing parent likewise)."""
    missing = []
    while not folder.is_dir():
        missing.append(folder)
        folder = folder.parent
    for part in reversed(missing):
        try:
            part.mkdir(mode=0o700)
        except FileExistsError:
            continue
        os.chmod(part, 0o700)


def open_index(name: str, *, create: bool = False) -> IndexFile:
    """The index `name`, open; a missing or unreadable one is one line."""
    path = index_path(check_name(name))
    if create:
        try:
            _private(path.parent)
        except OSError as e:  # an unwritable home
            raise LongwriteError(f"cannot make {path.parent}: {e.strerror or e}") from None
    try:
        return IndexFile(path, name, create=create)
    except FileNotFoundError:
        raise LongwriteError(
            f"no index named {name!r} (`longwrite index --list` shows them)"
        ) from None
    except sqlite3.Error as e:
        raise LongwriteError(
            f"index {name!r} ({path}) cannot be read: {one_line(e)}; remove it with "
            f"`longwrite index --rm {name}` and index again"
        ) from None


def list_indexes() -> list[IndexInfo]:
    home = sources_home()
    out: list[IndexInfo] = []
    for path in sorted(home.glob(f"*{SUFFIX}")) if home.is_dir() else []:
        name = path.name[: -len(SUFFIX)]
        if not _NAME.fullmatch(name):
            continue
        try:
            with IndexFile(path, name) as index:
                meta = index.meta()
                files, passages, tokens = index.counts()
        except sqlite3.Error:
            out.append(IndexInfo(name, ["(unreadable)"], 0, 0, 0, None))
            continue
        updated = meta.get("updated")
        when = float(updated) if isinstance(updated, int | float) else None
        roots = meta.get("roots")
        shown = [str(r) for r in roots] if isinstance(roots, list) else []
        out.append(IndexInfo(name, shown, files, passages, tokens, when))
    return out


def remove_index(name: str) -> None:
    path = index_path(check_name(name))
    if not path.is_file():
        raise LongwriteError(f"no index named {name!r} (`longwrite index --list` shows them)")
    for extra in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        extra.unlink(missing_ok=True)
    _builds[str(path)] = _builds.get(str(path), 0) + 1
    _refreshed.clear()


def version(name: str) -> tuple[str, int, int]:
    """What identifies the index `name` as it is now, for caching what was read from it: its
    file, the file's inode (a removed and rebuilt index is another file) and the builds this
    process made of it."""
    path = index_path(name)
    try:
        inode = path.stat().st_ino
    except OSError:
        inode = -1
    return str(path), inode, _builds.get(str(path), 0)


def resolve_paths(paths: list[str]) -> list[Path]:
    """The absolute paths of what to index; a missing one is one line."""
    out: list[Path] = []
    for given in paths:
        path = Path(given).expanduser()
        if not path.exists():
            raise LongwriteError(f"{given}: no such file or folder")
        resolved = path.resolve()
        if resolved not in out:
            out.append(resolved)
    return out


def _lock(name: str) -> threading.Lock:
    with _locks_lock:
        return _locks.setdefault(name, threading.Lock())


def build(roots: list[Path], name: str, progress: Progress | None = None) -> Summary:
    """Build or refresh the index `name` over `roots` (which it must already hold, if any)."""
    with _lock(name), open_index(name, create=True) as index:
        held = index.roots
        wanted = [str(r) for r in roots]
        if held and sorted(held) != sorted(wanted):
            raise LongwriteError(
                f"the index {name!r} holds {', '.join(held)}: give another --name, or "
                f"`longwrite index --rm {name}` first"
            )
        if not held:
            index.set_meta(name=name, roots=wanted, created=time.time())
        summary = index_paths(index, roots, progress)
        index.set_meta(updated=time.time())
    path = str(index_path(name))
    _builds[path] = _builds.get(path, 0) + 1
    for root in roots:
        _refreshed[str(root)] = name
    return summary


def index_for(root: Path) -> str | None:
    """The name of the index built from exactly `root`, if there is one."""
    for info in list_indexes():
        if info.roots == [str(root)]:
            return info.name
    return None


def free_name(base: str) -> str:
    taken = {info.name for info in list_indexes()}
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def open_source(
    spec: str, *, progress: Progress | None = None, tell: Callable[[str], None] | None = None
) -> tuple[str, Summary | None]:
    """The index name for `--source SPEC` (a path, refreshed; else an index name), and the
    summary when it was (re)indexed just now."""
    path = Path(spec).expanduser()
    if path.exists():
        root = path.resolve()
        if str(root) in _refreshed:
            return _refreshed[str(root)], None
        name = index_for(root)
        if name is None:
            name = free_name(name_for(root))
            if tell is not None:
                tell(f"longwrite: indexing {spec} (as the index {name!r})")
        return name, build([root], name, progress)
    if _NAME.fullmatch(spec) and index_path(spec).is_file():
        return spec, None
    raise LongwriteError(
        f"--source {spec}: no such file, folder or index (`longwrite index --list` shows the "
        "indexes)"
    )
