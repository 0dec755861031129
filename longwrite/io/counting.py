"""Word and token counting, exactly as LongBench-Write counts.

A "word" is one Chinese character (U+4E00..U+9FFF) or one match of the regex
`\\b[a-zA-Z]+\\b`; digits and punctuation count for nothing. The regex is Python's Unicode
`\\b`, so its quirks carry over on purpose: "don't" is two words, "café" and "abc123" are none,
and Latin letters glued to Chinese characters ("用Python写") do not count. The CLI status
line, length control, `eval length` and the RL length reward all call this module, so the
number a user sees is the number the benchmark scores.

`WordCounter` counts a stream incrementally in linear time. Cutting text right after a
non-word character (\\W) never changes the count: no match spans that character, and the
`\\b` on either side of it sees the same neighbours. So the counter keeps an exact total for
everything up to the last non-word character and recounts only the short tail after it.
"""

from __future__ import annotations

import re
from typing import Protocol

_CJK = re.compile(r"[\u4e00-\u9fff]")
_ENGLISH_WORD = re.compile(r"\b[a-zA-Z]+\b")
_NON_WORD = re.compile(r"\W")


def count_words(text: str) -> int:
    """LongBench-Write's length of `text`: CJK characters plus English words."""
    return len(_CJK.findall(text)) + len(_ENGLISH_WORD.findall(text))


def _last_non_word(text: str) -> int:
    """Index of the last \\W character in `text`, or -1."""
    for i in range(len(text) - 1, -1, -1):
        if _NON_WORD.match(text, i):
            return i
    return -1


class WordCounter:
    """Running `count_words` over text that arrives in pieces.

    >>> c = WordCounter()
    >>> for piece in ["Hel", "lo wor", "ld, 世", "界"]:
    ...     c.feed(piece)
    >>> c.total == count_words("Hello world, 世界")
    True
    """

    def __init__(self) -> None:
        self._settled = 0  # exact count of the text up to and including the last \W seen
        self._tail = ""  # text after that character; recounted on demand

    def feed(self, text: str) -> None:
        tail = self._tail + text
        cut = _last_non_word(text)
        if cut < 0:  # no \W in the new text: the whole of it extends the tail
            self._tail = tail
            return
        cut += len(self._tail)
        self._settled += count_words(tail[: cut + 1])
        self._tail = tail[cut + 1 :]

    @property
    def total(self) -> int:
        return self._settled + (count_words(self._tail) if self._tail else 0)


class Tokenizer(Protocol):
    def encode(self, text: str, add_special_tokens: bool = ...) -> list[int]: ...


def count_tokens(text: str, tokenizer: Tokenizer) -> int:
    """Tokens in `text` with a Hugging Face tokenizer, without BOS/EOS added."""
    return len(tokenizer.encode(text, add_special_tokens=False))
