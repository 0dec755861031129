"""The token arithmetic of `/v1/completions`: the extra fields a request sends, and how many
tokens each piece of a reply stands for.

Token counts matter beyond display: resuming a dropped stream subtracts the tokens already
generated from `max_tokens`, and continuation rounds spend a budget. The server's `usage`
count wins wherever it gives one; these rules fill in where it does not (llama.cpp streams
without a report, and one report covers all the candidates of a request).

A reply is read through `pieces_of`, which checks its shape first: the `openai` client builds
its objects from whatever JSON came without validating it, so an event without `choices`,
with `choices: [5]` or a text that is a number arrives as such, and reading it as a
completion would raise deep in the caller. Here it is `None`: the server's fault.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from longwrite.engines.base import FINISH_LENGTH, Sampling


def extra_body(sampling: Sampling, min_tokens: int) -> dict[str, Any]:
    """vLLM's sampling fields beyond the OpenAI API, only those that are switched on."""
    extra: dict[str, Any] = {}
    if min_tokens > 0:
        extra["min_tokens"] = min_tokens
    if sampling.top_k > 0:
        extra["top_k"] = sampling.top_k
    if sampling.repetition_penalty != 1.0:
        extra["repetition_penalty"] = sampling.repetition_penalty
    return extra


@dataclass(frozen=True)
class Piece:
    """One choice of a completion (a streamed chunk or a whole reply)."""

    index: int
    text: str
    finish_reason: str | None


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def pieces_of(completion: Any) -> tuple[list[Piece], int | None] | None:
    """The choices of one completion and its `usage.completion_tokens` (None when it gives
    none); None when it is not shaped as a completion."""
    choices = getattr(completion, "choices", None)
    if not isinstance(choices, list):
        return None
    out = []
    for choice in choices:
        index = getattr(choice, "index", None)
        text = getattr(choice, "text", None)
        finish = getattr(choice, "finish_reason", None)
        if not _count(index) or not isinstance(text, str | None):
            return None
        if not isinstance(finish, str | None):
            return None
        out.append(Piece(index, text or "", finish))
    usage = getattr(completion, "usage", None)
    tokens = getattr(usage, "completion_tokens", None) if usage is not None else None
    return out, tokens if _count(tokens) else None  # a count that is not one: no report


def whole_tokens(choices: list[Any], usage: int | None, asked: int) -> list[int]:
    """The tokens of each choice of a whole reply (in `choices`' order).

    One choice: the server's `usage` (without one, `asked` for a "length" finish, else a
    guess of 4 characters a token). Several: `usage` is their total, so the ones cut at
    `asked` count that, and the rest share what is left in proportion to their text.
    """
    at_length = [c.finish_reason == FINISH_LENGTH for c in choices]
    texts = [len(c.text or "") for c in choices]
    if usage is None:
        return [asked if cut else -(-size // 4) for cut, size in zip(at_length, texts, strict=True)]
    left = max(0, usage - asked * sum(at_length))
    shared = sum(size for cut, size in zip(at_length, texts, strict=True) if not cut) or 1
    counts = [
        asked if cut else left * size // shared for cut, size in zip(at_length, texts, strict=True)
    ]
    rest = [i for i, cut in enumerate(at_length) if not cut]
    if rest:  # what integer division left over, so that the total is the server's
        counts[rest[0]] += usage - sum(counts)
    return counts


def final_tokens(text: str, finish: str, counted: int, usage: int | None, asked: int) -> int:
    """The tokens of a response's final chunk, after `counted` were yielded for the others.

    The server's `usage` total wins; without one, a "length" finish means exactly the `asked`
    max_tokens were generated, and otherwise the final chunk is a token when it has text.
    """
    if usage is not None:
        return max(0, usage - counted)
    if finish == FINISH_LENGTH:
        return max(0, asked - counted)
    return 1 if text else 0
