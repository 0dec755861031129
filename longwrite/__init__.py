"""longwrite: ultra-long writing with LongWriter-Zero.

The Python API (`longwrite.api`):

    from longwrite import write
    doc = write("Write a 3,000-word essay on tides", words=3000, server="http://127.0.0.1:8000")

`write()` returns a `Result`; `stream()` yields `ThinkDelta`, `AnswerDelta` and a last
`Done`. The names are loaded on first use, so importing the package (as the command line
does for `--help`) pulls in nothing heavy: no torch, transformers or vllm.

The package follows one request top to bottom: `cli` parses options; `prompt` and `length`
resolve the request (template, target, steering, budget); `generate` streams it through an
`engines` backend, parses thinking from answer and adds rounds or best-of; `display` shows
it; `io` keeps files whole. `batch`, `evaluate`, `scoring` and `rl` build on the same parts.
"""

from typing import Any

__version__ = "0.1.0"

_API = {
    "write": "longwrite.api",
    "stream": "longwrite.api",
    "Result": "longwrite.generate.rounds",
    "ThinkDelta": "longwrite.generate.parser",
    "AnswerDelta": "longwrite.generate.parser",
    "Done": "longwrite.generate.parser",
    "LongwriteError": "longwrite.errors",
}
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'longwrite' has no attribute {name!r}")
