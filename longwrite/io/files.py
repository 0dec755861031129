"""Writing user files so that nothing is torn or silently lost.

A document is streamed into `FILE.partial` and renamed onto `FILE` only when generation ends
normally (`os.replace` is atomic on POSIX), so `FILE` is either the old file or the whole new
one. If the run is interrupted or fails, the `.partial` file stays beside it with everything
generated so far (when a full disk refused the rest, with what fitted: the run log has it
all, and `OutputFailed` says so); a `.partial` still empty when a refusal ends the block is
removed, as there is nothing in it to keep. A target that is not a regular file
(`/dev/null`, `/dev/stdout`, a named pipe) is written directly: renaming onto it would
replace the device with a file.

`check_apart` refuses an output that is also an input (`batch IN -o IN` would append results
to the prompts it reads). The temporary file of `replacing` is created afresh, never opened
through a link left at its name.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

from longwrite.errors import EXIT_FAILED, LongwriteError

NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)  # a full disk, a quota, a size limit


class OutputFailed(LongwriteError):
    """The document could not be written (a full disk, a quota): what was generated is kept
    elsewhere (the run log), so this is a failure, not a mistake (exit 1)."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, *, stdout: bool = False, full: bool = False) -> None:
        super().__init__(message)
        self.stdout = stdout  # it was stdout (whose buffer must not be flushed again at exit)
        self.full = full


def partial_path(path: Path) -> Path:
    return path.with_name(path.name + ".partial")


def is_special(path: Path) -> bool:
    """Whether `path` exists and is neither a regular file nor a folder (a device, a pipe)."""
    return path.exists() and not path.is_file() and not path.is_dir()


def check_writable(path: Path) -> None:
    """Fail early (before a model loads) if `path` cannot be written."""
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise LongwriteError(f"cannot write {path}: it is a folder")
    if is_special(path):
        if not os.access(path, os.W_OK):
            raise LongwriteError(f"cannot write {path}: permission denied")
        return
    if not parent.is_dir():
        raise LongwriteError(f"cannot write {path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise LongwriteError(f"cannot write {path}: folder {parent} is not writable")


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file (through links too, when both exist)."""
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
        return a.resolve() == b.resolve()
    except OSError:
        return False


def check_apart(outputs: list[Path], inputs: list[Path | None]) -> None:
    """Refuse to write a file the command reads: its results would be appended to, or would
    replace, its own input (`batch IN -o IN`, `eval report R -o R`)."""
    for out in outputs:
        for given in inputs:
            if given is not None and same_file(out, given):
                raise LongwriteError(
                    f"{out} is also what this command reads ({given}): write to another file"
                )


class PartialFile:
    """`with PartialFile(path) as f: f.write(...); f.commit()`; no commit keeps `.partial`."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        check_writable(self.path)
        self.direct = is_special(self.path)  # a device or a pipe: no `.partial`, no rename
        self.partial = self.path if self.direct else partial_path(self.path)
        self._file: TextIO | None = None
        self.committed = False
        self.moved_aside: Path | None = None

    def __enter__(self) -> TextIO:
        try:
            if self.direct:
                self._file = open(self.path, "w", encoding="utf-8")  # noqa: SIM115
                return self._file
            self._file = self._open_new()
        except OSError as e:
            raise LongwriteError(f"cannot write {self.partial}: {e.strerror}") from e
        return self._file

    def _open_new(self) -> TextIO:
        """Create `.partial` afresh, never truncating one an earlier run left behind: that
        one is moved aside (`FILE.partial.1`, `.2`, ...) and said so; one still being written
        by a running longwrite (it holds a lock on it) is refused."""
        while True:
            try:
                f = open(self.partial, "x", encoding="utf-8")  # noqa: SIM115
            except FileExistsError:
                self.moved_aside = self._move_aside()
                continue
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return f

    def _move_aside(self) -> Path:
        with open(self.partial, "rb") as old:
            try:
                fcntl.flock(old.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise LongwriteError(
                    f"another longwrite run is writing {self.path} ({self.partial} is in use)"
                ) from None
            if os.fstat(old.fileno()).st_size == 0:  # nothing was kept in it
                self.partial.unlink()
                return self.partial
            n = 1
            while (aside := self.partial.with_name(f"{self.partial.name}.{n}")).exists():
                n += 1
            os.rename(self.partial, aside)
        sys.stderr.write(
            f"longwrite: note: an earlier run's {self.partial.name} was kept as {aside}\n"
        )
        return aside

    def commit(self) -> None:
        assert self._file is not None
        self._file.flush()
        if not self.direct:
            os.fsync(self._file.fileno())
        self._file.close()
        if not self.direct:
            os.replace(self.partial, self.path)
        self.committed = True

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._file is not None and not self._file.closed:
            with contextlib.suppress(OSError):  # a full disk: what did fit stays
                self._file.flush()
            with contextlib.suppress(OSError):  # closes the file even when it cannot flush
                self._file.close()
        if exc_type is not None and not (self.committed or self.direct) and self._file:
            with contextlib.suppress(OSError):
                if self.partial.stat().st_size == 0:  # refused before a word: nothing to keep
                    self.partial.unlink()


@contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """A temporary path beside `path` that becomes `path` (atomically) if the block succeeds."""
    target = Path(path)
    check_writable(target)
    if is_special(target):  # a device or a pipe: written in place
        yield target
        return
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        tmp.unlink(missing_ok=True)  # a leftover, or a link planted at a name one can guess
        yield tmp
        os.replace(tmp, target)
    except OSError as e:
        raise LongwriteError(f"cannot write {target}: {e.strerror}") from None
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write `text` to `path` all at once: readers see the old file or the new, never half."""
    with (
        replacing(path) as tmp,
        open(tmp, "w" if tmp == Path(path) else "x", encoding="utf-8") as f,
    ):
        f.write(text)
        f.flush()
        if tmp != Path(path):  # a device or a pipe takes no fsync
            os.fsync(f.fileno())


def save_figure(fig: Any, path: str | Path, *, dpi: int = 110) -> None:
    """Save a matplotlib figure as PNG atomically."""
    with replacing(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)


def read_user_text(path: str | Path) -> str:
    """The UTF-8 text of a file the user named, or one clear LongwriteError line. A byte
    order mark at the start (Notepad, PowerShell 5's `Out-File`) is not part of the text."""
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise LongwriteError(f"cannot read {path}: no such file") from None
    except IsADirectoryError:
        raise LongwriteError(f"cannot read {path}: it is a folder") from None
    except UnicodeDecodeError:
        raise LongwriteError(f"cannot read {path}: not UTF-8 text") from None
    except OSError as e:
        raise LongwriteError(f"cannot read {path}: {e.strerror}") from None
