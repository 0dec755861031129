"""A JSON Lines file that a crash or a kill never leaves torn: the results of `batch`, the
verdicts of the judged evaluations and the metrics of `rl train`.

Each record is one `write` of one whole line, then `fsync`, so a crash loses at most the
line being written. Linux can still cut a large `write` short when the process is killed in
the middle of it, so `load` checks the end of the file: a last line without its newline that
begins as every record does (`{`) is the remains of such a write and is cut off (unless it
is a whole JSON object, which is kept and given its newline). Every other line is checked
first, and the file is changed only when all of them are JSON objects: a file that is not
one of ours (notes, a one-line text without a newline) is refused and left as it was. Lines
are read by `io.records`, the package's one reader.

A write that fails (a full disk, a quota) is taken back: the file is cut to where the line
began, so no torn line is left behind, and `WriteFailed` (exit 1) says why.

A writer takes `lock()` first: an exclusive `flock` on `PATH.lock` beside the file, held
until `close` (the kernel drops it if the process dies, so a kill leaves no stale lock).
Two runs appending to one file would interleave their lines and write the same ids twice;
the second is refused with the first one's pid, which the lock file holds. The lock file is
removed on `close`; a process that opened it just before that finds it no longer at the
path and takes the lock afresh. It is opened without following a symbolic link and must be
a plain file: a link planted there cannot make the lock truncate what it points to.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import threading
from pathlib import Path
from typing import Any

from longwrite.errors import EXIT_FAILED, LongwriteError
from longwrite.io.records import LineError, checked, decode_object, parse_lines, read_bytes

REFUSAL = "; refusing to append to this file"
FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class WriteFailed(LongwriteError):
    """A record could not be written (a full disk, a quota): nothing torn was left behind."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, *, full: bool = False) -> None:
        super().__init__(message)
        self.full = full  # no room: the same command can finish once there is


class AppendLog:
    """Load what the file holds (`load`), then `append` records from any thread."""

    def __init__(self, path: str | Path) -> None:
        from longwrite.io.files import check_writable

        self.path = Path(path)
        check_writable(self.path)
        self.dropped_torn = False
        self._fd: int | None = None
        self._lock = threading.Lock()
        self._lock_fd: int | None = None

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    def lock(self) -> None:
        """Hold the file for this process until `close`; another holder is a user error."""
        import fcntl

        path = self.lock_path
        while True:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
            except OSError as e:
                if e.errno == errno.ELOOP:
                    raise LongwriteError(
                        f"{path} is a symbolic link, not a lock file of longwrite: remove it"
                    ) from None
                raise LongwriteError(f"cannot write {path}: {e.strerror}") from None
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:  # a FIFO, a hard link
                os.close(fd)
                raise LongwriteError(f"{path} is not a lock file of longwrite: remove it")
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
                os.close(fd)
                raise LongwriteError(
                    f"another longwrite run is writing {self.path} (pid {holder}); "
                    "wait for it to finish or stop it"
                ) from None
            try:
                current = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                current = False
            if current:
                break
            os.close(fd)  # its holder removed it as we took it: take the new one
        with contextlib.suppress(OSError):  # the pid only informs; a full disk does not matter
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        self._lock_fd = fd

    def load(self) -> list[dict[str, Any]]:
        """The records the file holds (none without a file); see the module's docstring for
        what is repaired and what is refused."""
        return [obj for _, obj in self.load_numbered()]

    def load_numbered(self) -> list[tuple[int, dict[str, Any]]]:
        """`load`, each record with its line number (for a caller that reads its fields)."""
        if not self.path.exists():
            return []
        data = read_bytes(self.path)
        end = data.rfind(b"\n") + 1
        records = checked(self.path, parse_lines(data[:end]), REFUSAL)  # before any change
        tail = data[end:]
        if not tail.strip():
            return records
        number = data.count(b"\n") + 1
        try:
            obj = decode_object(tail)
        except LineError as e:
            if not tail.lstrip().startswith(b"{"):  # no record of ours begins like this
                raise LongwriteError(f"{self.path}:{number}: {e}{REFUSAL}") from None
            os.truncate(self.path, end)
            self.dropped_torn = True
            return records
        self._raw_append(b"\n")
        return [*records, (number, obj)]

    def _raw_append(self, data: bytes) -> None:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
        except OSError as e:
            full = e.errno in FULL
            raise WriteFailed(f"cannot write {self.path}: {e.strerror}", full=full) from None

    def append(self, record: dict[str, Any]) -> None:
        """Write `record` as one line and fsync it; a write that fails is taken back."""
        data = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        with self._lock:
            if self._fd is None:
                try:
                    self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                except OSError as e:
                    raise LongwriteError(f"cannot write {self.path}: {e.strerror}") from None
            start = os.fstat(self._fd).st_size  # only this process appends (the lock)
            try:
                view = memoryview(data)
                while view:  # a regular file takes it in one write; a short write is carried on
                    view = view[os.write(self._fd, view) :]
                os.fsync(self._fd)
            except OSError as e:
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, start)  # no torn line stays behind
                raise WriteFailed(
                    f"cannot write {self.path}: {e.strerror}", full=e.errno in FULL
                ) from None

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            if self._lock_fd is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.lock_path)  # still held: nobody takes it in between
                os.close(self._lock_fd)
                self._lock_fd = None


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """The records of such a file, for a reader: the file is never changed (a torn last line
    is left out, not cut off); no file means no records."""
    return [obj for _, obj in read_numbered(path)]


def read_numbered(path: str | Path) -> list[tuple[int, dict[str, Any]]]:
    """`read_records`, each record with its line number."""
    if not Path(path).exists():
        return []
    data = read_bytes(path)
    tail = data[data.rfind(b"\n") + 1 :].lstrip()
    lines = parse_lines(data)
    if tail and lines[-1].obj is None and tail.startswith(b"{"):
        lines = lines[:-1]  # a torn last line: what a kill left of a record
    return checked(path, lines)
