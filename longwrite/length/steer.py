"""Steering: one sentence of ours that states the target when the prompt states none.

When the user gives `--words N` and the prompt has no length of its own, a short sentence
(`prompts/steer_*.txt`) says it in the prompt's language. A prompt that already states a
length is left alone, and `--words` then only sets the target.
"""

from __future__ import annotations

from longwrite.prompt.templates import templates_dir

PLACEHOLDER = "{words}"


_SENTENCE_END = ".!?:;。！？：；…)）」』\"'”’"


def steer_sentence(words: int, language: str) -> str:
    """Our one-sentence length request, e.g. "The answer should be about 3,000 words long." """
    template = (templates_dir() / f"steer_{language}.txt").read_bytes().decode("utf-8")
    number = f"{words:,}" if language == "en" else str(words)
    return template.strip().replace(PLACEHOLDER, number)


def steer(user_prompt: str, words: int, language: str) -> str:
    """`user_prompt` with the length sentence appended, the user's sentence closed first."""
    text = user_prompt.rstrip()
    if text and text[-1] not in _SENTENCE_END:
        text += "。" if language == "zh" else "."
    return text + ("" if language == "zh" else " ") + steer_sentence(words, language)
