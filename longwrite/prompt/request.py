"""One writing request, fully resolved: the exact prompt sent and how it is sampled.

The resolved `Request` is frozen and JSON-serialisable: `--dry-run --json` prints it, and the
engines receive its `prompt` and `sampling` unchanged. `build_request` validates the user's
settings (one clear line for each mistake) and cleans the prompt once; a target above
`MAX_WORDS`, given or stated in the prompt, is refused before anything is planned or
allocated (a trillion-word request once filled 10 GB in seconds).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from longwrite.defaults import MAX_WORDS
from longwrite.engines.base import DEFAULT_MAX_TOKENS, DEFAULT_TEMPERATURE, DEFAULT_TOP_P, Sampling
from longwrite.errors import LongwriteError
from longwrite.prompt.templates import build_prompt, clean_prompt, detect_language


@dataclass(frozen=True)
class Request:
    """One writing request, fully resolved: what is sent and how it is sampled."""

    user_prompt: str
    prompt: str
    language: str
    think: bool
    target_words: int | None
    sampling: Sampling
    target_range: tuple[int, int] | None = None  # the paper's [lo, hi] for the target
    question: str | None = None  # what went into the template, when it differs (steering)
    # With --source: the run's `generate.grounded.Grounding` (its passages are in `prompt`).
    sources: Any = field(default=None, compare=False, repr=False)

    def to_json(self) -> dict[str, Any]:
        s = self.sampling
        out = {
            "prompt": self.prompt,
            "user_prompt": self.user_prompt,
            "language": self.language,
            "think": self.think,
            "target_words": self.target_words,
            "target_range": list(self.target_range) if self.target_range else None,
            "steered": self.question is not None,
            "max_tokens": s.max_tokens,
            "stop": list(s.stop),
            "temperature": s.temperature,
            "top_p": s.top_p,
            "seed": s.seed,
        }
        if self.sources is not None:
            out["sources"] = self.sources.to_json()
        return out


def check_settings(
    *,
    prompt: str | None = None,
    words: int | None = None,
    max_tokens: int | None = None,
    temperature: float = DEFAULT_TEMPERATURE,
    top_p: float = DEFAULT_TOP_P,
    best_of: int = 1,
    max_rounds: int = 0,
) -> None:
    """One clear line for the first setting a user got wrong; the one place that checks
    them, for the main command, `batch` and the Python API alike."""
    if prompt is not None and not prompt:
        raise LongwriteError("the prompt is empty: give PROMPT, or pipe text into stdin")
    if words is not None and words <= 0:
        raise LongwriteError(f"--words must be a positive number of words, not {words}")
    if words is not None and words > MAX_WORDS:  # --words, the prompt's own, a batch line's
        raise LongwriteError(
            f"a target of {words:,} words is more than longwrite writes (at most "
            f"{MAX_WORDS:,} words)"
        )
    if max_tokens is not None and max_tokens <= 0:
        raise LongwriteError(f"--max-tokens must be positive, not {max_tokens}")
    if temperature < 0:
        raise LongwriteError(f"--temperature must be >= 0, not {temperature}")
    if not 0 < top_p <= 1:
        raise LongwriteError(f"--top-p must be in (0, 1], not {top_p}")
    if best_of < 1:
        raise LongwriteError(f"--best-of must be at least 1, not {best_of}")
    if max_rounds < 0:
        raise LongwriteError(f"--max-rounds must be >= 0, not {max_rounds}")


def build_request(
    user_prompt: str,
    *,
    words: int | None = None,
    max_tokens: int | None = None,
    temperature: float = DEFAULT_TEMPERATURE,
    top_p: float = DEFAULT_TOP_P,
    seed: int | None = None,
    think: bool = True,
    language: str | None = None,
    target_range: tuple[int, int] | None = None,
    question: str | None = None,
) -> Request:
    """Validate the user's settings and resolve them into a `Request`.

    `question` (default: `user_prompt`) is the text put into the template; length steering
    passes the prompt with its added sentence here, so `user_prompt` stays the user's own.
    """
    user_prompt = clean_prompt(user_prompt)
    if question is not None:
        question = clean_prompt(question)
    check_settings(
        prompt=user_prompt, words=words, max_tokens=max_tokens, temperature=temperature, top_p=top_p
    )
    lang = language or detect_language(user_prompt)
    sampling = Sampling(
        max_tokens=max_tokens or DEFAULT_MAX_TOKENS,
        temperature=temperature,
        top_p=top_p,
        seed=seed,
    )
    return Request(
        user_prompt=user_prompt,
        prompt=build_prompt(question or user_prompt, language=lang, think=think),
        language=lang,
        think=think,
        target_words=words,
        sampling=sampling,
        target_range=target_range,
        question=question if question and question != user_prompt else None,
    )
