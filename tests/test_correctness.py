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
from scripted import ScriptedEngine, cut
from sse_server import Script, ScriptedServer, plan
from typer.testing import CliRunner

from longwrite.cli import app
from longwrite.prompting import build_prompt

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
