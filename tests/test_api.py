"""The Python API: `write()` and `stream()` run what the command runs, without a display."""

from __future__ import annotations

import subprocess
import sys

import pytest
from scripted import CandidatesEngine, RoundsEngine, ScriptedEngine, cut
from sse_server import Script, ScriptedServer

import longwrite
from longwrite import AnswerDelta, Done, LongwriteError, ThinkDelta, stream, write
from longwrite.prompt.templates import build_prompt

TRANSCRIPT = (
    "<think>Plan: use <answer> tags after </think>.\n1. intro</think>\n<answer>\n# Tides\n\n"
    "The sea rises and falls twice a day."
)
ANSWER = "# Tides\n\nThe sea rises and falls twice a day."


def test_write_against_a_server_returns_the_typed_result():
    script = Script(text=TRANSCRIPT, prompt=build_prompt("Write about tides"))
    with ScriptedServer(script) as server:
        seen = []
        doc = write("Write about tides\r\n", server=server.url, on_event=seen.append)
    assert isinstance(doc, longwrite.Result)
    assert doc.answer == ANSWER and doc.thinking.startswith("Plan: use <answer> tags")
    assert doc.words == 1 + 8 and doc.finish_reason == "stop" and doc.tokens > 0
    assert seen[-1] == Done("stop")
    assert "".join(e.text for e in seen if isinstance(e, AnswerDelta)) == ANSWER
    assert server.completions[0].body["prompt"] == build_prompt("Write about tides")


def test_a_loaded_engine_is_reused_and_left_open():
    engine = RoundsEngine([TRANSCRIPT, TRANSCRIPT], ["stop", "stop"])
    for _ in range(2):
        assert write("Write about tides", engine=engine, max_rounds=0).answer == ANSWER
    assert len(engine.prompts) == 2 and not engine.closed


def test_words_steer_and_continue_as_the_command_does():
    first = "<think>p</think><answer>One two three four five."
    engine = RoundsEngine([first, "Six seven eight nine ten eleven twelve."], ["stop", "stop"])
    doc = write("Write about tides", words=12, engine=engine, max_tokens=500)
    assert doc.words == 12 and len(doc.rounds) == 2
    assert engine.prompts[0] == build_prompt(
        "Write about tides. The answer should be about 12 words long."
    )


def test_best_of_returns_the_chosen_candidate():
    good = "Tides rise twice a day because the Moon pulls the oceans toward it."
    engine = CandidatesEngine(
        [f"<think>a</think><answer>{'Tides. ' * 30}", f"<think>b</think><answer>{good}"]
    )
    assert write("Write about tides in 13 words", engine=engine, best_of=2).answer == good


def test_mistakes_are_the_commands_one_line_errors_before_anything_loads():
    with pytest.raises(LongwriteError, match="--best-of must be at least 1"):
        write("x", best_of=0, engine=ScriptedEngine([]))
    with pytest.raises(LongwriteError, match="the prompt is empty"):
        write(" \r\n", engine=ScriptedEngine([]))


def test_stream_yields_events_in_order_and_stops_when_left():
    events = list(stream("Write about tides", engine=ScriptedEngine(cut(TRANSCRIPT))))
    assert isinstance(events[0], ThinkDelta) and events[-1] == Done("stop")
    assert "".join(e.text for e in events if isinstance(e, AnswerDelta)) == ANSWER
    from test_render import words_doc

    long_doc, _ = words_doc(3000)  # different paragraphs: nothing for the loop guard to cut
    engine = ScriptedEngine(cut("<think>Plan.</think>\n<answer>\n" + long_doc))
    for event in stream("Write about tides", engine=engine):
        if isinstance(event, AnswerDelta):
            break
    assert engine.closed_streams == 1  # the generation was stopped, not run to the end
    assert len(engine.prompts) == 1


def test_stream_raises_what_writing_raised():
    with pytest.raises(LongwriteError, match="--words must be"):
        list(stream("x", words=-1, engine=ScriptedEngine([])))


def test_importing_the_api_loads_nothing_heavy():
    code = (
        "import sys, longwrite; longwrite.write; longwrite.stream; "
        "print(','.join(m for m in ('torch', 'transformers', 'vllm') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_write_guards_against_loops_as_the_command_does():
    from scripted import RoundsEngine
    from test_guards import FRESH, HONEST, LOOP, PLAN

    looping = PLAN + HONEST + LOOP * 30
    guarded = write("Tell a story", engine=RoundsEngine([looping, FRESH], ["stop", "stop"]))
    assert guarded.answer.count("She climbed") == 1 and guarded.answer.endswith(FRESH)
    assert [g["kind"] for g in guarded.guard] == ["loop"]
    raw = write("Tell a story", engine=RoundsEngine([looping], ["stop"]), guard=False)
    assert raw.answer.count("She climbed") == 30 and raw.guard == []
