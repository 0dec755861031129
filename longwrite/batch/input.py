"""The input lines of `longwrite batch`: one JSON object per line, checked before anything runs.

A line holds a `prompt` and optionally an `id` (or WritingBench's `query` and `index`), a
target (`words`, else `length` as in LongBench-Write) and sampling overrides (`temperature`,
`top_p`, `max_tokens`, `seed`, `best_of`, `parallel`: sections written at once when the line
is longer than one pass), and `source` (a folder, file or index name, or a list of them: the
line is written from those sources, as with `--source`; a relative path is read from the
current folder); any other field is carried through to the output untouched.

Ids: a line without `id` gets `p` + the first 12 hex digits of the SHA-256 of its prompt
(`-2`, `-3`... for repeats of the same prompt among the valid lines, in file order). Unlike a
line number, that survives editing the file (fixing or deleting another line) between a
crash and the re-run, which finds finished lines by id. An explicit id is matched as text
(`1` and `"1"` are the same id), and an id seen twice makes the second line malformed.

Each line is also resolved the way the main job resolves a prompt (`job.resolve_request`), so
a bad value is reported with its line number before a model loads. Lines are split and
decoded by the package's one reader (`io.records`): at "\n" only, each on its own, so a
line of invalid UTF-8 or too deeply nested is one malformed line, skipped and named.

Shards (`--shard K/N`, K from 1 to N): a line belongs to shard 1 + (a number from the
SHA-256 of its id) mod N, so N runs on N machines split one file with no coordinator, and
editing the file (adding, fixing or deleting other lines) never moves a line to another
shard, which a line number would. Shards are only as even as the hash: within a few
percent for thousands of lines.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from longwrite.errors import LongwriteError, quoted
from longwrite.generate.job import WriteOptions
from longwrite.io.records import decode_object, read_lines

# per-line overrides of the command's options: field -> number kind
OVERRIDES = {
    "temperature": float,
    "top_p": float,
    "max_tokens": int,
    "seed": int,
    "best_of": int,
    "parallel": int,
}


@dataclass(frozen=True)
class BatchItem:
    """One valid input line."""

    line: int
    id: str
    prompt: str
    words: int | None
    overrides: dict[str, Any]
    fields: dict[str, Any]  # the input object, as given


@dataclass(frozen=True)
class Problem:
    """A malformed input line, skipped."""

    line: int
    message: str


def prompt_id(prompt: str) -> str:
    """The id of a line that gives none: "p" + 12 hex digits of the prompt's SHA-256."""
    return "p" + hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:12]


def _number(value: Any, kind: type, name: str) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"`{name}` must be a number, got {quoted(value)}")
    if kind is int:
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(f"`{name}` must be a whole number, got {quoted(value)}")
        return int(value)
    return float(value)


def parse_item(text: str | bytes) -> tuple[dict[str, Any], str | None, int | None, dict]:
    """(object, explicit id or None, target words, overrides) of one line; ValueError says
    what is wrong."""
    return item_fields(decode_object(text))


def item_fields(obj: dict[str, Any]) -> tuple[dict[str, Any], str | None, int | None, dict]:
    """`parse_item` of a line already decoded."""
    if obj.get("prompt") is None and "query" in obj:  # WritingBench: `query`, `index`
        obj = {**obj, "prompt": obj["query"]}
    prompt = obj.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("no `prompt` text")
    given = obj.get("id", obj.get("index"))
    if given is not None and (isinstance(given, bool) or not isinstance(given, str | int)):
        raise ValueError(f"`id` must be a string or a whole number, got {quoted(given)}")
    if isinstance(given, str) and not given.strip():
        raise ValueError("`id` is empty")
    words = None
    for key in ("words", "length"):
        if obj.get(key) is not None:
            words = _number(obj[key], int, key)
            if words <= 0:
                raise ValueError(f"`{key}` must be positive, got {words}")
            break
    overrides: dict[str, Any] = {
        key: _number(obj[key], kind, key)
        for key, kind in OVERRIDES.items()
        if obj.get(key) is not None
    }
    if obj.get("source") is not None:
        overrides["sources"] = _sources(obj["source"])
    return obj, None if given is None else str(given), words, overrides


def _sources(value: Any) -> tuple[str, ...]:
    """A line's `source`: one name or path, or a list of them."""
    found = [value] if isinstance(value, str) else value
    if (
        not isinstance(found, list)
        or not found
        or not all(isinstance(s, str) and s.strip() for s in found)
    ):
        raise ValueError(
            f"`source` must be a folder, file or index name, or a list of them, got {quoted(value)}"
        )
    return tuple(found)


def read_items(path: Path, base: WriteOptions) -> tuple[list[BatchItem], list[Problem]]:
    """The valid lines of `path` and the malformed ones (blank lines are skipped).

    Each line is also resolved as the main job would resolve it (with `base` for what the
    line does not set), so a bad value is reported now, not after a model has loaded.
    """
    from longwrite.generate.job import resolve_request

    items: list[BatchItem] = []
    problems: list[Problem] = []
    seen: dict[str, int] = {}  # id -> line
    repeats: dict[str, int] = {}  # generated id -> times seen
    for line in read_lines(path):
        number = line.number
        if line.obj is None:
            problems.append(Problem(number, str(line.error)))
            continue
        try:
            obj, given, words, overrides = item_fields(line.obj)
            item = BatchItem(number, given or "", obj["prompt"], words, overrides, obj)
            resolve_request(replace(item_options(item, base), range_model=None))
            if given is None:
                base_id = prompt_id(item.prompt)
                repeats[base_id] = repeats.get(base_id, 0) + 1
                item_id = base_id if repeats[base_id] == 1 else f"{base_id}-{repeats[base_id]}"
            else:
                item_id = given
            if item_id in seen:
                raise ValueError(f"id {item_id!r} again (first on line {seen[item_id]})")
        except (ValueError, LongwriteError) as e:
            problems.append(Problem(number, str(e)))
            continue
        item = replace(item, id=item_id)
        seen[item_id] = number
        items.append(item)
    return items, problems


def item_options(item: BatchItem, base: WriteOptions) -> WriteOptions:
    """The main job's options for one line: the command's, with the line's overrides."""
    return replace(base, prompt=item.prompt, words=item.words, **item.overrides)


def parse_shard(text: str) -> tuple[int, int]:
    """`K/N` -> (K, N), with 1 <= K <= N; anything else is one clear error."""
    k, slash, n = text.strip().partition("/")
    if not (slash and k.strip().isdigit() and n.strip().isdigit()):
        raise LongwriteError(f"--shard {text!r}: use K/N, as in --shard 1/3")
    shard, count = int(k), int(n)
    if count < 1 or not 1 <= shard <= count:
        raise LongwriteError(f"--shard {text}: K/N needs 1 <= K <= N (shards are numbered from 1)")
    return shard, count


def shard_of(item_id: str, count: int) -> int:
    """The shard (1 to `count`) that the line with `item_id` belongs to."""
    digest = hashlib.sha256(item_id.encode("utf-8")).digest()
    return 1 + int.from_bytes(digest[:8], "big") % count


def in_shard(items: list[BatchItem], shard: int, count: int) -> list[BatchItem]:
    """The lines of shard `shard` of `count`, in file order."""
    return [item for item in items if shard_of(item.id, count) == shard]
