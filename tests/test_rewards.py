"""Rewards: length, format, repetition and their combination, against hand-computed values."""

from __future__ import annotations

import dataclasses
import doctest
import random

import pytest

import longwrite.scoring.rewards
from longwrite.io.counting import count_words
from longwrite.length.targets import WordRange
from longwrite.scoring.rewards import (
    Running,
    Scores,
    default_max_words,
    format_reward,
    format_with_repetition,
    length_reward,
    repetition_penalty,
    score_completion,
)


def test_doctests():
    result = doctest.testmod(longwrite.scoring.rewards)
    assert result.attempted > 0
    assert result.failed == 0


# ---- length ------------------------------------------------------------------------------


def test_length_inside_the_range_is_one():
    assert length_reward(1800, 1800, 2200) == 1.0
    assert length_reward(2000, 1800, 2200) == 1.0
    assert length_reward(2200, 1800, 2200) == 1.0


def test_length_below_the_range_is_linear_from_zero():
    assert length_reward(1799, 1800, 2200) == pytest.approx(1799 / 1800)
    assert length_reward(1350, 1800, 2200) == 0.75
    assert length_reward(900, 1800, 2200) == 0.5
    assert length_reward(0, 1800, 2200) == 0.0


def test_length_above_the_range_falls_to_zero_at_twice_hi():
    # Lmax = 2 * 2200 = 4400
    assert default_max_words(2200) == 4400
    assert length_reward(2201, 1800, 2200) == pytest.approx(2199 / 2200)
    assert length_reward(2750, 1800, 2200) == 0.75  # (4400 - 2750) / 2200
    assert length_reward(3300, 1800, 2200) == 0.5
    assert length_reward(4400, 1800, 2200) == 0.0


def test_length_is_clamped_at_zero():
    assert length_reward(4401, 1800, 2200) == 0.0
    assert length_reward(100_000, 1800, 2200) == 0.0


def test_max_words_overrides_lmax():
    assert length_reward(2700, 1800, 2200, max_words=3200) == 0.5  # 500 / 1000
    assert length_reward(3200, 1800, 2200, max_words=3200) == 0.0
    assert length_reward(2000, 1800, 2200, max_words=3200) == 1.0


def test_small_ranges_get_at_least_500_words_of_slack():
    assert default_max_words(200) == 700
    assert length_reward(450, 100, 200) == 0.5  # (700 - 450) / (700 - 200)
    assert length_reward(50, 100, 200) == 0.5


def test_impossible_request_range_zero_zero():
    assert length_reward(0, 0, 0) == 1.0
    assert length_reward(100, 0, 0) == 0.8  # Lmax = 500: (500 - 100) / 500
    assert length_reward(250, 0, 0) == 0.5
    assert length_reward(500, 0, 0) == 0.0
    assert length_reward(600, 0, 0) == 0.0


def test_range_starting_at_zero():
    assert length_reward(0, 0, 2000) == 1.0
    assert length_reward(3000, 0, 2000) == 0.5  # Lmax 4000


@pytest.mark.parametrize(
    ("words", "lo", "hi", "max_words"),
    [(-1, 10, 20, None), (5, 20, 10, None), (5, -10, 10, None), (5, 10, 20, 20)],
)
def test_length_rejects_nonsense(words, lo, hi, max_words):
    with pytest.raises(ValueError):
        length_reward(words, lo, hi, max_words=max_words)


# ---- format ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "<think>plan</think><answer>The document.",  # </answer> absent: it is a stop string
        "<think>plan</think>\n<answer>The document.</answer>",
        " <think>\nplan\n</think>\n\n<answer>\n# Title\n\nText.\n</answer>\n",
        "<think>plan with a < b and <thinking></think> <answer>a <answers> tag",
        # tags quoted inside the plan or the answer are text (the template names them)
        "<think>The essay goes inside <answer> tags, after </think>.</think>\n<answer>Doc",
        "<think>Use <think> </think> and <answer> </answer> tags.</think> <answer>Doc",
        "<think>plan</think><answer>In XML, write <think> and <answer> literally.",
        "<think>plan</think>\n\n<answer>Doc.</answer>\n\n",
    ],
)
def test_format_well_formed(text):
    assert format_reward(text) == 1.0


@pytest.mark.parametrize(
    "text",
    [
        "plan</think><answer>The document.",  # missing <think>
        "<think>plan<answer>The document.",  # missing </think>
        "<think>plan\n<answer>The document.",  # missing </think>, <answer> on its own line
        "<think>plan</think>The document.",  # missing <answer>
        "<think>a</think><think>b</think><answer>The document.",  # two think blocks
        "<think>a</think><answer>b</answer><think>c</think>",
        "<answer>The document.</answer><think>plan</think>",  # answer before think
        "Sure! <think>plan</think><answer>The document.",  # text before the tags
        "<think>plan</think> Here it is: <answer>The document.",  # text between them
        "<think>plan</think><answer>The document.</answer> Hope this helps!",  # text after
        "<think>plan</think><answer>one</answer><answer>two",  # two answers
        "<think>plan</think><answer>one</answer></answer>",
        "<think>  </think><answer>The document.",  # blank thinking
        "<think>plan</think><answer>  </answer>",  # blank answer
        "The document with no tags at all.",
        "",
    ],
)
def test_format_malformed(text):
    assert format_reward(text) == 0.0


# ---- repetition: small cases -------------------------------------------------------------


def test_repetition_of_a_whole_paragraph():
    # 10 tokens; the second paragraph's 2 shingles were both seen: containment 1, weight 1
    assert repetition_penalty("a b c d e\n\na b c d e") == 0.5
    assert repetition_penalty("a b c d e\n\na b c d e\n\na b c d e\n\na b c d e") == 0.75


def test_repetition_without_repeats_is_zero():
    assert repetition_penalty("a b c d e\n\nf g h i j") == 0.0
    assert repetition_penalty("") == 0.0
    assert repetition_penalty("123, 456!") == 0.0
    assert repetition_penalty("a b\n\na b\n\na b") == 0.0  # shorter than one shingle


def test_repetition_is_case_insensitive_and_ignores_punctuation():
    assert repetition_penalty("One two, three four!\n\none TWO three four") == 0.5


def test_repetition_ramp_between_the_thresholds():
    # Paragraph 1: 10 tokens, 7 shingles. Paragraph 2: the same 10 tokens then 13 new ones,
    # 23 tokens and 20 shingles of which 7 were seen: containment 0.35, halfway up the ramp
    # from 0.2 to 0.5, so weight 0.5. Penalty = 0.5 * 23 / (10 + 23).
    first = "a b c d e f g h i j"
    second = first + " k l m n o p q r s t u v w"
    assert repetition_penalty(f"{first}\n\n{second}") == pytest.approx(0.5 * 23 / 33)


def test_repetition_small_overlap_is_free():
    # Paragraph 2 re-uses one 4-gram of 20 (containment 0.05 < 0.2): no penalty.
    first = "a b c d e f g h i j"
    second = "a b c d k l m n o p q r s t u v w x y z aa ab ac"  # 23 tokens, 20 shingles
    assert repetition_penalty(f"{first}\n\n{second}") == 0.0


def test_repetition_catches_a_loop_without_paragraph_breaks():
    # One 300-token paragraph, cut into 3 units of 100. The 6-token period repeats inside the
    # first unit already (97 shingles, 6 distinct: 91 seen), and the other units are all
    # repeats: every unit has weight 1.
    loop = "the cat sat on the mat " * 50
    assert repetition_penalty(loop) == 1.0


def test_repetition_of_half_a_paragraph():
    # 300 distinct words (aa, ab, ..., lm), then the 300-token loop, in one paragraph of 600
    # tokens: 5 units of 120. Units 1-2: original, weight 0. Unit 3: 60 words then 60 loop
    # tokens, 117 shingles of which 66 are distinct and unseen (60 starting in the words, the
    # 6 of the loop), so 51 repeats: weight (51/117 - 0.2) / 0.3. Units 4-5: all repeats.
    words = [chr(97 + i // 26) + chr(97 + i % 26) for i in range(300)]
    text = " ".join(words) + " " + "the cat sat on the mat " * 50
    expected = (120 * (51 / 117 - 0.2) / 0.3 + 240) / 600
    assert repetition_penalty(text) == pytest.approx(expected)


def test_repetition_chinese_uses_six_character_shingles():
    # Mostly CJK: 6-character shingles. The second paragraph shares the 5 characters
    # 一二三四五 with the first: no 6-gram in common, but 2 of its 5 4-grams.
    text = "一二三四五六七八\n\n一二三四五九十百"
    assert repetition_penalty(text) == 0.0
    # With 4-grams: containment 2/5 = 0.4, weight (0.4 - 0.2) / 0.3 = 2/3, over 8 of 16 tokens
    assert repetition_penalty(text, shingle=4) == pytest.approx(2 / 3 * 8 / 16)
    assert repetition_penalty("一二三四五六七\n\n一二三四五六七") == 0.5


def test_repetition_rejects_a_bad_shingle():
    with pytest.raises(ValueError):
        repetition_penalty("a b c", shingle=0)


# ---- repetition: 10,000-word documents ---------------------------------------------------

SYLLABLES = ("ka", "lo", "mi", "ren", "sta", "vor", "pel", "tur", "dan", "shi", "qua", "bel")
SYLLABLES += ("nor", "fin", "gal", "es", "ot", "ri", "um", "ax", "ber", "cor", "dil", "emp")
PREPOSITIONS = ("of", "in", "near", "with", "across", "under", "for", "beyond", "against")
CONNECTIVES = (
    "On the other hand,",
    "At the same time,",
    "In other words,",
    "As a result,",
    "For example,",
    "In the end,",
)


def vocabulary(size: int = 2_000, seed: int = 0) -> list[str]:
    """`size` distinct made-up content words of 2-3 syllables (letters only)."""
    rng = random.Random(seed)
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choices(SYLLABLES, k=rng.randint(2, 3))))
    return sorted(words)


VOCAB = vocabulary()


def honest_sentence(rng: random.Random) -> str:
    """A fresh sentence: content words drawn from `VOCAB` in varied function-word frames.

    The frames and connectives recur, as stock phrases do in real prose ("on the other
    hand", "near the"), but the content words make every sentence different.
    """

    def w() -> str:
        return rng.choice(VOCAB)

    parts = [f"the {w()} {w()}", w(), f"the {w()}"]
    for _ in range(rng.randint(1, 3)):
        frames = (
            f"{rng.choice(PREPOSITIONS)} the {w()} {w()}",
            f"which {w()} a {w()}",
            f"while the {w()} {w()} {w()}",
            f"{rng.choice(PREPOSITIONS)} a {w()}",
        )
        parts.append(rng.choice(frames))
    sentence = " ".join(parts) + "."
    if rng.random() < 0.3:
        return f"{rng.choice(CONNECTIVES)} {sentence}"
    return sentence[0].upper() + sentence[1:]


def honest_paragraph(rng: random.Random) -> str:
    return " ".join(honest_sentence(rng) for _ in range(rng.randint(5, 9)))


def honest_document(words: int, seed: int) -> str:
    rng = random.Random(seed)
    paragraphs: list[str] = []
    total = 0
    while total < words:
        paragraphs.append(honest_paragraph(rng))
        total += count_words(paragraphs[-1])
    return "\n\n".join(paragraphs)


def swap_words(paragraph: str, rng: random.Random, every: int) -> str:
    """`paragraph` with one word in `every` replaced by another word (a light rephrasing)."""
    words = paragraph.split()
    for i in range(rng.randrange(every), len(words), every):
        words[i] = rng.choice(VOCAB)
    return " ".join(words)


def padded_document(words: int, seed: int) -> str:
    """30 distinct paragraphs, then the same paragraphs again with small swaps, to `words`."""
    rng = random.Random(seed)
    originals = [honest_paragraph(rng) for _ in range(30)]
    paragraphs = list(originals)
    total = sum(count_words(p) for p in paragraphs)
    i = 0
    while total < words:
        paragraphs.append(swap_words(originals[i % 30], rng, every=10))
        total += count_words(paragraphs[-1])
        i += 1
    return "\n\n".join(paragraphs)


def test_honest_english_document_is_not_penalised():
    doc = honest_document(10_000, seed=1)
    assert count_words(doc) >= 10_000
    assert len(set(doc.split("\n\n"))) == len(doc.split("\n\n"))  # no paragraph repeats
    assert repetition_penalty(doc) < 0.1


def test_padded_english_document_is_caught():
    doc = padded_document(10_000, seed=2)
    assert count_words(doc) >= 10_000
    original_words = sum(count_words(p) for p in doc.split("\n\n")[:30])
    assert original_words < 3_500  # so at least 65% of the document is padding
    assert repetition_penalty(doc) > 0.5


def test_verbatim_padding_scores_its_share():
    rng = random.Random(3)
    originals = [honest_paragraph(rng) for _ in range(10)]
    doc = "\n\n".join(originals * 4)  # 3 of 4 copies repeat: penalty 0.75 exactly
    assert repetition_penalty(doc) == pytest.approx(0.75)


CJK_POOL = [chr(0x4E00 + i) for i in range(0, 20_000, 13)]  # ~1,500 distinct characters
CJK_PHRASES = ("因此，", "另一方面，", "与此同时，", "总而言之，", "例如，")


def chinese_paragraph(rng: random.Random) -> str:
    sentences = []
    for _ in range(rng.randint(6, 10)):
        body = "".join(rng.choices(CJK_POOL, k=rng.randint(12, 30)))
        sentences.append((rng.choice(CJK_PHRASES) if rng.random() < 0.3 else "") + body + "。")
    return "".join(sentences)


def test_chinese_honest_vs_padded():
    rng = random.Random(4)
    honest: list[str] = []
    while count_words("".join(honest)) < 10_000:
        honest.append(chinese_paragraph(rng))
    honest_doc = "\n".join(honest)
    assert repetition_penalty(honest_doc) < 0.1

    originals = [chinese_paragraph(rng) for _ in range(15)]
    padded = list(originals)
    i = 0
    while count_words("".join(padded)) < 10_000:
        chars = list(originals[i % 15])
        for j in range(rng.randrange(20), len(chars) - 1, 20):  # swap a 2-character word
            chars[j : j + 2] = rng.choices(CJK_POOL, k=2)
        padded.append("".join(chars))
        i += 1
    padded_doc = "\n\n".join(padded)
    assert sum(count_words(p) for p in originals) < 0.35 * count_words(padded_doc)
    assert repetition_penalty(padded_doc) > 0.5


# ---- combined scores ---------------------------------------------------------------------


def test_format_with_repetition():
    assert format_with_repetition(1.0, 0.0) == 1.0
    assert format_with_repetition(1.0, 0.25) == 0.75
    assert format_with_repetition(0.0, 0.0) == 0.0


def test_score_completion_with_target():
    text = "<think>plan</think>\n<answer>one two three four five six seven eight nine ten"
    s = score_completion(text, WordRange(20, 30))
    assert s == Scores(length=0.5, format=1.0, repetition=0.0, total=0.75)


def test_score_completion_without_target_omits_length():
    s = score_completion("<think>plan</think><answer>a b c d e\n\na b c d e", None)
    assert s == Scores(length=None, format=1.0, repetition=0.5, total=0.5)
    assert s.format_with_repetition == 0.5


def test_score_completion_padding_costs_format():
    # answer: 10 words in [10, 10] -> length 1; half repeated -> format 1 * (1 - 0.5)
    s = score_completion(
        "<think>plan</think><answer>a b c d e\n\na b c d e</answer>", WordRange(10, 10)
    )
    assert s == Scores(length=1.0, format=1.0, repetition=0.5, total=0.75)


def test_score_completion_malformed():
    # no tags: the whole text is the answer (5 words, on target) but format is 0
    s = score_completion("a b c d e", WordRange(5, 5))
    assert s == Scores(length=1.0, format=0.0, repetition=0.0, total=0.5)


def test_score_completion_only_counts_the_answer():
    # 4 thinking words do not count: answer has 2 words, target [4, 4] -> 0.5
    s = score_completion("<think>one two three four</think><answer>five six", WordRange(4, 4))
    assert s.length == 0.5


def test_scores_are_frozen():
    s = Scores(length=None, format=1.0, repetition=0.0, total=1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.total = 0.0  # type: ignore[misc]


def _pieces(rng: random.Random) -> list[str]:
    """A text in random pieces: English, Chinese, Greek and Russian paragraphs, some repeated,
    breaks of every form, cut anywhere (inside a word, a break, a final sigma)."""
    paragraphs = [
        "The heat island effect raises night temperatures in dense districts.",
        "Trees and water cool a street by several degrees in the afternoon.",
        "城市热岛效应使夜间气温升高，密集街区尤其明显，绿地可以降低温度。",
        "ΟΔΟΣ ΚΑΙ ΠΟΛΙΣ: Η ΘΕΡΜΟΤΗΤΑ ΤΗΣ ΠΟΛΗΣ ΑΥΞΑΝΕΤΑΙ ΤΗ ΝΥΧΤΑ.",
        "Городской остров тепла повышает ночную температуру в плотных кварталах.",
        "| Year | Mean | Peak |\n|---|---|---|\n| 2020 | 21.4 | 38.0 |",
    ]
    breaks = ["\n\n", "\n \n", "\n\n\n", "\n", " "]
    text = "".join(rng.choice(paragraphs) + rng.choice(breaks) for _ in range(rng.randint(1, 14)))
    cuts = sorted(rng.sample(range(len(text) + 1), k=min(len(text) + 1, rng.randint(0, 6))))
    return [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]


@pytest.mark.parametrize("seed", range(60))
def test_running_repetition_equals_the_function_at_every_step(seed):
    rng = random.Random(seed)
    running, text = Running(), ""
    for piece in _pieces(rng):
        more = _pieces(rng)[0]
        assert running.penalty(more) == pytest.approx(repetition_penalty(text + more), abs=1e-12)
        running.extend(piece)
        text += piece
        assert running.text == text
        assert running.penalty() == pytest.approx(repetition_penalty(text), abs=1e-12)


def test_running_repetition_reads_each_paragraph_once():
    """A document grown section by section costs about one reading in all, not one per
    section (the O(n^2) the sections' checks had)."""
    import time

    def section(k: int) -> str:
        paragraphs = (" ".join(f"w{k}x{p}y{i}" for i in range(60)) for p in range(40))
        return f"\n\n## Part {k}\n\n" + "\n\n".join(paragraphs)

    sections = [section(k) for k in range(12)]
    start = time.process_time()
    repetition_penalty("".join(sections))
    once = time.process_time() - start
    running = Running()
    start = time.process_time()
    for section in sections:
        running.penalty(section)
        running.extend(section)
    grown = time.process_time() - start
    assert grown < 4 * once + 0.05  # re-reading the whole text each time would be about 6x
