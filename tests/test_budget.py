"""The token budget: thinking + answer tokens for the target, within the context."""

import pytest

from longwrite.io.counting import count_words
from longwrite.length.budget import (
    DEFAULT_CONTEXT,
    HEADROOM,
    SAMPLES,
    THINK_TOKENS,
    TOKENS_PER_WORD,
    plan_budget,
    tokens_per_word,
)


def two_per_word(text: str) -> int:
    """A fake tokenizer: exactly 2 tokens per LongBench-Write word."""
    return 2 * count_words(text)


@pytest.fixture(autouse=True)
def no_tiktoken_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "absent"))


def test_tokens_per_word_is_measured_with_the_tokenizer():
    assert tokens_per_word("en", two_per_word) == (2.0, "tokenizer")
    assert tokens_per_word("zh", two_per_word) == (2.0, "tokenizer")


def test_samples_are_in_their_language():
    assert count_words(SAMPLES["en"]) > 150
    assert count_words(SAMPLES["zh"]) > 150  # Chinese characters


def test_table_when_no_tokenizer_and_no_tiktoken_cache():
    assert tokens_per_word("en") == (TOKENS_PER_WORD["en"], "table")
    assert tokens_per_word("zh") == (TOKENS_PER_WORD["zh"], "table")


def test_budget_for_a_target_hand_computed():
    prompt = "word " * 100  # 200 tokens with the fake tokenizer
    b = plan_budget(prompt, language="en", target_hi=1100, context=10000, count_tokens=two_per_word)
    assert HEADROOM == 1.25 and THINK_TOKENS == 3000  # the numbers below assume these
    assert b.prompt_tokens == 200
    assert b.max_tokens == 3000 + 2750  # 1100 words x 2 tokens x 1.25
    assert b.max_words == int((10000 - 200 - 3000) / 2.5) == 2720
    assert b.fits and b.estimate == "tokenizer"


def test_target_that_does_not_fit_is_capped_and_flagged():
    b = plan_budget(
        "word " * 100, language="en", target_hi=5000, context=10000, count_tokens=two_per_word
    )
    assert not b.fits
    assert b.max_tokens == 10000 - 200  # everything the context leaves
    assert b.max_words == 2720


def test_no_target_keeps_the_model_card_default_within_the_context():
    assert plan_budget("hi", language="en", target_hi=None).max_tokens == 15500
    small = plan_budget("word " * 100, language="en", target_hi=None, context=4000,
                        count_tokens=two_per_word)  # fmt: skip
    assert small.max_tokens == 3800


def test_no_think_needs_no_thinking_budget():
    b = plan_budget("word", language="en", target_hi=1000, think=False, context=10000,
                    count_tokens=two_per_word)  # fmt: skip
    assert b.think_tokens == 0 and b.max_tokens == 2500


def test_defaults_without_engine():
    b = plan_budget("x" * 300, language="zh", target_hi=2200)
    assert b.context == DEFAULT_CONTEXT
    assert b.prompt_tokens == 100  # estimated as one token per 3 characters
    assert b.max_tokens == 3000 + int(-(-2200 * 0.85 * 1.25 // 1))
