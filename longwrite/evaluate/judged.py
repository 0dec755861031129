"""What WritingBench and Arena-Write share: reading their files, the answer to judge, the
judge's prompt and reply, and who judged what.

Both benchmarks come as JSON Lines that we do not ship, and both judge answers that may come
from our `batch` (with `answer` and `thinking` apart) or from another tool (a `response`
that may still hold the thinking). Only the answer is judged, never the thinking: a reasoning
trace would both mislead the judge and fill its context. Verdicts name what they judged by a
digest, and the judge by its model and a digest of its prompt, so a re-run reuses a verdict
only for the same answer from the same judge (as `eval quality` does).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from longwrite.errors import LongwriteError

_THINK_END = re.compile(r"</think>", re.I)
_ANSWER = re.compile(r"<answer>(.*?)(?:</answer>|\Z)", re.I | re.S)


def read_objects(path: str | Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) of every non-blank line; a bad file or line is a user error."""
    from longwrite.io.records import read_objects as read

    return read(path, empty="holds nothing")


def answer_only(text: str) -> str:
    """The answer in a response: after the thinking, inside `<answer>` tags when there are.

    >>> answer_only("<think>plan</think>\\n<answer>The text.</answer>")
    'The text.'
    >>> answer_only("Plain text.")
    'Plain text.'
    """
    parts = _THINK_END.split(text)
    rest = parts[-1]
    found = _ANSWER.search(rest)
    return (found.group(1) if found else rest).strip()


def answer_of(obj: dict[str, Any]) -> str | None:
    """The answer of a results line: `answer` (our batch output), else `response`."""
    for key in ("answer", "response"):
        value = obj.get(key)
        if isinstance(value, str):
            return answer_only(value)
    return None


def key_of(obj: dict[str, Any], names: tuple[str, ...]) -> str | None:
    """The first of `names` the object gives, as text (`1` and `"1"` are the same id)."""
    for name in names:
        value = obj.get(name)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
            return str(value)
    return None


def digest(*parts: str) -> str:
    """16 hex digits of the SHA-256 of `parts`, joined by NUL."""
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()[:16]


def load_template(name: str, fields: tuple[str, ...]) -> str:
    """`prompts/NAME.txt`, which must hold each `{field}` exactly once."""
    from longwrite.prompt.templates import templates_dir

    path = templates_dir() / f"{name}.txt"
    text = path.read_bytes().decode("utf-8")
    for field in fields:
        if text.count("{" + field + "}") != 1:
            raise LongwriteError(f"{path} must hold {{{field}}} exactly once")
    return text


def fill(template: str, values: dict[str, str]) -> str:
    """Plain substitution in one pass: the values may hold braces and are never rescanned."""
    pattern = re.compile("|".join(re.escape("{" + k + "}") for k in values))
    return pattern.sub(lambda m: values[m.group(0)[1:-1]], template)


def reply_object(reply: str, required: tuple[str, ...]) -> dict[str, Any]:
    """The first JSON object in a reply (bare, fenced or after prose) holding `required`."""
    from longwrite.io.records import first_object

    found = first_object(reply, lambda obj: all(k in obj for k in required))
    if found is None:
        raise ValueError(f"no JSON object with {', '.join(map(repr, required))} in the reply")
    return found
