"""What a user would notice: the plan never leaks, the prompt arrives exactly, honest messages.

Each test feeds what real models and terminals produce (a plan that quotes the tags, a
prompt piped with CRLF or a trailing newline) through the real command line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import sse_server
from scripted import CandidatesEngine, RoundsEngine, ScriptedEngine, cut
from sse_server import Script, ScriptedServer, plan
from typer.testing import CliRunner

from longwrite.cli.app import app, main
from longwrite.engines.base import Chunk, EngineInfo, Sampling
from longwrite.generate.rounds import Continuation, tokens_left, write_document
from longwrite.prompt.request import build_request
from longwrite.prompt.templates import build_prompt

runner = CliRunner()

# The template names the tags, so a real plan quotes them.
QUOTING_PLAN = (
    "<think>The user wants an essay. The template says the final work goes inside <answer> "
    "tags, after </think>, so I plan first.\n1. Title\n2. Two sections</think>\n<answer>\n"
    "# Tides\n\nThe sea rises and falls."
)
ANSWER = "# Tides\n\nThe sea rises and falls."


@pytest.fixture
def scripted(monkeypatch):
    def install(text, finish="stop"):
        engine = ScriptedEngine(cut(text), finish=finish)
        monkeypatch.setattr("longwrite.engines.load_engine", lambda *a, **k: engine)
        monkeypatch.setattr("longwrite.engines.resolve_engine_name", lambda *a, **k: "scripted")
        return engine

    return install


@pytest.mark.parametrize(
    "transcript",
    [
        QUOTING_PLAN,
        "Sure. " + QUOTING_PLAN,  # chatter before <think>
        QUOTING_PLAN.replace("</think>\n<answer>\n", "</think> <answer>"),
    ],
)
def test_a_plan_that_quotes_the_tags_never_reaches_the_document(scripted, transcript):
    scripted(transcript)
    result = runner.invoke(app, ["write", "Write about tides", "--max-rounds", "0", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["answer"] == ANSWER
    assert "<answer> tags, after </think>" in data["thinking"]
    piped = runner.invoke(app, ["write", "Write about tides", "--max-rounds", "0"])
    assert piped.stdout == ANSWER


def _dry_prompt(args, stdin: bytes | None) -> str:
    """The exact prompt `--dry-run --json` reports, through a real process and real stdin."""
    env = {**os.environ, "NO_COLOR": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "longwrite", *args, "--dry-run", "--json"],
        input=stdin,
        capture_output=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    return json.loads(proc.stdout)["prompt"]


@pytest.mark.parametrize(
    ("args", "stdin"),
    [
        (["Write a poem about tides.\nTwo stanzas."], None),
        (["-"], b"Write a poem about tides.\nTwo stanzas.\n"),
        ([], b"Write a poem about tides.\r\nTwo stanzas.\r\n"),
        ([], b"\xef\xbb\xbfWrite a poem about tides.\r\nTwo stanzas.\r\n\r\n\r\n"),
        (["Write a poem about tides.\r\nTwo stanzas.\n\n"], None),
    ],
    ids=["argument", "dash-stdin", "crlf-redirect", "bom-crlf-blank-lines", "argument-crlf"],
)
def test_the_model_receives_exactly_the_template_and_the_text(args, stdin):
    expected = build_prompt("Write a poem about tides.\nTwo stanzas.")
    assert _dry_prompt(args, stdin) == expected
    assert expected.endswith("Two stanzas. <|assistant|>:")


def test_dry_run_without_json_prints_the_prompt_sent():
    result = runner.invoke(app, ["write", "-", "--dry-run"], input="Write a haiku.\r\n")
    assert result.exit_code == 0
    assert result.stdout.rstrip("\n") == build_prompt("Write a haiku.")


@pytest.fixture
def range_server(monkeypatch):
    """A length assessor that answers every prompt with `reply[0]`."""
    reply = ["{}"]

    def routed(self, body):
        return [plan(reply[0], 0, self.owner.script, int(body.get("max_tokens") or 16), [])]

    monkeypatch.setattr(sse_server._Handler, "_plan", routed)
    with ScriptedServer(Script()) as server:
        yield server, reply


def test_a_range_predicted_as_zero_says_so_instead_of_blaming_words(range_server):
    server, reply = range_server
    reply[0] = 'No long answer is needed.\n{"lo": 0, "hi": 40}'  # rounds to [0, 0]
    result = runner.invoke(
        app, ["write", "Say hello.", "--range-model", server.url, "--dry-run", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert "--words" not in result.stderr
    assert "[0, 0]" in result.stderr
    assert json.loads(result.stdout)["target_words"] is None
    reply[0] = "I cannot tell."
    result = runner.invoke(
        app, ["write", "Say hello.", "--range-model", server.url, "--dry-run", "--json"]
    )
    assert result.exit_code == 0 and "no usable word range" in result.stderr


# ---- length control: one owner for the tokens left; the paragraph separator ---------------


class ContextEngine:
    """A character-level model with a context it enforces as vLLM does: a request that asks
    for more than fits is shrunk to fit, a prompt that fills the context is an error."""

    def __init__(self, script: str, context: int) -> None:
        self.script, self.info = script, EngineInfo("ctx", "ctx", context=context)
        self.requests: list[tuple[int, int]] = []  # (prompt tokens, max_tokens asked)

    def count_tokens(self, text: str) -> int:
        return len(text)

    def stream(self, prompt: str, sampling: Sampling):
        from longwrite.engines.base import EngineError, fit_max_tokens

        self.requests.append((len(prompt), sampling.max_tokens))
        room = fit_max_tokens(sampling.max_tokens, len(prompt), self.info.context)
        if room <= 0:
            raise EngineError(f"the prompt is {len(prompt)} tokens; the context is full")
        done = len(prompt) - len(self.base)
        text = self.script[done : done + room]
        for ch in text:
            yield Chunk(ch, tokens=1)
        yield Chunk("", finish_reason="length" if len(text) == room else "stop")

    def close(self) -> None:
        pass


class Quiet:
    def handle(self, event):
        pass

    def add_tokens(self, n):
        pass


def test_a_budget_larger_than_the_context_ends_cleanly_instead_of_raising():
    request = build_request("Write about tides", words=2000, max_tokens=5000)
    script = "<think>p</think><answer>" + "word " * 2000
    engine = ContextEngine(script, context=len(request.prompt) + 300)
    engine.base = request.prompt
    result = write_document(engine, request, Quiet(), continuation=Continuation(below=1800))
    assert result.finish_reason == "length"
    assert result.tokens == 300  # everything the context held, and no request past it
    assert all(p + m <= engine.info.context for p, m in engine.requests)


def test_tokens_left_counts_the_text_so_far_against_the_context():
    request = build_request("Write about tides", max_tokens=1000)
    engine = ContextEngine("", context=len(request.prompt) + 400)
    assert tokens_left(engine, request, "", 0) == 400
    assert tokens_left(engine, request, "x" * 150, 150) == 250
    engine.info = EngineInfo("ctx", "ctx", context=None)
    assert tokens_left(engine, request, "x" * 150, 150) == 850


@pytest.mark.parametrize("ending", ["five.", "five.\n", "five.\n\n"])
def test_continuation_adds_only_the_missing_paragraph_break(ending):
    first = "<think>plan</think>\n<answer>\nOne two three four " + ending
    engine = RoundsEngine([first, "Six seven eight nine ten eleven twelve."], ["stop", "stop"])
    request = build_request("Write about tides", words=12, max_tokens=500)
    result = write_document(engine, request, Quiet(), continuation=Continuation(below=11))
    assert result.answer == "One two three four five.\n\nSix seven eight nine ten eleven twelve."
    assert engine.prompts[1] == request.prompt + first.rstrip("\n") + "\n\n"


# ---- best-of and Ctrl-C; an earlier run's .partial ----------------------------------------


class InterruptedCandidates:
    """Two candidates: 0 ends early with a short answer, 1 is long and cut off by Ctrl-C."""

    info = EngineInfo("scripted", "scripted")

    def __init__(self):
        self.short = "<think>a</think><answer>Tides rise."
        self.long = "<think>b</think><answer>" + "Tides rise and fall with the Moon, " * 3

    def stream(self, prompt, sampling):
        assert sampling.n == 2
        for piece in cut(self.short):
            yield Chunk(piece, tokens=1, index=0)
        yield Chunk("", finish_reason="stop", index=0)
        for piece in cut(self.long):
            yield Chunk(piece, tokens=1, index=1)
        raise KeyboardInterrupt

    def count_tokens(self, text):
        return None

    def close(self):
        pass


def test_ctrl_c_in_best_of_keeps_every_candidate_and_commits_nothing(monkeypatch, tmp_path):
    engine = InterruptedCandidates()
    monkeypatch.setattr("longwrite.engines.load_engine", lambda *a, **k: engine)
    monkeypatch.setattr("longwrite.engines.resolve_engine_name", lambda *a, **k: "scripted")
    out = tmp_path / "doc.md"
    args = ["write", "Write about tides in 25 words", "--best-of", "2", "-o", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 130
    assert "interrupted" in result.stderr
    assert not out.exists()  # never committed as if complete
    # the cut-off candidate scores better on length, but it must not win
    assert (tmp_path / "doc.md.partial").read_text() == "Tides rise."
    kept = [
        json.loads(x) for x in (tmp_path / "doc.md.candidates.jsonl").read_text().split("\n") if x
    ]
    assert [c["answer"] for c in kept] == ["Tides rise.", engine.long.split("<answer>")[1]]
    assert [c["finish_reason"] for c in kept] == ["stop", "cancelled"]
    as_json = runner.invoke(app, [*args[:-2], "--json"])
    assert as_json.exit_code == 130
    data = json.loads(as_json.stdout)
    assert data["finish_reason"] == "cancelled" and data["best"] == 0
    assert data["candidates"][1]["answer"] == kept[1]["answer"]


def test_a_rerun_never_truncates_the_partial_an_interrupted_run_left(scripted, tmp_path):
    out = tmp_path / "doc.md"
    partial = tmp_path / "doc.md.partial"
    partial.write_text("3,000 words from an interrupted run")
    scripted(QUOTING_PLAN)
    result = runner.invoke(app, ["write", "Write about tides", "-o", str(out), "--max-rounds", "0"])
    assert result.exit_code == 0, result.output
    assert out.read_text() == ANSWER
    aside = tmp_path / "doc.md.partial.1"
    assert aside.read_text() == "3,000 words from an interrupted run"
    assert str(aside) in result.stderr
    partial.write_text("a second one")
    assert runner.invoke(app, ["write", "Write about tides", "-o", str(out)]).exit_code == 0
    assert (tmp_path / "doc.md.partial.2").read_text() == "a second one"


def test_a_partial_still_being_written_is_refused(scripted, tmp_path, capsys):
    import fcntl

    out = tmp_path / "doc.md"
    with open(tmp_path / "doc.md.partial", "w") as busy:
        busy.write("streaming")
        busy.flush()
        fcntl.flock(busy.fileno(), fcntl.LOCK_EX)
        scripted(QUOTING_PLAN)
        with pytest.raises(SystemExit) as exit_:
            main(["Write about tides", "-o", str(out)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "another longwrite run is writing" in err
    assert (tmp_path / "doc.md.partial").read_text() == "streaming"


def test_no_think_best_of_scores_format_and_repetition(monkeypatch):
    # The direct template ends with `<answer>`: a completion is the work alone.
    padded = "Tides rise and fall. " * 12
    honest = (
        "Tides rise twice a day because the Moon pulls the oceans. Coasts and basins shape "
        "the range, and the Sun adds a smaller pull of its own, strongest at new moon."
    )
    engine = CandidatesEngine([padded, honest])
    monkeypatch.setattr("longwrite.engines.load_engine", lambda *a, **k: engine)
    monkeypatch.setattr("longwrite.engines.resolve_engine_name", lambda *a, **k: "scripted")
    result = runner.invoke(
        app, ["write", "Write about tides.", "--no-think", "--best-of", "2", "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    scores = [c["scores"] for c in data["candidates"]]
    assert [s["format"] for s in scores] == [1.0, 1.0]
    assert scores[0]["repetition"] > 0.5 > scores[1]["repetition"]
    assert data["best"] == 1 and data["answer"] == honest


def test_rl_prepare_sends_the_prompt_as_inference_does(tmp_path):
    from longwrite.rl.data import prepare

    src = tmp_path / "p.jsonl"
    src.write_text(json.dumps({"prompt": "Write a 2,000-word essay on tides.\r\n"}) + "\n")
    prepare(src, tmp_path / "data.jsonl")
    row = json.loads((tmp_path / "data.jsonl").read_text())
    assert row["prompt"] == build_prompt("Write a 2,000-word essay on tides.")
