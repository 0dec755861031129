"""Word counting must equal LongBench-Write's, quirks included (hand-counted cases)."""

from hypothesis import given
from hypothesis import strategies as st

from longwrite.io.counting import WordCounter, count_words


def test_english_words():
    assert count_words("Hello world") == 2
    assert count_words("The 2,000 words in 3 parts.") == 4  # The, words, in, parts
    assert count_words("  leading and   trailing  \n") == 3


def test_regex_quirks_carry_over():
    assert count_words("don't stop") == 3  # don, t, stop
    assert count_words("e-mail") == 2
    assert count_words("café au lait") == 2  # é is a word char: no \b after "caf"
    assert count_words("abc123 def") == 1  # no boundary between c and 1
    assert count_words("snake_case word") == 1
    assert count_words("ＡＢＣ full-width") == 2  # full-width letters are not [a-zA-Z]


def test_chinese_characters():
    assert count_words("我爱北京天安门") == 7
    assert count_words("，。！？“”") == 0  # punctuation counts for nothing
    assert count_words("ひらがな") == 0  # kana is outside U+4E00..U+9FFF
    assert count_words("\u3400") == 0  # CJK extension A is outside the range too
    assert count_words("\u4e00\u9fff") == 2  # both ends of the range count


def test_mixed_text():
    assert count_words("中文 English 混合") == 5
    # Latin letters glued to Chinese characters are not counted (\b needs a non-word side)
    assert count_words("用Python写代码") == 4
    assert count_words("用 Python 写代码") == 5
    assert count_words("# 标题 Title\n\n- 第一 point one") == 7  # 2+1+2+1+1


def test_empty():
    assert count_words("") == 0
    assert WordCounter().total == 0


_alphabet = st.sampled_from(list("ab Z'-_1é中文，。 \n") + ["don't", "café", "abc123", "用Py"])


@given(st.lists(_alphabet, max_size=60), st.data())
def test_incremental_counter_equals_whole_count(pieces, data):
    text = "".join(pieces)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=12)))
    counter = WordCounter()
    prev = 0
    for cut in [*cuts, len(text)]:
        counter.feed(text[prev:cut])
        prev = cut
        assert counter.total == count_words(text[:cut])
