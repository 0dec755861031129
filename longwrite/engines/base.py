"""The engine protocol: raw prompt text in, text chunks out.

Every backend (transformers, in-process vLLM, OpenAI-compatible servers) implements
`Engine.stream`. The prompt is raw completion text (the model's own think template), never a
chat message list. Stop strings are trimmed by the engine: no chunk ever contains one.

With `Sampling.n > 1` the stream interleaves the candidates: each chunk names its candidate in
`index`, and each candidate ends with exactly one chunk whose `finish_reason` is set (with
`n == 1` that is simply the last chunk). A continuation is just another prompt: the original
prompt plus the text so far, which every raw-completion backend supports.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from longwrite.errors import LongwriteError

DEFAULT_MODEL = "THU-KEG/LongWriter-Zero-32B"
MODEL_CONTEXT = 32768  # LongWriter-Zero-32B's context in tokens (Qwen2.5-32B)
ENV_SERVER = "LONGWRITE_SERVER"  # the OpenAI-compatible server to use
ENV_API_KEY = "LONGWRITE_API_KEY"  # its key: only from the environment, never an option

# The model card's published settings (reference §1).
DEFAULT_STOP: tuple[str, ...] = ("<|user|>", "<|endoftext|>", "</answer>")
DEFAULT_TEMPERATURE = 0.6
DEFAULT_TOP_P = 0.95
DEFAULT_MAX_TOKENS = 15500

FINISH_STOP = "stop"  # a stop string or the end-of-sequence token
FINISH_LENGTH = "length"  # max_tokens reached
FINISH_CANCELLED = "cancelled"  # the caller stopped the stream (Ctrl-C)


@dataclass(frozen=True)
class Sampling:
    """How to sample. `temperature == 0` means greedy decoding.

    `top_k == 0` and `repetition_penalty == 1.0` mean "off" (the model card uses neither);
    `min_tokens` forbids stopping earlier. `n` is the number of candidates.
    """

    max_tokens: int = DEFAULT_MAX_TOKENS
    temperature: float = DEFAULT_TEMPERATURE
    top_p: float = DEFAULT_TOP_P
    stop: tuple[str, ...] = DEFAULT_STOP
    seed: int | None = None
    n: int = 1
    min_tokens: int = 0
    top_k: int = 0
    repetition_penalty: float = 1.0

    def __post_init__(self) -> None:
        if self.max_tokens <= 0:
            raise ValueError("max_tokens must be positive")
        if self.n < 1:
            raise ValueError("n must be >= 1")
        if not 0 <= self.min_tokens <= self.max_tokens:
            raise ValueError("min_tokens must be in [0, max_tokens]")
        if self.top_k < 0 or self.repetition_penalty <= 0:
            raise ValueError("top_k must be >= 0 and repetition_penalty > 0")
        if self.temperature < 0:
            raise ValueError("temperature must be >= 0")
        if not 0 < self.top_p <= 1:
            raise ValueError("top_p must be in (0, 1]")


def fit_max_tokens(max_tokens: int, prompt_tokens: int, context: int | None) -> int:
    """The new tokens a request may ask for: `max_tokens`, within what the context leaves
    after a prompt of `prompt_tokens` (0 or less: no room). The one rule every engine and
    every continuation round applies, so the caller's count and the engine's agree.

    >>> fit_max_tokens(15500, 20000, 32768), fit_max_tokens(500, 20000, 32768)
    (12768, 500)
    """
    return max_tokens if context is None else min(max_tokens, context - prompt_tokens)


@dataclass(frozen=True)
class Chunk:
    """A piece of generated text.

    `tokens` is how many tokens this chunk adds (0 where the backend cannot say).
    `finish_reason` is None on every chunk of a candidate but its last, which may carry
    empty text. `index` says which candidate (0 when `Sampling.n == 1`).
    """

    text: str
    tokens: int = 0
    finish_reason: str | None = None
    index: int = 0


@dataclass(frozen=True)
class EngineInfo:
    """What the status line and `--json` say about the backend."""

    name: str
    model: str
    details: dict[str, str] = field(default_factory=dict)
    context: int | None = None  # the model's context length in tokens, where known


@runtime_checkable
class Engine(Protocol):
    """A loaded backend. `stream` may be called many times; `close` frees resources."""

    info: EngineInfo

    def stream(self, prompt: str, sampling: Sampling) -> Iterator[Chunk]:
        """Yield chunks of the completion of `prompt`; the last one has `finish_reason`.

        Closing the iterator early (Ctrl-C, `break`) must stop generation promptly.
        """
        ...

    def count_tokens(self, text: str) -> int | None:
        """Tokens in `text` with this model's tokenizer, or None when none is at hand."""
        ...

    def close(self) -> None: ...


class EngineError(LongwriteError):
    """A failure the user can act on (missing model, bad device); shown as one line."""


def env_api_key(key: str | None = None) -> str | None:
    """`key`, else `LONGWRITE_API_KEY`; blank (or only spaces) is no key."""
    if key is None:
        key = os.environ.get(ENV_API_KEY)
    return (key or "").strip() or None


def is_loopback(host: str) -> bool:
    """Whether `host` only accepts connections from this machine."""
    import ipaddress

    name = host.strip().strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:  # a host name other than localhost, or garbage
        return False
