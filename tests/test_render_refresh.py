"""How often the live area is redrawn, at the pace a model really writes (100 tokens/s).

A redraw costs CPU every time (render the unfinished Markdown block, re-emit the whole live
area), and a reader sees no more than a few per second, so the renderer redraws the live
block at most 4 times a second and the status line alone at most twice, only when something
visible changed, and never re-renders a live block whose text did not change. The clock is
simulated: each test streams many seconds of tokens in a few milliseconds of real time.
"""

from __future__ import annotations

import io
import re
import sys
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pty_run import run_on_pty, terminal_env
from scripted import random_cut
from test_render import _LINES, one_shot, screen

import longwrite.display.live as live
import longwrite.display.renderer as render
from longwrite.display.renderer import Renderer, RenderOptions
from longwrite.generate.parser import AnswerDelta, Done, ThinkDelta

PACE = 100  # tokens per second
_ERASE = re.compile(r"\r\x1b\[2K(?:\x1b\[1A\x1b\[2K)*")


class ManualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def redraws(out: str) -> int:
    """How many times the live area was erased to be drawn again."""
    return len(_ERASE.findall(out))


def renderer(clock: ManualClock, out: io.StringIO, err: io.StringIO, **options) -> Renderer:
    return Renderer(
        RenderOptions(**options),
        stdout=out,
        stderr=err,
        stdout_tty=True,
        stderr_tty=True,
        width=80,
        height=20,
        clock=clock,
    )


def paragraph(n_words: int) -> list[str]:
    """One long paragraph of numbered words, one word (with its space) per token."""
    return [f"w{i:04d} " for i in range(n_words)]


def test_live_block_redrawn_at_most_4_times_a_second_and_stays_current():
    clock, out, err = ManualClock(), io.StringIO(), io.StringIO()
    tokens = paragraph(1000)  # 10 s, and no block ever finishes
    with renderer(clock, out, err, target_words=2000) as r:
        for i, token in enumerate(tokens):
            clock.now += 1 / PACE
            r.handle(AnswerDelta(token))
            r.add_tokens(1)
            if i % 97 == 96:  # what is on screen now includes what came 0.3 s ago
                assert f"w{i - 30:04d}" in "\n".join(screen(out.getvalue())), i
        drawn = redraws(out.getvalue())
        r.handle(Done("stop"))
    assert 10 <= drawn <= 10 * 4 + 2
    assert screen(out.getvalue()) == one_shot("".join(tokens))


def test_status_alone_redrawn_at_most_twice_a_second():
    clock, out, err = ManualClock(), io.StringIO(), io.StringIO()
    with renderer(clock, out, err) as r:  # thinking hidden: only the status line is live
        for _ in range(1000):
            clock.now += 1 / PACE
            r.handle(ThinkDelta("plan "))
            r.add_tokens(1)
        drawn = redraws(out.getvalue())
        shown = screen(out.getvalue())[-1]
        r.handle(Done("stop"))
    assert 5 <= drawn <= 10 * 2 + 2
    tokens = int(re.fullmatch(r"thinking · ([\d,]+) tok · .*", shown)[1].replace(",", ""))
    assert 1000 - PACE // 2 <= tokens <= 1000  # at most half a second behind


def test_tokens_without_text_redraw_the_status_not_the_markdown(monkeypatch):
    """llama.cpp sends chunks with empty text: the token count moves, the block does not."""
    made: list[str] = []

    class CountingMarkdown(render.Markdown):
        def __init__(self, markup: str, *args, **kwargs) -> None:
            made.append(markup)
            super().__init__(markup, *args, **kwargs)

    for module in (live, render):  # the live block, and printed blocks
        monkeypatch.setattr(module, "Markdown", CountingMarkdown)
    clock, out, err = ManualClock(), io.StringIO(), io.StringIO()
    stall_s = 3
    with renderer(clock, out, err, target_words=500) as r:
        for token in paragraph(50):
            clock.now += 1 / PACE
            r.handle(AnswerDelta(token))
            r.add_tokens(1)
        clock.now += 1.0
        r.add_tokens(0)  # the last text is drawn
        before, drawn = len(made), redraws(out.getvalue())
        for _ in range(stall_s * PACE):
            clock.now += 1 / PACE
            r.handle(AnswerDelta(""))
            r.add_tokens(1)
        assert redraws(out.getvalue()) - drawn >= stall_s  # the status line moved on
        assert len(made) == before  # ... but the unchanged block was not rendered again
        # 4.5 s in: the status drawn at most half a second ago says 0:04 (or 0:03)
        assert re.search(r" · 0:0[34]$", screen(out.getvalue())[-1])
        r.handle(Done("stop"))
    assert screen(out.getvalue()) == one_shot("".join(paragraph(50)))


ENDED = [  # (a block, what follows it, the start of the next line): the block is over
    ("Ends here END1.", "\n\n", "Next"),  # nothing continues a paragraph after a blank line
    ("## Heading END1", "\n", "Next"),  # nor a heading
    ("Title END1\n===", "\n", "Next"),
    ("- item\n- item END1", "\n\n", "Next"),  # nor a list, unless indented or an item
    ("> quote END1", "\n\n", "Next"),
]
GOES_ON = [
    ("Ends here END1.", "\n", "lazy"),  # no blank line: the paragraph goes on
    ("- item END1", "\n", "lazy"),
    ("- item END1", "\n\n", "- another item"),
    ("1. item END1", "\n\n", "2. another item"),
    ("- item END1", "\n\n", "  more of the item"),
    ("> quote END1", "\n", "lazy"),
    ("Title END1", "\n", "==="),  # a setext heading
]


@pytest.mark.parametrize(("block", "gap", "start"), ENDED + GOES_ON)
def test_a_block_leaves_the_live_area_as_soon_as_the_next_line_ends_it(block, gap, start):
    """Models write a paragraph per line: the previous block is printed once the next line
    shows it is over, so the live area (redrawn 4 times a second) holds one block, not two."""
    clock, out, err = ManualClock(), io.StringIO(), io.StringIO()
    tokens = [block, gap, start + " "] + paragraph(200)  # 2 s of the next line
    with renderer(clock, out, err) as r:
        for token in tokens:
            clock.now += 1 / PACE
            r.handle(AnswerDelta(token))
            r.add_tokens(1)
        shown = out.getvalue().count("END1")
        r.handle(AnswerDelta("\n"))
        r.handle(Done("stop"))
    if (block, gap, start) in ENDED:
        assert shown == 1  # printed once, never redrawn
    else:
        assert shown >= 5  # still live: the next line may change it
    assert screen(out.getvalue()) == one_shot("".join(tokens) + "\n")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(_LINES + ["Next", "2. item", "  - sub", "> more"]), max_size=20))
def test_printing_blocks_early_leaves_what_one_markdown_print_leaves(lines):
    doc = "\n".join(lines) + "\n"
    clock, out, err = ManualClock(), io.StringIO(), io.StringIO()
    with renderer(clock, out, err) as r:
        for delta in random_cut(doc, len(doc)):
            clock.now += 1 / PACE
            r.handle(AnswerDelta(delta))
    assert screen(out.getvalue()) == one_shot(doc)


@pytest.mark.parametrize("mode", ["raw answer", "thinking shown"])
def test_short_lines_are_printed_together_at_most_4_times_a_second(mode):
    """Plain lines above the live area (raw text, or the thinking) are printed at redraws,
    not one print (and redraw) per line: 100 one-token lines a second cost 4 redraws."""
    clock, out, err = ManualClock(), io.StringIO(), io.StringIO()
    lines = [f"L{i:04d}\n" if i % 7 else "\n" for i in range(1000)]  # 10 s, blank lines too
    raw = mode == "raw answer"
    with renderer(clock, out, err, **({"answer": "raw"} if raw else {"thinking": "show"})) as r:
        for line in lines:
            clock.now += 1 / PACE
            r.handle(AnswerDelta(line) if raw else ThinkDelta(line))
            r.add_tokens(1)
        drawn = redraws(out.getvalue())
        r.handle(Done("stop"))
    assert 10 <= drawn <= 10 * 4 + 2
    assert screen(out.getvalue())[:1000] == [line.strip() for line in lines]


@pytest.mark.slow
def test_the_cli_on_a_terminal_at_the_real_pace(tmp_path):
    """`longwrite` on a 100x40 pseudo-terminal against a scripted server sending one token
    every 10 ms: the screen ends as one Markdown print of the answer plus the final status,
    and the live area was redrawn at most 4 times a second."""
    from sse_server import Script, ScriptedServer
    from test_render import words_doc

    from longwrite.generate.job import WriteOptions, resolve_request
    from longwrite.io.counting import count_words

    doc, _ = words_doc(150, seed=4)
    prompt = "Write a short note about lanterns."
    script = Script(
        text="<think>A plan.</think>\n<answer>\n" + doc,
        prompt=resolve_request(WriteOptions(prompt=prompt)).prompt,
        pieces=(4,),
        delay=1 / PACE,
    )
    with ScriptedServer(script) as server:
        started = time.monotonic()
        code, out = run_on_pty([sys.executable, "-m", "longwrite", prompt, "--server", server.url],
                               terminal_env())  # fmt: skip
        assert code == 0
        seconds = time.monotonic() - started
    shown = screen(out)
    assert shown[:-1] == one_shot(doc, width=100)
    assert shown[-1].startswith(f"done · {count_words(doc)} words · ")
    assert server.pieces_sent * 0.01 > 2  # a stream of more than two seconds...
    live = out[max(out.rfind("loading"), 0) :]  # the renderer's, after any loading spinner
    assert 4 <= redraws(live) <= seconds * 4 + 4  # ... redrawn at most 4 times a second
