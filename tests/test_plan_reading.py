"""The outline read from plans as reasoning models write them (issue 21).

`tests/data/plans/` holds 29 plans (19 English, 10 Chinese) written the way reasoning models
write them: self-talk and questions, a first outline revised into a final one, sums checked,
character lists, sources, requirements and style notes, bold bullets, roman numerals, `Part
One:`, `Chapter 1: ... — ...`, nested sub-points, a table of budgets, counts on the next line,
ranges, `(~1k)`, 一、/第一章/（一）/1、 with 约/左右/上下, and plans that want no outline. They
were written apart from the reader, with the expected outline decided by hand
(`tests/data/plans/README.md` gives the rules); the reader must give exactly that.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from longwrite.generate.plan import read_outline, user_outline
from longwrite.generate.planning import implausible

PLANS = Path(__file__).parent / "data" / "plans"
EXPECTED = json.loads((PLANS / "expected.json").read_text(encoding="utf-8"))


def test_the_set_is_large_and_in_both_languages():
    languages = [e["language"] for e in EXPECTED.values()]
    assert len(EXPECTED) >= 20 and languages.count("zh") >= 5 and languages.count("en") >= 10
    assert sum(not e["parts"] for e in EXPECTED.values()) >= 2  # plans that want no outline


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_outline_read_is_the_one_a_careful_reader_sees(name):
    text = (PLANS / name).read_text(encoding="utf-8")
    want = [(p["title"], p["words"]) for p in EXPECTED[name]["parts"]]
    assert read_outline(text) == want
    assert read_outline(text.replace("\n", "\r\n")) == want  # as Windows tools save it


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_read_outline_is_judged_plausible_and_an_empty_one_is_not(name):
    entry = EXPECTED[name]
    parts = [(p["title"], p["words"], "") for p in entry["parts"]]
    reason = implausible(parts, entry["target"], 2, None)
    assert (reason is None) == bool(parts), reason


def test_implausible_outlines_say_why():
    target = 20_000
    assert implausible([("Only part", 20_000, "")], target, 2, None) == "it has one part"
    many = [(f"Part {k}", None, "") for k in range(60)]
    assert implausible(many, target, 4, None) == "it has 60 parts"
    wordy = [("A", None, ""), (" ".join(["word"] * 15), None, "")]
    assert "a heading of 15 words" in implausible(wordy, target, 2, None)
    small = [("A", 500, ""), ("B", 700, "")]
    assert implausible(small, target, 2, None) == "its counts add up to 1,200 words of 20,000"
    assert implausible([("A", 9000, ""), ("B", 1000, "")], 10_000, 2, cap=6000) == (
        "a part of 9,000 words is longer than one pass holds (6,000)"
    )


ALPHABET = ["\r", "\n", "\r\n", "a", "1. ", "## ", "# ", "- ", "  ", "\u2028", "\x0b",
            "\x0c", "\x85", "**", "一、", "|", " ", "\t", "\x00", "(800 words)", "约3000字",
            "```"]  # fmt: skip


@given(st.lists(st.sampled_from(ALPHABET), max_size=80).map("".join))
@settings(max_examples=300, deadline=None)
def test_any_text_is_read_without_an_error(text):
    """The tiny model's plans are noise (lone CRs, NULs, unicode line breaks): reading them
    must give an outline or none, never an exception (a lone CR once did: markdown-it counts
    it as a line break)."""
    for part in read_outline(text):
        assert part[0]
    user_outline(text, 1000)
    user_outline(text, None)
