"""OpenAIEngine against a real HTTP server on 127.0.0.1 (tests/sse_server.py), no mocks."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from sse_server import Planned, Script, ScriptedServer, cut_points, plan

from longwrite.engines.base import DEFAULT_STOP, Chunk, Engine, EngineError, Sampling
from longwrite.engines.openai import OpenAIEngine, ServerError, from_env, normalise_url
from longwrite.errors import LongwriteError
from longwrite.generate.parser import ThinkAnswerParser

BASE = "PROMPT:"
DOC = (
    "<think>Plan: three parts; keep it short.</think>\n<answer>\n# Tides\n\n"
    "The moon pulls the sea. Twice a day the water climbs the harbour wall, "
    "and twice a day it falls back.\n</answer> text after the stop"
)


def expected(script: Script, sampling: Sampling, index: int = 0) -> Planned:
    """What an uninterrupted stream of `script` must deliver (the server's own plan)."""
    return plan(script.candidate(index), 0, script, sampling.max_tokens, list(sampling.stop))


def collect(engine: OpenAIEngine, sampling: Sampling, prompt: str = BASE) -> list[Chunk]:
    return list(engine.stream(prompt, sampling))


def joined(chunks: list[Chunk]) -> str:
    return "".join(c.text for c in chunks)


@pytest.fixture
def serve() -> Iterator:
    """`serve(Script(...))` starts a server that is stopped after the test."""
    servers: list[ScriptedServer] = []

    def start(script: Script) -> ScriptedServer:
        server = ScriptedServer(script).__enter__()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.__exit__(None, None, None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_stream_joins_to_the_text_before_the_stop_string(serve) -> None:
    script = Script(text=DOC)
    srv = serve(script)
    engine = OpenAIEngine(srv.url)
    assert isinstance(engine, Engine)
    sampling = Sampling(max_tokens=500)
    chunks = collect(engine, sampling)
    assert joined(chunks) == DOC[: DOC.index("</answer>")]
    assert all(c.finish_reason is None for c in chunks[:-1])
    assert chunks[-1].finish_reason == "stop"
    assert all(c.index == 0 and c.tokens >= 0 for c in chunks)
    # the server counts the piece holding the stop string; the engine follows its usage report
    assert sum(c.tokens for c in chunks) == srv.usage_sent[-1] == expected(script, sampling).tokens
    assert sum(1 for c in chunks if c.text) < srv.usage_sent[-1]
    assert not any(stop in c.text for c in chunks for stop in DEFAULT_STOP)
    engine.close()


def test_max_tokens_ends_with_length(serve) -> None:
    script = Script(text=DOC)
    srv = serve(script)
    engine = OpenAIEngine(srv.url)
    sampling = Sampling(max_tokens=7)
    chunks = collect(engine, sampling)
    assert chunks[-1].finish_reason == "length"
    assert joined(chunks) == "".join(expected(script, sampling).pieces)
    assert sum(c.tokens for c in chunks) == 7 == srv.usage_sent[-1]


def test_finish_reason_in_a_separate_empty_chunk(serve) -> None:
    srv = serve(Script(text="no tags at all, just prose", finish_separate=True))
    chunks = collect(OpenAIEngine(srv.url), Sampling(max_tokens=100))
    assert chunks[-1] == Chunk("", 0, "stop", 0)
    assert joined(chunks) == "no tags at all, just prose"
    assert sum(c.tokens for c in chunks) == srv.usage_sent[-1]


def test_tags_split_across_chunks_survive_the_parser(serve) -> None:
    srv = serve(Script(text=DOC, pieces=(1, 3, 2, 4)))
    chunks = collect(OpenAIEngine(srv.url), Sampling(max_tokens=500))
    assert any(
        "<" in c.text and not any(t in c.text for t in ("<think>", "<answer>")) for c in chunks
    )
    parser = ThinkAnswerParser()
    for chunk in chunks:
        parser.feed(chunk.text)
    parser.close(chunks[-1].finish_reason)
    whole = ThinkAnswerParser()
    whole.feed(DOC[: DOC.index("</answer>")])
    whole.close("stop")
    assert parser.thinking == whole.thinking == "Plan: three parts; keep it short."
    assert parser.answer == whole.answer
    assert parser.answer.startswith("# Tides") and parser.answer.endswith("falls back.\n")


@pytest.mark.parametrize("style", ["reset", "close", "done"])
def test_a_dropped_stream_is_resumed_without_a_seam(serve, style: str) -> None:
    sampling = Sampling(max_tokens=500)
    reference = joined(collect(OpenAIEngine(serve(Script(text=DOC)).url), sampling))
    srv = serve(Script(text=DOC, drop_after=5, drops=2, drop_style=style))
    chunks = collect(OpenAIEngine(srv.url), sampling)
    assert joined(chunks) == reference
    assert chunks[-1].finish_reason == "stop"
    assert [c.finish_reason is not None for c in chunks].count(True) == 1
    prompts = [r.body["prompt"] for r in srv.completions]
    assert len(prompts) == 3
    for prompt in prompts:  # every continuation is the base prompt + a prefix of the answer
        assert prompt.startswith(BASE) and DOC.startswith(prompt[len(BASE) :])
    if style != "reset":  # an RST may discard data already sent; FIN and [DONE] do not
        first_five = cut_points(DOC, (1, 3, 2, 4))[4][1]
        assert prompts[1] == BASE + DOC[:first_five]
        assert prompts[2] == BASE + DOC[: cut_points(DOC, (1, 3, 2, 4))[9][1]]


def test_a_drop_after_the_last_piece_needs_no_resume(serve) -> None:
    srv = serve(Script(text="abcdefghij", pieces=(2,), drop_after=5, drop_style="close"))
    chunks = collect(OpenAIEngine(srv.url), Sampling(max_tokens=100))
    assert joined(chunks) == "abcdefghij" and chunks[-1].finish_reason == "stop"
    assert sum(c.tokens for c in chunks) == 5  # no usage report came: one per piece
    assert len(srv.completions) == 1 and srv.usage_sent == []


def test_resume_keeps_the_token_budget(serve) -> None:
    script = Script(text=DOC, drop_after=4, drop_style="close")
    srv = serve(script)
    sampling = Sampling(max_tokens=12)
    chunks = collect(OpenAIEngine(srv.url), sampling)
    assert [r.body["max_tokens"] for r in srv.completions] == [12, 8]
    assert joined(chunks) == "".join(expected(script, sampling).pieces)
    assert chunks[-1].finish_reason == "length"
    assert sum(c.tokens for c in chunks) == 12


def test_min_tokens_shrinks_on_resume(serve) -> None:
    srv = serve(Script(text=DOC, drop_after=4, drop_style="close"))
    collect(OpenAIEngine(srv.url), Sampling(max_tokens=100, min_tokens=10))
    assert [r.body.get("min_tokens") for r in srv.completions] == [10, 6]


def test_too_many_drops_is_an_error(serve) -> None:
    srv = serve(Script(text=DOC, drop_after=2, drops=100, drop_style="close"))
    engine = OpenAIEngine(srv.url, max_resumes=2)
    with pytest.raises(EngineError, match="dropped the stream 3 times"):
        collect(engine, Sampling(max_tokens=500))
    assert len(srv.completions) == 3


def test_unfinished_streams_beyond_the_limit_are_an_error(serve) -> None:
    srv = serve(Script(text=DOC, drop_after=2, drops=100, drop_style="done"))
    with pytest.raises(EngineError, match="unfinished 2 times"):
        collect(OpenAIEngine(srv.url, max_resumes=1), Sampling(max_tokens=500))


def test_wrong_key_names_the_env_var_and_the_key_is_a_bearer_header(serve) -> None:
    srv = serve(Script(text=DOC, api_key="s3cret"))
    with pytest.raises(EngineError, match="LONGWRITE_API_KEY") as info:
        OpenAIEngine(srv.url)
    assert "\n" not in str(info.value) and "401" in str(info.value)
    with pytest.raises(EngineError, match="LONGWRITE_API_KEY"):
        OpenAIEngine(srv.url, api_key="wrong")
    engine = OpenAIEngine(srv.url, api_key="s3cret")
    assert joined(collect(engine, Sampling(max_tokens=500))).startswith("<think>")
    assert srv.requests[-1].headers["authorization"] == "Bearer s3cret"
    assert srv.requests[-2].headers["authorization"] == "Bearer s3cret"  # /v1/models too


def test_unknown_model_names_it_and_what_is_served(serve) -> None:
    srv = serve(Script(text=DOC, models=("alpha", "beta")))
    with pytest.raises(EngineError, match="'gamma'.*alpha, beta"):
        OpenAIEngine(srv.url, "gamma")
    engine = OpenAIEngine(srv.url, "beta")
    srv.script.models = ("alpha",)  # the server restarted with another model
    with pytest.raises(EngineError, match="'beta'.*it serves: alpha \\(.*does not exist"):
        collect(engine, Sampling())


def test_model_and_context_come_from_the_server(serve) -> None:
    srv = serve(Script(text=DOC, models=("first", "second"), max_model_len=4096))
    engine = OpenAIEngine(srv.url.removeprefix("http://") + "/")
    assert (engine.info.name, engine.info.model, engine.info.context) == ("openai", "first", 4096)
    assert engine.info.details == {"server": srv.url + "/v1"}
    collect(engine, Sampling(max_tokens=3))
    assert srv.completions[-1].body["model"] == "first"
    bare = serve(Script(text=DOC, max_model_len=None))
    assert OpenAIEngine(bare.url + "/v1").info.context is None


def test_request_fields_and_extra_body_only_when_set(serve) -> None:
    srv = serve(Script(text=DOC))
    engine = OpenAIEngine(srv.url)
    collect(engine, Sampling(max_tokens=50, temperature=0.3, top_p=0.8, seed=7))
    body = srv.completions[-1].body
    assert body["prompt"] == BASE and body["stream"] is True
    assert (body["max_tokens"], body["temperature"], body["top_p"]) == (50, 0.3, 0.8)
    assert (body["seed"], body["n"], body["stop"]) == (7, 1, list(DEFAULT_STOP))
    assert body["stream_options"] == {"include_usage": True}
    assert not {"min_tokens", "top_k", "repetition_penalty"} & body.keys()
    collect(engine, Sampling(max_tokens=50, min_tokens=5, top_k=20, repetition_penalty=1.1))
    body = srv.completions[-1].body
    assert (body["min_tokens"], body["top_k"], body["repetition_penalty"]) == (5, 20, 1.1)


def test_two_candidates_are_interleaved_by_index(serve) -> None:
    other = "<think>Other plan.</think><answer>A second, different answer.</answer>"
    script = Script(text=DOC, others=(other,))
    srv = serve(script)
    sampling = Sampling(max_tokens=500, n=2)
    chunks = collect(OpenAIEngine(srv.url), sampling)
    assert {c.index for c in chunks} == {0, 1}
    first_indices = [c.index for c in chunks[:4]]
    assert first_indices == [0, 1, 0, 1]
    for index in (0, 1):
        mine = [c for c in chunks if c.index == index]
        assert joined(mine) == "".join(expected(script, sampling, index).pieces)
        assert [c.finish_reason is not None for c in mine] == [False] * (len(mine) - 1) + [True]
    assert srv.completions[-1].body["n"] == 2


def test_two_candidates_are_not_resumed(serve) -> None:
    srv = serve(Script(text=DOC, drop_after=3, drop_style="close"))
    with pytest.raises(EngineError, match="n=1"):
        collect(OpenAIEngine(srv.url), Sampling(max_tokens=500, n=2))


def test_no_server_fails_fast() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(EngineError, match="cannot reach the server.*connection refused") as info:
        OpenAIEngine(url)
    assert time.monotonic() - started < 10
    assert url in str(info.value) and "longwrite serve" in str(info.value)


def test_server_gone_between_setup_and_stream(serve) -> None:
    srv = serve(Script(text=DOC))
    engine = OpenAIEngine(srv.url)
    srv.__exit__(None, None, None)
    with pytest.raises(EngineError, match="cannot reach the server"):
        collect(engine, Sampling())


def test_a_slow_server_still_streams(serve) -> None:
    text = "<answer>slowly, piece by piece"  # 13 pieces, 0.06 s apart: 0.78 s in all
    srv = serve(Script(text=text, delay=0.06))
    started = time.monotonic()
    chunks = collect(OpenAIEngine(srv.url, timeout=0.5), Sampling(max_tokens=100))
    assert joined(chunks) == text and chunks[-1].finish_reason == "stop"
    assert time.monotonic() - started > 0.5  # longer than the timeout, as a whole


def test_a_hanging_server_times_out(serve) -> None:
    srv = serve(Script(text=DOC, hang=30))
    engine = OpenAIEngine(srv.url, timeout=1)
    started = time.monotonic()
    with pytest.raises(EngineError, match=r"1 s \(the timeout\)"):
        collect(engine, Sampling())
    assert time.monotonic() - started < 5


def test_server_failure_is_a_server_error(serve) -> None:
    srv = serve(Script(text=DOC, status=500))
    with pytest.raises(ServerError, match="HTTP 500: scripted failure") as info:
        collect(OpenAIEngine(srv.url), Sampling())
    assert info.value.exit_code == 1 and isinstance(info.value, LongwriteError)
    assert len(srv.completions) == 1  # a generation is not retried blindly


def test_an_error_event_mid_stream_is_a_server_error(serve) -> None:
    srv = serve(Script(text=DOC, error_after=3))
    chunks: list[Chunk] = []
    with pytest.raises(ServerError, match="failed: scripted engine crash"):
        chunks.extend(OpenAIEngine(srv.url).stream(BASE, Sampling()))
    assert len(chunks) == 3 and len(srv.completions) == 1


def test_a_stall_mid_stream_times_out(serve) -> None:
    srv = serve(Script(text=DOC, delay=3))  # headers at once, then nothing for 3 s
    with pytest.raises(EngineError, match=r"0.5 s \(the timeout\)"):
        collect(OpenAIEngine(srv.url, timeout=0.5), Sampling())


def test_a_bad_request_is_one_line_with_the_servers_message(serve) -> None:
    srv = serve(Script(text=DOC))
    with pytest.raises(EngineError, match="HTTP 400: prompt is not the base prompt"):
        collect(OpenAIEngine(srv.url), Sampling(), prompt="something else")


def test_closing_the_stream_closes_the_connection(serve) -> None:
    srv = serve(Script(text="x" * 4000, delay=0.005))  # about 6 s if read to the end
    engine = OpenAIEngine(srv.url)
    stream = engine.stream(BASE, Sampling(max_tokens=5000, stop=()))
    for _, _chunk in zip(range(10), stream, strict=False):
        pass
    started = time.monotonic()
    stream.close()
    assert time.monotonic() - started < 1
    assert srv.client_gone.wait(3)
    assert srv.pieces_sent < 200
    # the engine is still usable afterwards
    assert joined(collect(engine, Sampling(max_tokens=3, stop=()))) == "x" * 6


def test_closed_engine_refuses_to_stream(serve) -> None:
    engine = OpenAIEngine(serve(Script(text=DOC)).url)
    engine.close()
    engine.close()  # twice is fine
    with pytest.raises(EngineError, match="closed"):
        collect(engine, Sampling())
    assert engine.count_tokens("some text") is None


@pytest.mark.parametrize(
    ("given", "url"),
    [
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000/v1"),
        ("http://127.0.0.1:8000/", "http://127.0.0.1:8000/v1"),
        ("http://host:8000/v1", "http://host:8000/v1"),
        ("https://host/v1/", "https://host/v1"),
        ("host:8000", "http://host:8000/v1"),
    ],
)
def test_normalise_url(given: str, url: str) -> None:
    assert normalise_url(given) == url


@pytest.mark.parametrize("bad", ["ftp://host", "http://", ""])
def test_bad_urls_are_refused(bad: str) -> None:
    with pytest.raises(EngineError, match="bad server URL"):
        normalise_url(bad)


def test_from_env_reads_server_and_key(serve, monkeypatch: pytest.MonkeyPatch) -> None:
    srv = serve(Script(text=DOC, api_key="k1"))
    monkeypatch.setenv("LONGWRITE_SERVER", srv.url)
    monkeypatch.setenv("LONGWRITE_API_KEY", "k1")
    engine = from_env(None, None)
    assert engine.info.details["server"] == srv.url + "/v1"
    assert srv.requests[-1].headers["authorization"] == "Bearer k1"


def test_from_env_explicit_server_wins(serve, monkeypatch: pytest.MonkeyPatch) -> None:
    srv = serve(Script(text=DOC, models=("m",)))
    monkeypatch.setenv("LONGWRITE_SERVER", f"http://127.0.0.1:{free_port()}")
    monkeypatch.delenv("LONGWRITE_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-not-for-this-server")
    engine = from_env(srv.url, "m")
    assert engine.info.model == "m"
    assert srv.requests[-1].headers["authorization"] == "Bearer EMPTY"


def test_from_env_without_a_server_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LONGWRITE_SERVER", raising=False)
    with pytest.raises(EngineError, match="LONGWRITE_SERVER"):
        from_env(None, None)
