"""`longwrite batch merge`: the OUT files of a sharded batch joined into one, checked.

N machines ran `longwrite batch IN -o OUT_K --shard K/N`; each OUT_K holds the lines of its
shard. Joining them is only safe when every id of IN is there exactly once, so the check is
the point: an id in no file (a line that failed, a shard not run or not finished) or in two
(the same shard run twice, a file given twice) is refused with one line naming the ids, and
nothing is written. The ids IN should have come from IN itself (`--input`), read exactly as
`batch` reads it, so generated ids (`p` + hash) agree.

The joined file lists the records in IN's order (what one unsharded run would hold, up to
the order lines finished in) and is written atomically.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from longwrite.errors import LongwriteError

SHOWN_IDS = 5  # ids named in a refusal; the rest are counted


@dataclass(frozen=True)
class Merged:
    """The joined records, in IN's order, and what was checked."""

    records: list[dict[str, Any]]
    files: int


def _named(ids: list[str]) -> str:
    shown = ", ".join(repr(i) for i in ids[:SHOWN_IDS])
    more = len(ids) - SHOWN_IDS
    return shown + (f" and {more} more" if more > 0 else "")


def _load(path: Path) -> list[dict[str, Any]]:
    from longwrite.io.jsonl import read_records

    if not path.is_file():
        raise LongwriteError(f"cannot read {path}: no such file")
    return read_records(path)


def merge_records(outputs: list[Path], expected: list[str]) -> Merged:
    """The records of `outputs` in the order of `expected` (the ids of IN); refuses an id
    found twice, an id of IN found nowhere, or a record of an id that IN does not have."""
    where: dict[str, list[str]] = {}  # id -> the files it is in (a file twice if it is)
    found: dict[str, dict[str, Any]] = {}
    for path in outputs:
        for record in _load(path):
            if record.get("id") is None:
                raise LongwriteError(f"{path}: a record without an id: not a batch output")
            key = str(record["id"])
            where.setdefault(key, []).append(str(path))
            found[key] = record
    twice = [key for key, files in where.items() if len(files) > 1]
    if twice:
        files = sorted({f for key in twice for f in where[key]})
        raise LongwriteError(
            f"{len(twice)} id(s) in more than one place: {_named(twice)} (in {', '.join(files)})"
            "; nothing written"
        )
    missing = [key for key in expected if key not in found]
    if missing:
        raise LongwriteError(
            f"{len(missing)} id(s) of the input are in no file: {_named(missing)}; run their "
            "shard again (it resumes), then merge; nothing written"
        )
    wanted = set(expected)
    unknown = [key for key in found if key not in wanted]
    if unknown:
        raise LongwriteError(
            f"{len(unknown)} id(s) are not in the input: {_named(unknown)} (another input, or "
            "an edited one?); nothing written"
        )
    return Merged([found[key] for key in expected], len(outputs))


def write_merged(path: Path, merged: Merged) -> None:
    """The joined file, one JSON object a line, written atomically."""
    from longwrite.io.files import atomic_write_text

    lines = (json.dumps(r, ensure_ascii=False) + "\n" for r in merged.records)
    atomic_write_text(path, "".join(lines))
