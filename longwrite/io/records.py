"""The one reader of JSON objects: lines of a JSON Lines file, and an object inside a reply.

Why one: each reader used to split, decode and check lines its own way, and each missed
something. `str.splitlines()` also splits at U+2028, U+0085 and the other Unicode line
breaks, which are valid inside a JSON string, so a good line read as "Unterminated string"
and every later line number shifted; one line of invalid UTF-8 refused the whole file without
a line number; a deeply nested line raised RecursionError. So:

- a file is split at b"\\n" only, and each line is decoded on its own (a "\\r" before the
  "\\n" is JSON whitespace; a byte order mark before the first line is dropped);
- whatever is wrong with a line (its bytes, its JSON, its depth, not being an object) is a
  `LineError`, which the caller names as `FILE:N: what` (`batch` skips such a line, the other
  readers refuse the file), and `at_line` does the same for a field that has the wrong shape;
- nesting deeper than `MAX_DEPTH` is refused: no file or reply of ours nests that deep, and
  a value that deep could not be written back out (`json.dumps` recurses too).

`first_object` finds the object a judge's reply holds, bare, fenced or after prose, within
bounds: a reply of 100,000 `{` costs a bounded number of attempts, not one per brace.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from longwrite.errors import LongwriteError

MAX_DEPTH = 100  # levels of objects and arrays a line or reply may nest
REPLY_CHARS = 100_000  # a reply is searched for its object within this many characters
REPLY_TRIES = 200  # and from at most this many of its "{"
BOM = b"\xef\xbb\xbf"


class LineError(ValueError):
    """What is wrong with one line (or reply): its caller adds where it is."""


@dataclass(frozen=True)
class Line:
    """One non-blank line of a file: its object, or what is wrong with it."""

    number: int
    obj: dict[str, Any] | None
    error: str | None = None


def depth(value: Any) -> int:
    """How many levels of objects and arrays `value` nests (0 for a scalar), counted without
    recursion and given up on past `MAX_DEPTH`.

    >>> depth(1), depth([]), depth({"a": [1, {"b": 2}]})
    (0, 1, 3)
    """
    if not isinstance(value, dict | list):
        return 0
    deepest = 0
    stack = [(value, 1)]
    while stack and deepest <= MAX_DEPTH:
        item, level = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        deepest = max(deepest, level)
        stack.extend((c, level + 1) for c in children if isinstance(c, dict | list))
    return deepest


def decode_object(raw: bytes | str) -> dict[str, Any]:
    """The JSON object `raw` holds; `LineError` says what is wrong with it otherwise."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise LineError(f"not UTF-8 text (a bad byte at column {e.start + 1})") from None
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as e:
        raise LineError(f"not valid JSON ({e.msg}, column {e.colno})") from None
    except RecursionError:
        raise LineError(f"JSON nested more than {MAX_DEPTH} levels deep") from None
    if not isinstance(obj, dict):
        raise LineError(f"expected a JSON object, got {type(obj).__name__}")
    if depth(obj) > MAX_DEPTH:
        raise LineError(f"JSON nested more than {MAX_DEPTH} levels deep")
    return obj


def split_lines(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(number from 1, line) of each non-blank line of `data`, split at b"\\n" only."""
    if data.startswith(BOM):
        data = data[len(BOM) :]
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if raw.strip():
            yield number, raw


def parse_lines(data: bytes) -> list[Line]:
    """Every non-blank line of `data`, decoded on its own."""
    out = []
    for number, raw in split_lines(data):
        try:
            out.append(Line(number, decode_object(raw)))
        except LineError as e:
            out.append(Line(number, None, str(e)))
    return out


def read_bytes(path: str | Path) -> bytes:
    """The bytes of a file the user named, or one clear LongwriteError line."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise LongwriteError(f"cannot read {path}: no such file") from None
    except IsADirectoryError:
        raise LongwriteError(f"cannot read {path}: it is a folder") from None
    except OSError as e:
        raise LongwriteError(f"cannot read {path}: {e.strerror}") from None


def read_lines(path: str | Path) -> list[Line]:
    """Every non-blank line of the file `path` (for a reader that skips the bad ones)."""
    return parse_lines(read_bytes(path))


def checked(path: str | Path, lines: list[Line], refusal: str = "") -> list[tuple[int, dict]]:
    """(number, object) of `lines`; the first bad one is refused as `PATH:N: what`."""
    out = []
    for line in lines:
        if line.obj is None:
            raise LongwriteError(f"{path}:{line.number}: {line.error}{refusal}")
        out.append((line.number, line.obj))
    return out


def read_objects(path: str | Path, *, empty: str | None = None) -> list[tuple[int, dict]]:
    """(number, object) of every non-blank line of `path`; a bad line is refused with its
    number, and so is a file without any line when `empty` says why it needs one."""
    out = checked(path, read_lines(path))
    if not out and empty is not None:
        raise LongwriteError(f"{path} {empty}")
    return out


def iter_objects(path: str | Path) -> Iterator[tuple[int, dict]]:
    """`read_objects` for a file too big to hold: lines read as they are needed."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise LongwriteError(f"cannot read {path}: no such file") from None
    except OSError as e:
        raise LongwriteError(f"cannot read {path}: {e.strerror}") from None
    with handle:
        for number, raw in enumerate(handle, start=1):  # a binary file splits at b"\n" only
            if number == 1 and raw.startswith(BOM):
                raw = raw[len(BOM) :]
            if not raw.strip():
                continue
            try:
                yield number, decode_object(raw)
            except LineError as e:
                raise LongwriteError(f"{path}:{number}: {e}") from None


@contextmanager
def at_line(path: str | Path, number: int) -> Iterator[None]:
    """Name the line when reading an object's fields finds one of the wrong shape (a
    ValueError or TypeError raised inside the block)."""
    try:
        yield
    except LongwriteError:
        raise
    except (ValueError, TypeError) as e:
        raise LongwriteError(f"{path}:{number}: {e}") from None


def first_object(text: str, accept: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
    """The first JSON object in `text` that `accept` takes (bare, in a code fence, after
    prose), looked for in the first `REPLY_CHARS` characters from at most `REPLY_TRIES` of
    its "{"; None when there is none."""
    decoder = json.JSONDecoder()
    text = text[:REPLY_CHARS]
    start = text.find("{")
    tries = 0
    while start >= 0 and tries < REPLY_TRIES:
        tries += 1
        try:
            obj, _ = decoder.raw_decode(text, start)
        except (json.JSONDecodeError, RecursionError):
            obj = None
        if isinstance(obj, dict) and depth(obj) <= MAX_DEPTH and accept(obj):
            return obj
        start = text.find("{", start + 1)
    return None
