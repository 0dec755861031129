"""The one LLM judge client (`longwrite.scoring.judge`), against scripted servers on loopback:
retries with backoff then unscored (a proxy's 502 page, an event that is not JSON), answers
cut to the judge's context with the note (reported by /v1/models, or learnt from a refusal),
bounded concurrency, and a failure that is not the judge's reaching the caller.

`ContextServer` answers like vLLM: a prompt whose tokens (here one per 4 bytes) and
max_tokens exceed its context is refused with HTTP 400 and vLLM's message; anything else gets
`reply`. `eval quality` uses it too (tests/test_eval_quality.py).
"""

from __future__ import annotations

import doctest
import json
import threading
from typing import Any

import pytest
from sse_server import Script, ScriptedServer, _Handler, _HTTPServer, error_body, plan

import longwrite.scoring.judge
from longwrite.io.counting import count_words
from longwrite.scoring.judge import Ask, CompletionsEndpoint, JudgeClient

BYTES_PER_SERVER_TOKEN = 4
LONG = "\n\n".join(f"Paragraph {i}: " + " ".join(["tide"] * 60) for i in range(200))
LONG_WORDS = count_words(LONG)  # 12,400 words, about 64 kB


class _ContextHandler(_Handler):
    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        self._record(body)
        owner: ContextServer = self.owner  # type: ignore[assignment]
        tokens = len(body.get("prompt", "").encode("utf-8")) // BYTES_PER_SERVER_TOKEN
        wanted = int(body.get("max_tokens") or 16)
        if tokens + wanted > owner.context:
            message = (
                f"This model's maximum context length is {owner.context} tokens. However, you "
                f"requested {tokens + wanted} tokens ({tokens} in the messages, {wanted} in the "
                "completion). Please reduce the length of the messages or completion."
            )
            self._send_json(400, error_body(400, message))
            return
        self._stream(body, [plan(owner.reply, 0, owner.script, wanted, [])])


class ContextServer(ScriptedServer):
    context: int = 4096
    reply: str = "Score: 8"

    def __enter__(self) -> ContextServer:
        self._httpd = _HTTPServer(("127.0.0.1", 0), _ContextHandler)
        self._httpd.owner = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self


def score(reply: str) -> int:
    """A strict reader: "Score: N" or a ValueError."""
    head, sep, tail = reply.partition("Score: ")
    if not sep or not tail.strip().isdigit():
        raise ValueError(f"no score in {reply!r}")
    return int(tail.strip())


def judge_prompt(answer: str) -> str:
    return f"Rate this response from 1 to 10.\n\n[Response]\n{answer}\n\n[Score]\n"


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The client's backoff waits, recorded instead of slept (the clock is simulated)."""
    slept: list[float] = []
    monkeypatch.setattr(longwrite.scoring.judge.time, "sleep", slept.append)
    return slept


def test_doctests() -> None:
    result = doctest.testmod(longwrite.scoring.judge)
    assert result.failed == 0 and result.attempted > 0


@pytest.mark.parametrize(
    ("fault", "said"),
    [
        ({"status": 502, "status_body": "<html><h1>502 Bad Gateway</h1></html>"}, "HTTP 502"),
        ({"junk_after": 1}, "not JSON"),
    ],
    ids=["proxy-502-page", "event-not-json"],
)
def test_a_failing_judge_is_retried_with_backoff_then_unscored(
    fault: dict[str, Any], said: str, waits: list[float]
) -> None:
    with ScriptedServer(Script(prompt="Q:", text="Score: 8", **fault)) as server:
        endpoint = CompletionsEndpoint(server.url, timeout=5, max_tokens=16)
        client = JudgeClient(endpoint, attempts=4, backoff=0.25)
        judged = client.ask(Ask(lambda _: "Q:", "an answer"), score)
        endpoint.close()
    assert judged.value is None  # unscored, never a 0
    assert judged.attempts == 4 and len(server.completions) == 4
    assert said in (judged.error or "")
    assert waits == [0.25, 0.5, 1.0]  # exponential backoff between the four attempts


def test_a_judge_that_fails_once_is_scored_on_the_retry(waits: list[float]) -> None:
    script = Script(prompt="Q:", text="Score: 8", status=502, faults=1)
    with ScriptedServer(script) as server:
        endpoint = CompletionsEndpoint(server.url, timeout=5, max_tokens=16)
        judged = JudgeClient(endpoint, attempts=3, backoff=0.5).ask(Ask(lambda _: "Q:", "a"), score)
        endpoint.close()
    assert (judged.value, judged.attempts, judged.error) == (8, 2, None)
    assert len(server.completions) == 2 and waits == [0.5]


def test_an_unreadable_reply_is_retried_and_reported(waits: list[float]) -> None:
    replies = iter(["I liked it.", "Score: seven", "Score: 7"])
    judged = JudgeClient(lambda _: next(replies), attempts=3, backoff=0).ask(
        Ask(judge_prompt, "a"), score
    )
    assert (judged.value, judged.attempts) == (7, 3)
    replies = iter(["I liked it."] * 2)
    judged = JudgeClient(lambda _: next(replies), attempts=2, backoff=0).ask(
        Ask(judge_prompt, "a"), score
    )
    assert judged.value is None and judged.error == "malformed reply: no score in 'I liked it.'"
    assert waits == []  # backoff 0: no wait at all


def test_a_long_answer_is_cut_to_the_reported_context_with_the_note() -> None:
    with ContextServer(Script(max_model_len=2048)) as server:
        server.context = 2048
        endpoint = CompletionsEndpoint(server.url, timeout=5, max_tokens=64)
        client = JudgeClient(
            endpoint, context_tokens=endpoint.context, max_tokens=endpoint.max_tokens
        )
        long, short = client.ask_all([Ask(judge_prompt, LONG), Ask(judge_prompt, "Short.")], score)
        endpoint.close()
    assert (long.value, long.cut, long.attempts) == (8, True, 1)  # fitted at once, no refusal
    assert (short.value, short.cut) == (8, False)
    prompts = [r.body["prompt"] for r in server.completions]
    sent = next(p for p in prompts if "Paragraph 0" in p)
    assert len(sent.encode()) // BYTES_PER_SERVER_TOKEN + 64 <= 2048
    assert "Paragraph 0: tide" in sent and "Paragraph 199" not in sent
    shown, note = sent.split("[Response]\n")[1].split("\n\n[The response continues: ")
    hidden = int(note.split(" more words")[0].replace(",", ""))
    assert count_words(shown) + hidden == LONG_WORDS  # the note counts what is not shown
    assert note.rstrip().endswith("do not treat the cut as an unfinished text.]\n\n[Score]")
    assert judge_prompt("Short.") in prompts


def test_an_unreported_context_is_learnt_from_the_refusal() -> None:
    with ContextServer(Script(max_model_len=None)) as server:
        server.context = 4096
        endpoint = CompletionsEndpoint(server.url, timeout=5, max_tokens=64, default_context=8192)
        assert endpoint.context == 8192  # the configured default stands in, too large here
        client = JudgeClient(endpoint, backoff=0, context_tokens=endpoint.context, max_tokens=64)
        judged = client.ask(Ask(judge_prompt, LONG), score)
        endpoint.close()
    assert (judged.value, judged.cut, judged.attempts) == (8, True, 2)
    refused, accepted = (r.body["prompt"] for r in server.completions)
    assert len(accepted) < len(refused) and "more words are not shown" in accepted


def test_no_more_than_concurrency_requests_at_once_and_results_in_order() -> None:
    """Counted where the client sends (the server's own count races the client: a reply's
    last bytes are read before its handler has finished), with the first three requests held
    until all three are in flight: the limit is reached, and never passed."""
    with ScriptedServer(Script(prompt="Q:", text="Score: 5", delay=0.02)) as server:
        endpoint = CompletionsEndpoint(server.url, timeout=5, max_tokens=16)
        lock, live, most, calls = threading.Lock(), [0], [0], [0]
        together = threading.Barrier(3, timeout=30)

        def send(prompt: str) -> str:
            with lock:
                calls[0] += 1
                first = calls[0] <= 3
                live[0] += 1
                most[0] = max(most[0], live[0])
            try:
                if first:  # held until three are in flight (a broken barrier fails the test)
                    together.wait()
                return endpoint(prompt)
            finally:
                with lock:
                    live[0] -= 1

        client = JudgeClient(send, concurrency=3)
        done: list[int] = []
        asks = [Ask(lambda _: "Q:", f"answer {i}") for i in range(10)]
        judged = client.ask_all(asks, score, lambda i, _: done.append(i))
        endpoint.close()
    assert [j.value for j in judged] == [5] * 10 and sorted(done) == list(range(10))
    assert most[0] == 3 and not together.broken


def test_a_failure_that_is_not_the_judges_stops_the_others_and_is_raised() -> None:
    asked: list[str] = []

    def send(prompt: str) -> str:
        asked.append(prompt)
        return "Score: 5"

    def on_done(index: int, judged: Any) -> None:
        raise OSError(28, "No space left on device")

    client = JudgeClient(send, concurrency=1)
    with pytest.raises(OSError, match="No space left"):
        client.ask_all([Ask(judge_prompt, str(i)) for i in range(5)], score, on_done)
    assert len(asked) == 1  # no verdict is produced that could not be kept
