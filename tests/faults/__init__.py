"""The fault server: one mode per way a server has misbehaved on us, for the parametrised tests
of the main command, `continue`, `batch` and the judged evaluations beside this file.

A mode is a set of `sse_server.Script` fields (the scripted OpenAI-compatible server that
every server test here uses: `ScriptedServer` for one fixed prompt, `EchoServer` for any
prompt of the think template) or, for a judge, a reply function for `judge_servers`. Each
says how the command must end: its exit code and a part of its one error line. Every test
then checks that nothing generated before the fault is missing (from stdout, `-o FILE`'s
`.partial`, the run log, OUT, the verdict log) and that no traceback reached stderr.

The misbehaviour is real, byte for byte as a server or a proxy sent it: an event that is a
proxy's HTML page, JSON nested 100,000 deep, an event without `choices`, `choices: [5]`, an
error event in the middle of a stream (vLLM's way), a connection that keeps dropping, a
model list that is HTML, garbage, nested or a list of numbers, a judge whose reply is a
100,000-brace bomb or a 3 MB value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

NESTED = "[" * 100_000 + "]" * 100_000  # what a broken serializer sent (RecursionError)
PAGE = "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
AFTER = 120  # pieces a stream sends before its fault: past the thinking, into the answer


@dataclass(frozen=True)
class Mode:
    """One misbehaviour: the script fields that make it, and how the command ends."""

    name: str
    script: dict[str, Any] = field(default_factory=dict)
    code: int = 1  # the server's fault; 2 where the engine gives up (a stream that keeps dropping)
    says: str = ""  # a part of the one `longwrite: error:` line


# A stream that starts well, then: (the main command and `continue`)
STREAM = [
    Mode("event-not-json", {"junk_after": AFTER}, 1, "sent an event that is not JSON"),
    Mode("event-nested", {"junk_after": AFTER, "junk": NESTED}, 1, "nested too deeply"),
    Mode(
        "event-no-choices",
        {
            "junk_after": AFTER,
            "junk": '{"id": "cmpl-1", "object": '
            '"text_completion", "created": 0, "model": "lw-test"}',
        },
        1,
        "sent an event that is not a completion",
    ),  # fmt: skip
    Mode(
        "event-choices-5",
        {"junk_after": AFTER, "junk": '{"id": "cmpl-1", "choices": [5]}'},
        1,
        "sent an event that is not a completion",
    ),  # fmt: skip
    Mode("error-event", {"error_after": AFTER}, 1, "scripted engine crash"),
    Mode(
        "drops",
        {"drop_after": AFTER // 4, "drops": 100, "drop_style": "close"},
        2,
        "dropped the stream 4 times",
    ),  # fmt: skip
]

# `GET /v1/models` answers: (any command, before anything is generated)
MODELS = [
    Mode("models-html", {"models_body": PAGE.encode()}, 1, "is not a model list"),
    Mode("models-garbage", {"models_body": b"\x00\xff\xfe garbage"}, 1, "is not a model list"),
    Mode("models-nested", {"models_body": NESTED.encode()}, 1, "is not a model list"),
    Mode(
        "models-shape",
        {"models_body": b'{"object": "list", "data": [5]}'},
        1,
        "JSON that is not a model list",
    ),  # fmt: skip
]

# A whole reply (what `batch` asks for) that is not a completion:
WHOLE = [
    Mode("reply-html", {"junk_after": 0, "junk": PAGE}, 1, "not a completion"),
    Mode("reply-nested", {"junk_after": 0, "junk": NESTED}, 1, "nested too deeply"),
    Mode("reply-no-choices", {"junk_after": 0, "junk": '{"id": "cmpl-1"}'}, 1, "not a completion"),
    Mode(
        "reply-choices-5",
        {"junk_after": 0, "junk": '{"id": "c", "choices": [5]}'},
        1,
        "not a completion",
    ),  # fmt: skip
    Mode("http-502", {"status": 502, "status_body": PAGE}, 1, "HTTP 502"),
]


def judge_reply(mode: str, good: str) -> str | int | bytes | dict:
    """What a judge in `mode` answers where a good one answers `good`."""
    replies: dict[str, str | int | bytes | dict] = {
        "reply-bomb": '{"score": ' * 100_000,  # 100,000 braces, never closed
        "reply-3mb": '{"relevance": "' + "x" * 3_000_000 + '", "score": "' + "y" * 10 + '"}',
        "reply-html": PAGE.encode(),
        "reply-choices-5": {"id": "c", "object": "chat.completion", "choices": [5]},
        "http-500": 500,
    }
    return replies[mode]


JUDGE_MODES = ["reply-bomb", "reply-3mb", "reply-html", "reply-choices-5", "http-500"]


def ids(modes: list[Mode]) -> list[str]:
    return [m.name for m in modes]
