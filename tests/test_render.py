"""Tests for the streaming display (`longwrite.display.renderer`).

Terminal output is checked through a tiny terminal emulator (`screen`): it applies the cursor
and erase codes rich's Live area uses, so what it returns is what stays in the scrollback after
the run. Incremental rendering must leave exactly what one `console.print(Markdown(doc))`
leaves: every block once, the live area gone.
"""

from __future__ import annotations

import io
import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console
from rich.markdown import Markdown
from scripted import random_cut

from longwrite.display.blocks import split_finished_blocks
from longwrite.display.blocks import top_level_blocks as _blocks
from longwrite.display.live import LiveView as _LiveView
from longwrite.display.renderer import Renderer, RenderOptions
from longwrite.display.status import format_duration, format_status
from longwrite.generate.parser import AnswerDelta, Done, ThinkAnswerParser, ThinkDelta
from longwrite.io.counting import count_words

# --------------------------------------------------------------------------------------------
# Helpers

_TERM = re.compile(
    r"\x1b\[([0-9;?]*)([A-Za-z])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\r|\n|[^\x1b\r\n]+"
)
_SGR = re.compile(r"\x1b\[([0-9;]*)m")


def screen(data: str) -> list[str]:
    """The lines a terminal shows after `data`: handles \\r, \\n, CSI n A/K, ignores SGR and
    cursor show/hide; fails on any other escape code (the renderer must not emit those)."""
    lines, row, col = [""], 0, 0
    for m in _TERM.finditer(data):
        tok = m.group(0)
        if tok == "\n":
            row, col = row + 1, 0
            if row == len(lines):
                lines.append("")
        elif tok == "\r":
            col = 0
        elif m.group(2):
            arg, cmd = m.group(1), m.group(2)
            if cmd == "A":
                row = max(row - int(arg or 1), 0)
            elif cmd == "K":
                assert arg == "2", tok
                lines[row] = ""
            else:
                assert cmd in "mhl", repr(tok)
        elif not tok.startswith("\x1b"):
            line = lines[row].ljust(col)
            lines[row] = line[:col] + tok + line[col + len(tok) :]
            col += len(tok)
    out = [line.rstrip() for line in lines]
    while out and not out[-1]:
        out.pop()
    return out


def max_live_height(data: str) -> int:
    """Tallest live area drawn: rich erases it with CR, 2K, then (1A, 2K) per extra line."""
    runs = re.findall(r"\r\x1b\[2K((?:\x1b\[1A\x1b\[2K)*)", data)
    return max((r.count("\x1b[1A") + 1 for r in runs), default=0)


def one_shot(doc: str, width: int = 80) -> list[str]:
    buf = io.StringIO()
    Console(file=buf, force_terminal=True, width=width).print(Markdown(doc))
    return screen(buf.getvalue())


class Clock:
    """A fake clock that moves on by `step` seconds each time it is read."""

    def __init__(self, step: float = 0.0) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def run(
    events,
    options: RenderOptions | None = None,
    *,
    stdout_tty: bool = True,
    stderr_tty: bool = True,
    height: int | None = None,
    step: float = 0.01,
    tokens_per_event: int = 1,
):
    """Stream `events` through a Renderer on StringIO consoles; return (out, err, sink, r)."""
    out, err, sink = io.StringIO(), io.StringIO(), io.StringIO()
    with Renderer(
        options or RenderOptions(),
        stdout=out,
        stderr=err,
        sink=sink,
        stdout_tty=stdout_tty,
        stderr_tty=stderr_tty,
        width=80,
        height=height,
        clock=Clock(step),
    ) as r:
        for event in events:
            r.handle(event)
            r.add_tokens(tokens_per_event)
    return out.getvalue(), err.getvalue(), sink.getvalue(), r


def answer_events(doc: str, seed: int = 0, finish: str | None = "stop") -> list:
    return [AnswerDelta(d) for d in random_cut(doc, seed)] + [Done(finish)]


DOC = """# Title

First paragraph P001 with *emphasis* and **strong** words.

## Section two

- item one L001
- item two L002

```python
x = 1  # C001
```

---

Second paragraph P002.

> quoted Q001

1. first O001
2. second O002

| col | val |
|-----|-----|
| a   | T01 |

Last paragraph P003."""

MARKERS = ["Title", "P001", "Section two", "L001", "L002", "C001", "P002", "Q001"]
MARKERS += ["O001", "O002", "T01", "P003"]


VOCAB = "alpha beta gamma delta river stone cloud lantern orbit quiet"


def words_doc(n_words: int, seed: int = 3) -> tuple[str, list[str]]:
    """A document of headings, paragraphs and lists; each block carries a unique marker."""
    rng = random.Random(seed)
    vocab = VOCAB.split()
    blocks, markers, words, k = [], [], 0, 0
    while words < n_words:
        k += 1
        marker = f"M{k:04d}"
        kind = k % 5
        if kind == 1:
            block = f"## Heading {marker}"
        elif kind == 3:
            block = "\n".join(f"- {marker}x{j} " + " ".join(rng.choices(vocab, k=6)) for j in "ab")
            markers += [f"{marker}x{j}" for j in "ab"]
        else:
            block = f"{marker} " + " ".join(rng.choices(vocab, k=rng.randint(40, 90))) + "."
        if kind != 3:
            markers.append(marker)
        blocks.append(block)
        words += count_words(block)
    return "\n\n".join(blocks), markers


# --------------------------------------------------------------------------------------------
# split_finished_blocks


def test_split_heading_then_partial_paragraph():
    assert split_finished_blocks("# H\n\npara") == ("", "# H\n\npara")  # one complete line
    assert split_finished_blocks("# H\n\npara\n") == ("# H\n\n", "para\n")
    assert split_finished_blocks("# H\npara\n") == ("# H\n", "para\n")


def test_split_paragraphs():
    assert split_finished_blocks("one\ntwo\n") == ("", "one\ntwo\n")  # still one paragraph
    assert split_finished_blocks("one\n\ntwo\n\nthr") == ("one\n\n", "two\n\nthr")
    assert split_finished_blocks("a\n\nb\n\nc\n") == ("a\n\nb\n\n", "c\n")
    assert split_finished_blocks("") == ("", "")
    assert split_finished_blocks("no newline yet") == ("", "no newline yet")


def test_split_lists():
    assert split_finished_blocks("- a\n- b\n") == ("", "- a\n- b\n")
    assert split_finished_blocks("- a\n\n- b\n") == ("", "- a\n\n- b\n")  # loose list
    assert split_finished_blocks("- a\n- b\n\nText\n") == ("- a\n- b\n\n", "Text\n")
    assert split_finished_blocks("Intro\n- a\n") == ("Intro\n", "- a\n")
    # "Intro\n-" could still become a setext heading: the partial line is not parsed
    assert split_finished_blocks("Intro\n-") == ("", "Intro\n-")


def test_split_code_fences():
    unclosed = "Intro\n\n```py\nx = 1\n\n# not a heading\n\ny = 2\n"
    assert split_finished_blocks(unclosed) == ("Intro\n\n", unclosed[7:])
    closed = "```py\nx = 1\n```\n"
    assert split_finished_blocks(closed) == ("", closed)
    assert split_finished_blocks(closed + "After\n") == (closed, "After\n")
    assert split_finished_blocks(closed + "\n## Next\n") == (closed + "\n", "## Next\n")


def test_split_setext_heading_and_crlf():
    assert split_finished_blocks("Title\n===\nText\n") == ("Title\n===\n", "Text\n")
    assert split_finished_blocks("a\r\n\r\nb\r\n") == ("a\r\n\r\n", "b\r\n")


_LINES = ["# H", "para text", "more", "- item", "1. item", "```", "```py", "> quote", "---"]
_LINES += ["", "", "    code", "| a | b |", "|---|---|", "Title", "===", "<div>", "  indented"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_LINES), max_size=25), st.data())
def test_split_is_a_prefix_that_later_text_never_changes(lines, data):
    doc = "\n".join(lines) + "\n"
    cut = data.draw(st.integers(0, len(doc)))
    finished, rest = split_finished_blocks(doc[:cut])
    assert finished + rest == doc[:cut]
    assert finished == "" or finished.endswith("\n")
    if finished:  # where it cut is a block boundary of the whole document too
        assert finished.count("\n") in {line for line, _ in _blocks(doc)}


# --------------------------------------------------------------------------------------------
# status line


def test_format_status_hand_computed():
    assert format_duration(0) == "0:00"
    assert format_duration(59.99) == "0:59"
    assert format_duration(93) == "1:33"
    assert format_duration(3725) == "1:02:05"
    assert (
        format_status("thinking", elapsed=12.9, tokens=532, tokens_per_s=41.26)
        == "thinking · 532 tok · 41.3 tok/s · 0:12"
    )
    # 1,766 words left at 1,234 / 30 s = 41.13 words/s: 42.9 s
    assert (
        format_status(
            "writing",
            elapsed=27.5,
            words=1234,
            target=3000,
            tokens=1600,
            tokens_per_s=45.2,
            words_per_s=1234 / 30,
        )
        == "writing · 1,234 / 3,000 words · 45.2 tok/s · 0:27 · ETA 0:42"
    )
    assert (
        format_status("writing", elapsed=27.5, words=1234, tokens=9, tokens_per_s=45.2)
        == "writing · 1,234 words · 45.2 tok/s · 0:27"
    )
    # no ETA before the first word, nor once the target is reached
    assert format_status("writing", elapsed=3, target=100) == "writing · 0 / 100 words · 0:03"
    assert (
        format_status("writing", elapsed=3, words=120, target=100, words_per_s=2.0)
        == "writing · 120 / 100 words · 0:03"
    )
    done = dict(elapsed=93.4, words=3012, tokens=4100, tokens_per_s=43.94)
    assert format_status("done", **done) == "done · 3,012 words · 4,100 tok · 43.9 tok/s · 1:33"
    assert format_status("done", finish_reason="stop", **done).endswith("1:33")
    assert format_status("done", finish_reason="length", **done).endswith("1:33 · stopped: length")
    assert format_status("waiting", elapsed=5) == "waiting · 0:05"


class ManualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_status_from_renderer_with_fake_clock():
    clock = ManualClock()
    err = io.StringIO()
    r = Renderer(
        RenderOptions(target_words=100),
        stdout=io.StringIO(),
        stderr=err,
        stdout_tty=False,
        stderr_tty=True,
        width=200,
        clock=clock,
    )
    with r:
        assert r.status_text() == "waiting · 0:00"
        clock.now = 2.0
        r.handle(ThinkDelta("plan"))  # generation starts at t=2
        r.add_tokens(10)
        clock.now = 4.0
        assert r.status_text() == "thinking · 10 tok · 5.0 tok/s · 0:04"  # 10 / (4-2)
        clock.now = 6.0
        r.handle(AnswerDelta("one two three four five "))  # writing starts at t=6
        r.add_tokens(20)
        clock.now = 11.0
        # 30 tok / 9 s = 3.33; 5 words / 5 s = 1 word/s, 95 left: ETA 95 s
        assert r.words == 5
        assert r.status_text() == "writing · 5 / 100 words · 3.3 tok/s · 0:11 · ETA 1:35"
        clock.now = 20.0
        r.handle(Done("length"))
    final = "done · 5 words · 30 tok · 1.7 tok/s · 0:20 · stopped: length"  # 30 / 18 s
    assert screen(err.getvalue()) == [final]


# --------------------------------------------------------------------------------------------
# raw output and the sink


def test_raw_output_is_exactly_the_answer():
    events = [ThinkDelta("plan")] + answer_events(DOC)
    out, err, sink, r = run(events, stdout_tty=False, stderr_tty=False)
    assert out == DOC
    assert sink == DOC
    assert err == ""
    assert r.words == count_words(DOC)


def test_raw_keep_mode_writes_the_think_block():
    events = [ThinkDelta("plan "), ThinkDelta("more\n"), AnswerDelta("# Doc\n"), AnswerDelta("x")]
    out, err, sink, _ = run(
        events + [Done("stop")], RenderOptions(thinking="keep"), stderr_tty=False, stdout_tty=False
    )
    assert out == "<think>\nplan more\n\n</think>\n\n# Doc\nx"
    assert sink == out
    assert "\x1b" not in out + err
    # thinking only, then done: the block is still closed
    out, _, _, _ = run(
        [ThinkDelta("p"), Done("length")],
        RenderOptions(thinking="keep"),
        stdout_tty=False,
        stderr_tty=False,
    )
    assert out == "<think>\np\n</think>\n\n"


def test_answer_raw_on_a_terminal_without_status_has_no_escape_codes():
    events = [ThinkDelta("plan")] + answer_events(DOC)
    out, _, _, _ = run(events, RenderOptions(answer="raw"), stdout_tty=True, stderr_tty=False)
    assert out == DOC


def test_answer_raw_with_status_on_the_same_terminal():
    out, err, _, _ = run(answer_events(DOC, seed=5), RenderOptions(answer="raw"))
    assert screen(out) == DOC.split("\n")  # lines committed above the live area, once each
    assert screen(err)[0].startswith("done · ")


def test_sink_gets_the_raw_document_in_terminal_mode():
    events = [ThinkDelta("the "), ThinkDelta("plan")] + answer_events(DOC)
    _, _, sink, _ = run(events, RenderOptions(thinking="keep"))
    assert sink == "<think>\nthe plan\n</think>\n\n" + DOC
    _, _, sink, _ = run(events, RenderOptions(thinking="show"))
    assert sink == DOC


def test_answer_none_writes_nothing_to_stdout():
    out, _, sink, _ = run(answer_events(DOC), RenderOptions(answer="none"), stdout_tty=False)
    assert out == ""
    assert sink == DOC


# --------------------------------------------------------------------------------------------
# terminal: Markdown, incrementally


def test_terminal_output_equals_one_shot_markdown():
    out, err, _, r = run(answer_events(DOC))
    shown = screen(out)
    assert shown == one_shot(DOC)
    text = "\n".join(shown)
    for marker in MARKERS:
        assert text.count(marker) == 1, marker
    # one token per delta; the final line is drawn at Done, before run() adds Done's token
    n = len(answer_events(DOC)) - 1
    assert len(screen(err)) == 1
    assert screen(err)[0].startswith(f"done · {count_words(DOC)} words · {n} tok · ")


@pytest.mark.parametrize("seed", [1, 2])
def test_3000_word_document_in_tiny_deltas_prints_each_block_once(seed):
    doc, markers = words_doc(3000, seed)
    assert count_words(doc) >= 3000
    parser = ThinkAnswerParser()
    events = []
    for d in random_cut("<think>outline</think>\n<answer>\n" + doc, seed):
        events += parser.feed(d)
    events += parser.close("stop")
    out, _, sink, r = run(events, RenderOptions(target_words=3000), height=30)
    assert sink == doc
    assert r.words == count_words(doc)
    shown = screen(out)
    text = "\n".join(shown)
    for marker in markers:
        assert text.count(marker) == 1, marker
    assert shown == one_shot(doc)
    assert 1 < max_live_height(out) <= 30


def test_live_area_never_taller_than_the_console():
    code = "\n".join(f"line_{i} = {i}  # L{i:03d}" for i in range(150))
    doc = "Intro paragraph.\n\n```python\n" + code + "\n```\n\nAfter the code.\n"
    out, _, _, _ = run(answer_events(doc), height=12, step=0.003)
    assert max_live_height(out) == 11  # cropped: the code block alone is 150 lines
    shown = screen(out)
    assert shown == one_shot(doc)
    text = "\n".join(shown)
    for i in range(150):
        assert text.count(f"L{i:03d}") == 1


def test_live_area_shows_the_end_of_a_tall_block():
    console_out = io.StringIO()
    r = Renderer(
        RenderOptions(target_words=10),
        stdout=console_out,
        stderr=io.StringIO(),
        stdout_tty=True,
        stderr_tty=True,
        width=60,
        height=8,
    )
    with r:
        r.handle(AnswerDelta("```\n" + "\n".join(f"L{i:03d}" for i in range(50)) + "\n"))
        console = r._console
        lines = console.render_lines(_LiveView(r), console.options, pad=False)
        text = ["".join(seg.text for seg in line).rstrip() for line in lines]
        assert len(text) == 7
        assert text[-3:] == [" L049", "", "writing · 0 / 10 words · 0:00"]  # L049 is no word
        assert text[0] == " L045"


def test_unclosed_fence_is_flushed_at_the_end():
    doc = "# Head\n\n```\nunclosed code U01\nmore U02"
    out, _, _, _ = run(answer_events(doc))
    assert screen(out) == one_shot(doc)


def test_exit_after_exception_flushes_the_trailing_block():
    out, err, sink = io.StringIO(), io.StringIO(), io.StringIO()
    with (
        pytest.raises(KeyboardInterrupt),
        Renderer(
            RenderOptions(),
            stdout=out,
            stderr=err,
            sink=sink,
            stdout_tty=True,
            stderr_tty=True,
            width=80,
            clock=Clock(0.05),
        ) as r,
    ):
        for d in random_cut("# A\n\nFirst para.\n\nTrailing para B7 not finish"):
            r.handle(AnswerDelta(d))
        raise KeyboardInterrupt
    shown = screen(out.getvalue())
    assert shown == one_shot("# A\n\nFirst para.\n\nTrailing para B7 not finish")
    assert "\n".join(shown).count("B7") == 1
    assert screen(err.getvalue())[0].startswith("interrupted · 7 words")  # "B7" is no word
    assert sink.getvalue().endswith("not finish")


def test_exit_after_exception_in_raw_mode():
    out = io.StringIO()
    with (
        pytest.raises(RuntimeError),
        Renderer(
            RenderOptions(), stdout=out, stderr=io.StringIO(), stdout_tty=False, stderr_tty=False
        ) as r,
    ):
        r.handle(AnswerDelta("partial text"))
        raise RuntimeError("engine died")
    assert out.getvalue() == "partial text"


# --------------------------------------------------------------------------------------------
# thinking, messages, colour


def test_thinking_show_on_non_tty_stderr_is_raw():
    events = [ThinkDelta("First "), ThinkDelta("idea.\nSecond")] + answer_events("Doc.")
    out, err, _, _ = run(events, RenderOptions(thinking="show"), stdout_tty=False, stderr_tty=False)
    assert err == "First idea.\nSecond"
    assert out == "Doc."


def test_thinking_hide_shows_no_thinking():
    events = [ThinkDelta("secret plan S01\n")] + answer_events("Doc.")
    out, err, _, _ = run(events, stdout_tty=False, stderr_tty=True)
    assert "S01" not in out + err
    out, err, _, _ = run(events)
    assert "S01" not in out + err


def test_thinking_show_on_terminal_dim_lines_then_answer():
    thinking = "Plan line K1.\nPlan line K2.\nlast K3"
    events = [ThinkDelta(d) for d in random_cut(thinking)] + answer_events(DOC)
    out, _, _, _ = run(events, RenderOptions(thinking="show"))
    assert screen(out) == ["Plan line K1.", "Plan line K2.", "last K3", ""] + one_shot(DOC)
    assert "\x1b[2mPlan line K1." in out  # dim
    # stdout is a pipe: the thinking goes to the stderr terminal, the answer raw to stdout
    out, err, _, _ = run(events, RenderOptions(thinking="show"), stdout_tty=False)
    assert out == DOC
    assert screen(err)[:3] == ["Plan line K1.", "Plan line K2.", "last K3"]
    assert screen(err)[3].startswith("done · ")


def test_thinking_keep_on_terminal():
    events = [ThinkDelta("Plan K1.\n"), ThinkDelta("K2")] + answer_events(DOC)
    out, _, sink, _ = run(events, RenderOptions(thinking="keep"))
    assert screen(out) == ["Plan K1.", "K2", ""] + one_shot(DOC)
    assert sink.startswith("<think>\nPlan K1.\nK2\n</think>\n\n# Title")


def test_message_above_the_live_area_once():
    out, err = io.StringIO(), io.StringIO()
    with Renderer(
        RenderOptions(), stdout=out, stderr=err, stdout_tty=True, stderr_tty=True, width=80
    ) as r:
        r.message("loading model…")
        sent = ""
        for d in random_cut(DOC):
            r.handle(AnswerDelta(d))
            sent += d
            if sent.endswith("P002."):
                r.message("warning: W01")
    shown = screen(out.getvalue())
    assert shown[0] == "loading model…"
    assert "\n".join(shown).count("W01") == 1
    err2 = io.StringIO()
    with Renderer(
        RenderOptions(), stdout=io.StringIO(), stderr=err2, stdout_tty=True, stderr_tty=False
    ) as r:
        r.message("plain [bold]line[/bold]")
    assert err2.getvalue() == "plain [bold]line[/bold]\n"


_COLOUR = {*range(30, 39), *range(40, 49), *range(90, 98), *range(100, 108)}


def colour_codes(data: str) -> list[str]:
    found = []
    for params in _SGR.findall(data):
        if any(p and int(p) in _COLOUR for p in params.split(";")):
            found.append(params)
    return found


@pytest.mark.parametrize("stdout_tty", [False, True])
def test_no_color_is_honoured(monkeypatch, stdout_tty):
    events = [ThinkDelta("thinking T1\nmore")] + answer_events(DOC)
    opts = RenderOptions(thinking="show", target_words=50)
    out, err, _, _ = run(events, opts, stdout_tty=stdout_tty)
    assert colour_codes(out + err)  # the check can fail: colour is there by default
    monkeypatch.setenv("NO_COLOR", "1")
    out, err, _, _ = run(events, opts, stdout_tty=stdout_tty)
    assert colour_codes(err) == []
    assert colour_codes(out) == []
    assert "\x1b[2m" in out + err  # dim is not colour: still used


def test_no_terminal_means_no_live_and_no_escape_codes():
    events = [ThinkDelta("plan\n")] + answer_events(DOC)
    out, err, _, _ = run(events, RenderOptions(thinking="show"), stdout_tty=False, stderr_tty=False)
    assert "\x1b" not in out + err


def test_events_after_done_are_ignored():
    out, _, _, r = run([AnswerDelta("a b"), Done("stop"), AnswerDelta(" c")], stdout_tty=False)
    assert out == "a b"
    assert r.words == 2


def test_bad_options_are_rejected():
    with pytest.raises(ValueError):
        RenderOptions(thinking="loud")
    with pytest.raises(ValueError):
        RenderOptions(answer="html")


def test_a_fast_servers_rate_has_thousands_separators():
    assert format_status("done", elapsed=1.0, words=10, tokens=3_200, tokens_per_s=3181.64) == (
        "done · 10 words · 3,200 tok · 3,181.6 tok/s · 0:01"
    )
