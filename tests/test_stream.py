"""Tests for the incremental think/answer parser (`longwrite.generate.parser`)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from longwrite.generate.parser import (
    PREAMBLE,
    AnswerDelta,
    Done,
    Event,
    ThinkAnswerParser,
    ThinkDelta,
    parse_transcript,
    split_think_answer,
)

# --------------------------------------------------------------------------------------------
# Helpers


def feed_all(
    deltas: list[str], finish_reason: str | None = "stop"
) -> tuple[ThinkAnswerParser, list[Event]]:
    """Feed `deltas` then close; return the parser and every event, checking the invariants."""
    parser = ThinkAnswerParser()
    events: list[Event] = []
    for delta in deltas:
        got = parser.feed(delta)
        assert not any(isinstance(e, Done) for e in got)
        # merged: no two consecutive events of one kind within one feed
        assert all(type(a) is not type(b) for a, b in zip(got, got[1:], strict=False))
        events += got
    closing = parser.close(finish_reason)
    assert closing[-1] == Done(finish_reason)
    assert not any(isinstance(e, Done) for e in closing[:-1])
    events += closing
    for e in events[:-1]:
        assert isinstance(e, ThinkDelta | AnswerDelta)
        assert e.text != ""
    thinking = "".join(e.text for e in events if isinstance(e, ThinkDelta))
    answer = "".join(e.text for e in events if isinstance(e, AnswerDelta))
    assert (thinking, answer) == (parser.thinking, parser.answer)
    return parser, events


def cut(text: str, points: list[int]) -> list[str]:
    """Cut `text` at the given points (any order, duplicates give empty deltas)."""
    bounds = [0, *sorted(points), len(text)]
    return [text[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


def reference_split(text: str) -> tuple[str, str]:
    """The rules written out once more, non-incrementally, as an independent oracle."""

    def answer_part(rest: str) -> str:
        rest = rest.lstrip()
        end = rest.find("</answer>")
        return rest if end == -1 else rest[:end]

    def structural_close(after: str) -> bool:
        stripped = after.lstrip()
        if "\n" in after[: len(after) - len(stripped)]:
            return True
        # at the end of the output, a possible tag's beginning counts as the tag
        return any(t.startswith(stripped) or stripped.startswith(t) for t in TAGS_AFTER_CLOSE)

    def thinking_part(body: str, line_start: bool) -> tuple[str, str]:
        body = body.lstrip()
        for k in range(len(body)):
            if body.startswith("<answer>", k):
                line = body[:k].rsplit("\n", 1)
                if not line[-1].strip(" \t") and (len(line) == 2 or line_start):
                    return body[:k], answer_part(body[k + len("<answer>") :])
            if body.startswith("</think>", k) and structural_close(body[k + len("</think>") :]):
                rest = body[k + len("</think>") :].lstrip()
                if rest.startswith("<think>"):
                    more, answer = thinking_part(rest[len("<think>") :], True)
                    return body[:k] + "\n\n" + more, answer
                if rest.startswith("<answer>"):
                    rest = rest[len("<answer>") :]
                return body[:k], answer_part(rest)
        return body, ""

    s = text.lstrip()
    starts = [(s.find(t), t) for t in ("<think>", "<answer>") if -1 < s.find(t) <= PREAMBLE]
    if not starts:
        return "", answer_part(s)
    at, tag = min(starts)
    if tag == "<answer>":
        return s[:at], answer_part(s[at + len(tag) :])
    thinking, answer = thinking_part(s[at + len(tag) :], True)
    return s[:at] + thinking, answer


TAGS_AFTER_CLOSE = ("<answer>", "<think>")


# --------------------------------------------------------------------------------------------
# Hand-written cases: transcript -> (thinking, answer)

CASES: list[tuple[str, tuple[str, str]]] = [
    # the normal shape; </answer> is a stop string, so it is missing
    (
        "<think>Plan: three parts.</think>\n<answer>\n# Title\n\nBody text.",
        ("Plan: three parts.", "# Title\n\nBody text."),
    ),
    # </answer> present, junk after it is dropped
    (
        "<think>plan</think> <answer>the doc</answer>\n\nP.S. junk <think>x</think>",
        ("plan", "the doc"),
    ),
    # no tags at all: everything is answer, leading whitespace dropped
    ("\n\n  Just a document.\nSecond line.  ", ("", "Just a document.\nSecond line.  ")),
    # <answer> without <think>
    ("<answer>\n\nOnly an answer.", ("", "Only an answer.")),
    # <think> and no </think>: all thinking, empty answer
    ("<think>\nstill planning, cut off by length", ("still planning, cut off by length", "")),
    # <think> then <answer> without </think>: only an <answer> that begins a line opens it
    ("<think>plan<answer>doc", ("plan<answer>doc", "")),
    ("<think>plan \n<answer>\n doc", ("plan \n", "doc")),
    ("<think><answer>doc", ("", "doc")),
    # the plan quotes the tags (the template names them): they stay thinking
    (
        "<think>The essay goes inside <answer> tags, after </think>. Then:\n"
        "1. intro </think> <answer>\n# Essay\n\nText.",
        (
            "The essay goes inside <answer> tags, after </think>. Then:\n1. intro ",
            "# Essay\n\nText.",
        ),
    ),
    (
        "<think>Wrap it in <think> </think> and <answer> </answer> tags.</think>\n<answer>Doc",
        ("Wrap it in <think> </think> and <answer> </answer> tags.", "Doc"),
    ),
    # a </think> that ends its line is structural even without <answer>
    ("<think>plan</think>\nDoc", ("plan", "Doc")),
    # text before <think> is a preamble, not the document
    ("Sure. <think>plan</think><answer>Doc", ("Sure. plan", "Doc")),
    ("Sure! Here it is. <answer>Doc", ("Sure! Here it is. ", "Doc")),
    ("x" * PREAMBLE + "<think>p</think><answer>d", ("x" * PREAMBLE + "p", "d")),
    ("x" * (PREAMBLE + 1) + "<think>p", ("", "x" * (PREAMBLE + 1) + "<think>p")),
    # two thinking blocks: both are thinking
    ("<think>a</think><think>b</think><answer>D", ("a\n\nb", "D")),
    # leading whitespace and newlines everywhere; trailing whitespace in thinking is kept
    (" \n\t<think>\n\n  plan\n\n</think>\n\n  <answer>\n\n  # T\n", ("plan\n\n", "# T\n")),
    # after </think> without <answer>: the rest is answer
    ("<think>p</think>\n  doc text <answer> inline", ("p", "doc text <answer> inline")),
    # empty segments
    ("<think></think><answer></answer>", ("", "")),
    ("<think>   </think>   ", ("", "")),
    ("", ("", "")),
    ("   \n ", ("", "")),
    # Chinese text
    (
        "<think>先规划三章，每章三千字。</think>\n<answer>\n第一章 开始\n\n正文。",
        ("先规划三章，每章三千字。", "第一章 开始\n\n正文。"),
    ),
    # content with '<' and near-tags inside thinking
    (
        "<think>if a < b and a<b, <thinking> <answers> </thin k> <think></think><answer>x",
        ("if a < b and a<b, <thinking> <answers> </thin k> <think>", "x"),
    ),
    # content with near-tags inside the answer
    (
        "<think>p</think><answer>a<b </answ </think <answers> <think> </think> <answer> end",
        ("p", "a<b </answ </think <answers> <think> </think> <answer> end"),
    ),
    # near-tags at the start make the output untagged answer
    ("<thinking>hi</thinking>", ("", "<thinking>hi</thinking>")),
    ("<answers> list", ("", "<answers> list")),
    ("<thin", ("", "<thin")),
    ("  <", ("", "<")),
    ("a < b", ("", "a < b")),
    ("</think>doc", ("", "</think>doc")),
    # untagged answer still stops at </answer>
    ("doc</answer>junk", ("", "doc")),
    # after </think> on its line: something that looks like <answer> but is not (quoted)
    ("<think>p</think> <answers>x", ("p</think> <answers>x", "")),
    ("<think>p</think>\n<answers>x", ("p", "<answers>x")),
    ("<think>p</think></answer>gone", ("p</think></answer>gone", "")),
    # a dangling partial tag at the very end is content
    ("<think>p</think><answer>text </ans", ("p", "text </ans")),
    ("<think>plan </thi", ("plan </thi", "")),
    ("<think>p</think> <ans", ("p", "<ans")),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_split_think_answer(text: str, expected: tuple[str, str]) -> None:
    assert split_think_answer(text) == expected


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_reference_agrees_with_cases(text: str, expected: tuple[str, str]) -> None:
    # keeps the oracle honest: it is used below for random transcripts
    assert reference_split(text) == expected


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_one_char_deltas(text: str, expected: tuple[str, str]) -> None:
    parser, _ = feed_all(list(text))
    assert (parser.thinking, parser.answer) == expected


# --------------------------------------------------------------------------------------------
# Event-level behaviour


def test_events_are_prompt_and_tags_split_across_deltas() -> None:
    p = ThinkAnswerParser()
    assert p.phase == "start"
    assert p.feed("\n ") == []
    assert p.feed("<thi") == []
    assert p.phase == "start"
    assert p.feed("nk>\nplan") == [ThinkDelta("plan")]
    assert p.phase == "thinking"
    assert p.feed(" a<b") == [ThinkDelta(" a<b")]
    assert p.feed(" </th") == [ThinkDelta(" ")]  # "</th" is held back
    assert p.feed("ink>\n<ans") == []
    assert p.phase == "answer"
    assert p.feed("wer>\n# Title") == [AnswerDelta("# Title")]
    assert p.feed("\nbody <") == [AnswerDelta("\nbody ")]
    assert p.feed("b>") == [AnswerDelta("<b>")]  # "<b" was not a tag after all
    assert p.feed("</answer") == []
    assert p.feed(">junk") == []
    assert p.phase == "after"
    assert p.feed("more junk") == []
    assert p.close("stop") == [Done("stop")]
    assert p.thinking == "plan a<b "
    assert p.answer == "# Title\nbody <b>"


def test_one_feed_with_both_segments_gives_one_event_each() -> None:
    p = ThinkAnswerParser()
    events = p.feed("<think>a <b c</think> <answer> d < e")
    assert events == [ThinkDelta("a <b c"), AnswerDelta("d < e")]


def test_untagged_output_is_emitted_once_the_preamble_window_has_passed() -> None:
    p = ThinkAnswerParser()
    assert p.feed("  Hello") == []  # "Hello <think>" would still be a preamble
    assert p.phase == "start"
    rest = "x" * (PREAMBLE + len("<answer>"))
    assert p.feed(rest) == [AnswerDelta("Hello" + rest)]
    assert p.phase == "answer"
    assert p.feed(" <think>") == [AnswerDelta(" <think>")]


def test_preamble_then_think_streams_the_plan_as_thinking() -> None:
    p = ThinkAnswerParser()
    events = p.feed("Sure. <think>plan a, then b") + p.feed("</think>") + p.feed(" <answer>Doc")
    assert events == [ThinkDelta("Sure. plan a, then b"), AnswerDelta("Doc")]
    assert p.shape.preamble and not p.shape.well_formed


def test_quoted_close_tag_is_held_only_until_the_next_character() -> None:
    p = ThinkAnswerParser()
    assert p.feed("<think>then </think>") == [ThinkDelta("then ")]
    assert p.feed("  ") == []  # could still be `</think> <answer>`
    assert p.feed("and more") == [ThinkDelta("</think>  and more")]
    assert p.phase == "thinking"
    assert p.feed("</think>\n") == []
    assert p.phase == "answer"  # a line break ended it
    assert p.feed("Doc") == [AnswerDelta("Doc")]
    p.close("stop")
    assert (p.thinking, p.answer) == ("then </think>  and more", "Doc")
    assert p.shape.answer_opened == "untagged"


def test_shape_of_the_normal_transcript() -> None:
    p = parse_transcript("<think>plan with <answer> quoted</think>\n<answer>Doc</answer>\n")
    assert p.shape.well_formed
    assert p.shape.think_closed and p.shape.answer_closed and not p.shape.trailing
    assert parse_transcript("<think>p</think><answer>Doc</answer> P.S.").shape.trailing


def test_near_tag_is_released_as_soon_as_it_cannot_be_a_tag() -> None:
    p = ThinkAnswerParser()
    p.feed("<think>x")
    assert p.feed(" <think") == [ThinkDelta(" <think")]  # <think> cannot come next here
    assert p.feed("<answe") == []
    assert p.feed("rs>") == [ThinkDelta("<answers>")]
    assert p.thinking == "x <think<answers>"


def test_close_flushes_dangling_partial_tag_as_answer() -> None:
    p = ThinkAnswerParser()
    p.feed("<think>plan</think><answer>some text </ans")
    assert p.answer == "some text "
    assert p.close("length") == [AnswerDelta("</ans"), Done("length")]
    assert p.answer == "some text </ans"
    assert p.thinking == "plan"


def test_close_flushes_dangling_partial_tag_as_thinking() -> None:
    p = ThinkAnswerParser()
    assert p.feed("<think>plan </think") == [ThinkDelta("plan ")]
    assert p.close("length") == [ThinkDelta("</think"), Done("length")]
    assert (p.thinking, p.answer) == ("plan </think", "")
    assert p.phase == "thinking"


def test_close_in_start_state_makes_held_text_answer() -> None:
    p = ThinkAnswerParser()
    assert p.feed(" \n<ans") == []
    assert p.close(None) == [AnswerDelta("<ans"), Done(None)]
    assert (p.thinking, p.answer) == ("", "<ans")
    p = ThinkAnswerParser()
    assert p.feed("A short untagged reply.") == []
    assert p.close("stop") == [AnswerDelta("A short untagged reply."), Done("stop")]


def test_close_after_answer_end_drops_nothing_and_emits_done_only() -> None:
    p = ThinkAnswerParser()
    p.feed("<answer>doc</answer> </ans")
    assert p.close("stop") == [Done("stop")]
    assert p.answer == "doc"


def test_close_empty_stream() -> None:
    p = ThinkAnswerParser()
    assert p.close("cancelled") == [Done("cancelled")]
    assert (p.thinking, p.answer, p.phase) == ("", "", "start")


def test_feed_after_close_raises() -> None:
    p = ThinkAnswerParser()
    p.feed("<think>a")
    p.close("stop")
    with pytest.raises(ValueError):
        p.feed("more")
    with pytest.raises(ValueError):
        p.close("stop")


def test_empty_deltas_emit_nothing() -> None:
    p = ThinkAnswerParser()
    assert p.feed("") == []
    p.feed("<think>a")
    assert p.feed("") == []
    assert p.thinking == "a"


def test_properties_are_cached_and_stay_correct() -> None:
    p = ThinkAnswerParser()
    p.feed("<answer>ab")
    assert p.answer == "ab"
    assert p.answer is p.answer  # joined once, not on every access
    p.feed("cd")
    assert p.answer == "abcd"


def test_held_back_text_stays_tiny_on_a_long_stream() -> None:
    # Not timed: checks the structural reason feed() is O(len(delta)) -- everything except a
    # short possible-tag tail is emitted immediately, so no feed re-reads earlier text.
    # (Informally: 65,000 chars as 2-char deltas take ~0.05 s.)
    text = "<think>" + "plan a<b </thin " * 500 + "</think><answer>" + "word </answ < " * 2000
    p = ThinkAnswerParser()
    emitted = 0
    for i in range(0, len(text), 2):
        emitted += sum(len(e.text) for e in p.feed(text[i : i + 2]))  # type: ignore[union-attr]
        # fed but not emitted = the tags consumed (at most 23 chars) + a held tail (< 9 chars)
        not_emitted = len(text[: i + 2]) - emitted
        assert not_emitted < len("<think>") + len("</think><answer>") + len("</answer>")
    p.close(None)
    assert (p.thinking, p.answer) == reference_split(text)


# --------------------------------------------------------------------------------------------
# Cut-independence


TRANSCRIPTS = [text for text, _ in CASES] + [
    "<think>a</think> <answer>b</answer> c",
    "<think><think></think></think><answer><answer></answer></answer>",
    "<<think>>x",
    "<think><<answer>>y",
    "<think>x</think></think><answer>y",
    "<think>x<</think>y",
    " \n<think>\n计划：\n1. 开头\n2. 结尾\n</think>\n<answer>\n# 标题\n\n正文 a<b </answer",
]


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_any_cutting_gives_the_one_shot_result(data: st.DataObject) -> None:
    text = data.draw(st.sampled_from(TRANSCRIPTS))
    points = data.draw(st.lists(st.integers(0, len(text)), max_size=len(text) + 5))
    parser, _ = feed_all(cut(text, points))
    assert (parser.thinking, parser.answer) == split_think_answer(text)


SHORT = " <think>p <t</think> <answer>\nA<B</ans"  # 39 characters, every state and tag


def test_short_transcript_every_single_and_pair_of_cut_points() -> None:
    expected = ("p <t", "A<B</ans")
    assert split_think_answer(SHORT) == expected
    n = len(SHORT)
    for i in range(n + 1):
        parser, _ = feed_all(cut(SHORT, [i]))
        assert (parser.thinking, parser.answer) == expected, i
        for j in range(i, n + 1):
            parser, _ = feed_all(cut(SHORT, [i, j]))
            assert (parser.thinking, parser.answer) == expected, (i, j)


FRAGMENTS = [
    "<",
    "/",
    ">",
    "think",
    "answer",
    "<think>",
    "</think>",
    "<answer>",
    "</answer>",
    "</",
    "<thi",
    "</ans",
    " ",
    "\n",
    "a",
    "b",
    "中",
]

random_transcripts = st.lists(st.sampled_from(FRAGMENTS), max_size=30).map("".join)


@settings(max_examples=600, deadline=None)
@given(random_transcripts, st.data())
def test_random_transcripts_are_cut_independent(text: str, data: st.DataObject) -> None:
    one_shot, _ = feed_all([text])
    points = data.draw(st.lists(st.integers(0, len(text)), max_size=len(text) + 5))
    parser, _ = feed_all(cut(text, points))
    assert (parser.thinking, parser.answer) == (one_shot.thinking, one_shot.answer)
    assert (parser.thinking, parser.answer) == reference_split(text)


@settings(max_examples=300, deadline=None)
@given(random_transcripts, st.data())
def test_emitted_text_is_never_retracted(text: str, data: st.DataObject) -> None:
    # After any prefix, what was emitted is a prefix of the final result, and what is still
    # undecided (held back) is short.
    final = reference_split(text)
    points = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=10)))
    parser = ThinkAnswerParser()
    fed = 0
    for delta in cut(text, points):
        parser.feed(delta)
        fed += len(delta)
        assert final[0].startswith(parser.thinking)
        assert final[1].startswith(parser.answer)
        flushed = reference_split(text[:fed])
        assert flushed[0].startswith(parser.thinking)
        assert flushed[1].startswith(parser.answer)
        pending = len(flushed[0]) + len(flushed[1]) - len(parser.thinking) - len(parser.answer)
        assert pending >= 0
        if parser.phase == "start":  # a preamble may still end in a tag
            assert pending < PREAMBLE + len("<answer>")
        else:  # a tag's beginning, or a `</think>` and the blanks after it
            assert len(text[fed - pending : fed].split()) <= 2
            assert len("".join(text[fed - pending : fed].split())) < 2 * len("</answer>")
