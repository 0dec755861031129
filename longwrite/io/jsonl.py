"""A JSON Lines file that a crash or a kill never leaves torn: the results of `batch` and the
scores of `eval quality`.

Each record is one `write` of one whole line, then `fsync`, so a crash loses at most the
line being written. Linux can still cut a large `write` short when the process is killed in
the middle of it, so `load` checks the end of the file: a last line without its newline is
the remains of such a write and is cut off (unless it is a whole JSON object, which is kept
and given its newline). Any other line that is not a JSON object means the file is not one
of ours, and appending to it is refused.

A writer takes `lock()` first: an exclusive `flock` on `PATH.lock` beside the file, held
until `close` (the kernel drops it if the process dies, so a kill leaves no stale lock).
Two runs appending to one file would interleave their lines and write the same ids twice;
the second is refused with the first one's pid, which the lock file holds. The lock file is
removed on `close`; a process that opened it just before that finds it no longer at the
path and takes the lock afresh.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from pathlib import Path
from typing import Any

from longwrite.errors import LongwriteError


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
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                raise LongwriteError(f"cannot write {path}: {e.strerror}") from None
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
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        self._lock_fd = fd

    def load(self) -> list[dict[str, Any]]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as e:
            raise LongwriteError(f"cannot read {self.path}: {e.strerror}") from None
        end = data.rfind(b"\n") + 1
        if end < len(data):
            tail = data[end:]
            if _json_object(tail) is not None:
                self._raw_append(b"\n")
                data += b"\n"
            else:
                os.truncate(self.path, end)
                data = data[:end]
                self.dropped_torn = True
        return _records(data, self.path, "; refusing to append to this file")

    def _raw_append(self, data: bytes) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)

    def append(self, record: dict[str, Any]) -> None:
        data = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        with self._lock:
            if self._fd is None:
                try:
                    self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                except OSError as e:
                    raise LongwriteError(f"cannot write {self.path}: {e.strerror}") from None
            view = memoryview(data)
            while view:  # a regular file takes it in one write; a short write is carried on
                view = view[os.write(self._fd, view) :]
            os.fsync(self._fd)

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
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return []
    except OSError as e:
        raise LongwriteError(f"cannot read {path}: {e.strerror}") from None
    end = data.rfind(b"\n") + 1
    if end < len(data) and _json_object(data[end:]) is None:
        data = data[:end]
    return _records(data, Path(path), "")


def _records(data: bytes, path: Path, refusal: str) -> list[dict[str, Any]]:
    records = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        obj = _json_object(raw)
        if obj is None:
            raise LongwriteError(f"{path}:{number}: not a JSON object{refusal}")
        records.append(obj)
    return records


def _json_object(raw: bytes) -> dict[str, Any] | None:
    try:
        obj = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return obj if isinstance(obj, dict) else None
