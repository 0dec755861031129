"""From the user's words to the exact text the model sees.

LongWriter-Zero was trained on one raw-text template per language (`prompts/think_*.txt`);
chat templates are not used. The language rule is the model card's: Chinese if the prompt
holds any character in U+4E00..U+9FFF, else English. The user's text is spliced in by
splitting the template at its single `{question}` placeholder, so braces in the prompt
(`{}`, `{question}`, `{0}`) reach the model untouched; `str.format` would choke on them.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from longwrite.errors import LongwriteError

PLACEHOLDER = "{question}"


LANGUAGES = ("en", "zh")


_CJK = re.compile(r"[\u4e00-\u9fff]")


def templates_dir() -> Path:
    """Where the prompt templates are: inside the wheel, or at the top of a source checkout."""
    package = Path(__file__).resolve().parent.parent  # longwrite/
    for candidate in (package / "prompts", package.parent / "prompts"):
        if (candidate / "think_en.txt").is_file():
            return candidate
    raise LongwriteError(f"prompt templates not found beside {package} (broken install?)")


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
