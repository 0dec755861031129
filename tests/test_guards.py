"""The guards while writing (issue 13): loops caught as they stream, runaway thinking capped.

Transcripts come from the scripted OpenAI-compatible server (real HTTP, real SSE); `then`
is what a sampler gives when asked again after a cut.
"""

from __future__ import annotations

import ast
import glob
import json
import os
from pathlib import Path

import pytest
from sse_server import Script, ScriptedServer, cut_points
from typer.testing import CliRunner

from longwrite.cli.app import app
from longwrite.generate.guards import LoopDetector
from longwrite.scoring.rewards import repetition_penalty

runner = CliRunner()

HONEST = (
    "The harbour town woke slowly that winter, its fishing boats tied two deep along the "
    "quay while the wind worried at the shutters of the chandlery.\n\n"
    "Marta had kept the lighthouse for eleven years, long enough to read the weather from "
    "the colour of the gulls and the way the tide pulled at the weed on the lower steps.\n\n"
    "Her brother wrote every month from the city, letters full of trams and theatres and "
    "the price of coal, and she answered each one with news of storms and wrecks.\n\n"
)
LOOP = (
    "She climbed the iron stairs again, counting each of the one hundred and twelve steps, "
    "checking the wick, polishing the great lens until it shone, and looking out across "
    "the dark water for any sign of the ships that had not come home that season.\n\n"
)
FRESH = "In the spring a letter came that changed everything she had planned for the year."
PLAN = "<think>A quiet story about a keeper.</think>\n<answer>\n"


def write(server: ScriptedServer, *args: str, think: bool = False):
    flags = [] if think else ["--no-think"]
    return runner.invoke(app, ["write", "Tell a story", "--server", server.url, *flags, *args])


def script(text: str, then: tuple[str, ...] = (), think: bool = False) -> Script:
    from longwrite.prompt.templates import build_prompt

    return Script(text=text, prompt=build_prompt("Tell a story", think=think), then=then)


def test_a_paragraph_repeated_30_times_is_cut_and_resampled():
    with ScriptedServer(script(PLAN + HONEST + LOOP * 30, then=(FRESH,))) as server:
        result = write(server, "--json", "--seed", "5")
        assert result.exit_code == 0, result.output
        data = json.loads(result.stdout)
        answer = data["answer"]
        assert answer.startswith(HONEST.strip()[:40]) and HONEST.strip() in answer
        assert answer.count(LOOP.strip()) == 1  # the first telling stays, the loop goes
        assert answer.endswith(FRESH)
        (loop,) = [g for g in data["guard"] if g["kind"] == "loop"]
        assert loop["dropped_chars"] > 0 and loop["what"].startswith("She climbed")
        second = server.completions[1].body
        assert second["prompt"].endswith(HONEST + LOOP)  # cut at the end of a paragraph
        assert second["seed"] == 6 and second["repetition_penalty"] > 1.0
        # the reader is told, once, on stderr (above the live area on a terminal)
        (note,) = [line for line in result.stderr.splitlines() if "guard:" in line]
        assert f"after {loop['at_words']:,} words" in note and "fresh sample" in note


def test_piped_output_never_contains_the_loop_and_the_log_holds_the_document():
    from longwrite.runlog.store import Store

    with ScriptedServer(script(PLAN + HONEST + LOOP * 30, then=(FRESH,))) as server:
        result = write(server)
    assert result.exit_code == 0, result.output
    assert result.stdout.count("She climbed") == 1 and FRESH in result.stdout
    store = Store.open()
    try:
        (run,) = store.runs()
        raw = store.raw(run.id)
    finally:
        store.close()
    assert raw.count("She climbed") == 1 and raw.endswith(FRESH)


def test_a_sentence_cycle_is_caught():
    cycle = "The bell rang. The door opened. Nobody came in. " * 60
    with ScriptedServer(script(PLAN + HONEST + cycle, then=(FRESH,))) as server:
        result = write(server, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["answer"].count("Nobody came in") < 5 and data["answer"].endswith(FRESH)
    assert [g["kind"] for g in data["guard"]] == ["loop"]


def test_looping_again_keeps_the_text_before_the_loop_and_says_so():
    with ScriptedServer(script(PLAN + HONEST + LOOP * 30, then=(LOOP * 30,))) as server:
        result = write(server, "--json", "--guard-retries", "1")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [g["kind"] for g in data["guard"]] == ["loop", "loop_kept"]
    assert data["answer"].count("She climbed") == 1
    assert "looped" in result.stderr


def test_no_guard_lets_the_loop_run():
    with ScriptedServer(script(PLAN + HONEST + LOOP * 30, then=(FRESH,))) as server:
        result = write(server, "--json", "--no-guard")
    data = json.loads(result.stdout)
    assert data["answer"].count("She climbed") == 30 and data["guard"] == []


def test_runaway_thinking_is_closed_at_the_budget_and_the_answer_arrives():
    thinking = "<think>" + "".join(f"step {i} of the plan, " for i in range(5000))
    with ScriptedServer(script(thinking, then=("The answer.",))) as server:
        result = write(server, "--json", "--think-budget", "500")
        assert result.exit_code == 0, result.output
        second = server.completions[1].body["prompt"]
    assert second.endswith("</think> <answer>")
    # Stopped early by what the client consumed, whatever the server managed to send before
    # the connection closed: the thinking it sends back holds about 500 tokens, not 20,000.
    sent_back = second.rpartition("<think>")[2]
    assert "step 0 of the plan" in sent_back and sent_back.count("step ") < 200
    data = json.loads(result.stdout)
    assert data["answer"] == "The answer." and data["thinking"].startswith("step 0")
    assert [g["kind"] for g in data["guard"]] == ["think_budget"]
    assert "the thinking reached 500 tokens" in result.stderr
    assert 500 <= data["rounds"][0]["tokens"] < 510


def test_a_completion_that_stops_inside_the_thinking_gets_its_answer():
    with ScriptedServer(script("<think>plan the piece", ("Doc.",), think=True)) as server:
        result = write(server, "--json", think=True)
        assert server.completions[1].body["prompt"].endswith("plan the piece</think> <answer>")
    data = json.loads(result.stdout)
    assert data["answer"] == "Doc." and data["guard"][0]["kind"] == "answer_not_opened"


def _feed(text: str, size: int = 7) -> bool:
    detector = LoopDetector()
    return any(detector.feed(text[i : i + size]) for i in range(0, len(text), size))


def test_the_detector_agrees_with_the_repetition_penalty():
    for text in (HONEST + LOOP * 30, HONEST + "The bell rang. The door opened. " * 80):
        assert _feed(text) and repetition_penalty(text) > 0.5
    assert not _feed(HONEST + LOOP) and repetition_penalty(HONEST + LOOP) < 0.1


def stdlib_prose(min_words: int) -> list[str]:
    """Real human-written prose: the docstrings of Python's standard library (site-packages
    left out), one document per module, each distinct paragraph once (API docs copy whole
    paragraphs between functions, e.g. json.dump and json.dumps: that is not a writer
    looping), doctest lines left out (code, not prose); modules in name order."""
    docs, words = [], 0
    folder = os.path.dirname(os.__file__)
    kinds = (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    for path in sorted(glob.glob(os.path.join(folder, "**", "*.py"), recursive=True)):
        if "test" in path or "-packages" in path:
            continue
        try:
            tree = ast.parse(Path(path).read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError):
            continue
        paragraphs: dict[str, None] = {}
        for node in ast.walk(tree):
            doc = ast.get_docstring(node) if isinstance(node, kinds) else None
            for para in (doc or "").split("\n\n"):
                lines = [ln for ln in para.splitlines() if not ln.lstrip().startswith(">>>")]
                paragraphs.setdefault("\n".join(lines).strip(), None)
        doc = "\n\n".join(p for p in paragraphs if p)
        if len(doc.split()) >= 200:
            docs.append(doc)
            words += len(doc.split())
        if words >= min_words:
            return docs
    pytest.skip("the standard library's sources are not installed")


@pytest.mark.slow
def test_no_false_alarm_on_200000_words_of_real_prose():
    docs = stdlib_prose(200_000)
    alarms = [doc[:60] for doc in docs if _feed(doc, 11)]
    assert alarms == []


def test_a_loop_in_a_whole_reply_gives_its_tokens_back_to_the_budget():
    """`batch` asks for whole replies: the guard sees a loop only once all of it is spent.
    The cut text's tokens go back to the budget, so the resample has room to write."""
    from collections.abc import Iterator

    from longwrite.engines.base import Chunk, EngineInfo, Sampling
    from longwrite.generate.guards import Guards
    from longwrite.generate.rounds import write_document
    from longwrite.prompt.request import build_request

    class Whole:
        info = EngineInfo(name="whole", model="m")

        def __init__(self, replies: list[str]) -> None:
            self.replies, self.samplings = replies, []

        def stream(self, prompt: str, sampling: Sampling) -> Iterator[Chunk]:
            self.samplings.append(sampling)
            text = self.replies[len(self.samplings) - 1]
            yield Chunk(text, len(text) // 4, "stop")  # one chunk: every token already spent

        def count_tokens(self, text: str) -> int | None:
            return None

        def close(self) -> None:
            pass

    looping = PLAN + HONEST + LOOP * 30
    engine = Whole([looping, FRESH])
    request = build_request("Tell a story", max_tokens=len(looping) // 4)

    class Quiet:
        def handle(self, event: object) -> None:
            pass

        def add_tokens(self, n: int) -> None:
            pass

    result = write_document(engine, request, Quiet(), guards=Guards())
    assert [g["kind"] for g in result.guard] == ["loop"]
    assert result.answer.endswith(FRESH) and result.answer.count(LOOP.strip()) == 1
    kept = len(PLAN + HONEST + LOOP) // 4
    assert abs(engine.samplings[1].max_tokens - (request.sampling.max_tokens - kept)) <= 2
    assert result.tokens == len(looping) // 4 + len(FRESH) // 4  # spent, loop included


def test_a_batch_line_whose_whole_reply_loops_is_resampled(tmp_path):
    """`batch` asks for whole JSON replies by default: the loop arrives with every token of
    it spent. The line is still cut back and carried on by a fresh request with room left."""
    from longwrite.cli.batch import run_batch_command
    from longwrite.engines import EngineOptions
    from longwrite.generate.job import WriteOptions
    from longwrite.io.jsonl import read_records

    looping = PLAN + HONEST + LOOP * 30
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": "a", "prompt": "Tell a story"}\r\n', encoding="utf-8")  # CRLF
    tokens = len(cut_points(looping, (1, 3, 2, 4)))  # the server's: a piece is a token
    base = WriteOptions(prompt="", max_tokens=tokens + 8, max_rounds=0,  # all of it, just
                        engine=EngineOptions(engine="openai"))  # fmt: skip
    with ScriptedServer(script(looping, then=(FRESH,), think=True)) as server:
        code = run_batch_command(source, tmp_path / "out.jsonl", base, [server.url], 1)
        asked = [r.body for r in server.completions]
    assert code == 0
    (record,) = read_records(tmp_path / "out.jsonl")
    assert record["answer"].count(LOOP.strip()) == 1 and record["answer"].endswith(FRESH)
    assert [g["kind"] for g in record["guard"]] == ["loop"]
    assert len(asked) == 2 and asked[1]["max_tokens"] > len(FRESH)  # room to write afresh
