"""From the user's words to the exact text the model sees.

LongWriter-Zero was trained on one raw-text template per language (`prompts/think_*.txt`);
chat templates are not used. The language rule is the model card's: Chinese if the prompt
holds any character in U+4E00..U+9FFF, else English. The user's text is spliced in by
splitting the template at its single `{question}` placeholder, so braces in the prompt
(`{}`, `{question}`, `{0}`) reach the model untouched; `str.format` would choke on them.

The resolved `Request` is frozen and JSON-serialisable: `--dry-run --json` prints it, and the
engines receive its `prompt` and `sampling` unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from longwrite.engines.base import DEFAULT_MAX_TOKENS, DEFAULT_TEMPERATURE, DEFAULT_TOP_P, Sampling
from longwrite.errors import LongwriteError

PLACEHOLDER = "{question}"
LANGUAGES = ("en", "zh")
_CJK = re.compile(r"[\u4e00-\u9fff]")


def templates_dir() -> Path:
    """Where the prompt templates are: inside the wheel, or at the top of a source checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "prompts", here.parent / "prompts"):
        if (candidate / "think_en.txt").is_file():
            return candidate
    raise LongwriteError(f"prompt templates not found beside {here} (broken install?)")


@cache
def load_template(name: str) -> str:
    """The template file `name` (e.g. "think_en"), read byte for byte as UTF-8."""
    path = templates_dir() / f"{name}.txt"
    text = path.read_bytes().decode("utf-8")
    if text.count(PLACEHOLDER) != 1:
        raise LongwriteError(f"template {path} must contain {PLACEHOLDER} exactly once")
    return text


def detect_language(text: str) -> str:
    """'zh' if `text` contains a CJK unified ideograph, else 'en' (the model card's rule)."""
    return "zh" if _CJK.search(text) else "en"


def clean_prompt(text: str) -> str:
    """The user's text as the model should see it, however it arrived.

    A prompt piped from a Windows file ends lines with CRLF (and may start with a BOM); `echo`
    and editors add a trailing newline; all of them would otherwise reach the model inside
    the template (`...\\n <|assistant|>:`). Line ends become LF and surrounding whitespace
    goes; everything else is kept byte for byte.

    >>> clean_prompt("\\ufeffWrite a poem.\\r\\nAbout tides.\\r\\n\\r\\n")
    'Write a poem.\\nAbout tides.'
    """
    return text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff").strip()


def build_prompt(question: str, *, language: str | None = None, think: bool = True) -> str:
    """The full raw prompt for `question`; language detected unless given."""
    lang = language or detect_language(question)
    if lang not in LANGUAGES:
        raise LongwriteError(f"unknown language {lang!r}: use one of {', '.join(LANGUAGES)}")
    before, after = load_template(f"{'think' if think else 'direct'}_{lang}").split(PLACEHOLDER)
    return before + question + after


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

    def to_json(self) -> dict[str, Any]:
        s = self.sampling
        return {
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
    if not user_prompt:
        raise LongwriteError("the prompt is empty: give PROMPT, or pipe text into stdin")
    if words is not None and words <= 0:
        raise LongwriteError(f"--words must be a positive number of words, not {words}")
    if max_tokens is not None and max_tokens <= 0:
        raise LongwriteError(f"--max-tokens must be positive, not {max_tokens}")
    if temperature < 0:
        raise LongwriteError(f"--temperature must be >= 0, not {temperature}")
    if not 0 < top_p <= 1:
        raise LongwriteError(f"--top-p must be in (0, 1], not {top_p}")
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
