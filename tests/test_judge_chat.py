"""The one judge client over the chat endpoint: `eval quality --chat`, a judge answering 502
then well, a reply with no choice, and the answer cut to the judge's reported context."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from judge_servers import judge
from sse_server import Script
from typer.testing import CliRunner

from longwrite.cli.eval import eval_app
from longwrite.evaluate.quality import DIMENSIONS
from longwrite.scoring.judge import Ask, ChatEndpoint, JudgeClient, endpoint


def ratings(prompt: str) -> str:
    digits = re.search(r"GOOD:(\d{6})", prompt).group(1)
    return json.dumps(dict(zip(DIMENSIONS, map(int, digits), strict=True)))


def test_eval_quality_over_the_chat_endpoint(tmp_path: Path) -> None:
    results = tmp_path / "r.jsonl"
    rows = [{"id": "a", "prompt": "Write.", "answer": "GOOD:555555 text", "length": 2},
            {"id": "b", "prompt": "Write.", "answer": "GOOD:111111 text", "length": 2}]  # fmt: skip
    results.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with judge(ratings) as server:
        out = CliRunner().invoke(
            eval_app, ["quality", str(results), "--judge", server.url, "--chat", "--json"]
        )
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["quality_score"] == pytest.approx(50.0)
    assert {path for path, _ in server.asked} == {"/v1/chat/completions"}
    body = server.requests[-1].body
    assert body["messages"][0]["role"] == "user" and body["temperature"] == 0.0


def test_a_failing_chat_judge_is_retried_then_scored_or_left_unscored() -> None:
    calls: list[int] = []

    def flaky(prompt: str) -> str | int:
        calls.append(1)
        return 502 if len(calls) == 1 else '{"score": 1}'

    with judge(flaky) as server:
        send = ChatEndpoint(server.url, timeout=10, max_tokens=50)
        try:
            client = JudgeClient(send, attempts=2, backoff=0)
            got = client.ask(Ask(lambda a: f"judge: {a}", "x"), json.loads)
            assert got.value == {"score": 1} and got.attempts == 2
            calls.clear()
            client.attempts = 1
            failed = client.ask(Ask(lambda a: a, "x"), json.loads)
            assert failed.value is None and "502" in (failed.error or "")
        finally:
            send.close()


def test_the_chat_endpoint_reports_the_servers_context_and_the_client_cuts_to_it() -> None:
    with judge(lambda p: str(len(p)), script=Script(max_model_len=2_000)) as server:
        send = endpoint(server.url, None, chat=True, timeout=10, max_tokens=100)
        try:
            assert isinstance(send, ChatEndpoint) and send.context == 2_000
            client = JudgeClient(send, context_tokens=send.context, max_tokens=100, backoff=0)
            got = client.ask(Ask(lambda a: f"Judge this:\n{a}", "word " * 5_000), int)
            assert got.cut and got.value is not None and got.value < 2_000 * 3
            assert "more words are not shown" in server.asked[-1][1]
        finally:
            send.close()


def test_a_chat_reply_that_is_not_json_is_a_failed_attempt_not_a_crash() -> None:
    page = b"<html><body>502 Bad Gateway</body></html>"
    with judge(lambda p: page) as server:
        send = ChatEndpoint(server.url, timeout=10, max_tokens=50)
        try:
            got = JudgeClient(send, attempts=2, backoff=0).ask(Ask(lambda a: a, "x"), json.loads)
        finally:
            send.close()
    assert got.value is None and got.attempts == 2 and got.error
    assert len(server.asked) == 2
