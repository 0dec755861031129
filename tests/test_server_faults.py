"""Servers that misbehave the way real ones do, through real HTTP on 127.0.0.1.

- llama.cpp's server streams one chunk per token, some with empty text, and sends no usage
  report: token counts (budgets, resumes, tokens/s) must still be right.
- A proxy answering 502 (or 400, or a page that is not JSON) fails in milliseconds, so it
  always has the fewest lines in flight: it must be backed off, and its lines re-sent to the
  healthy servers, not drained into failures.
- One request slower than the timeout is a failed request, not a dead server.
- `--concurrency` is per server.
- Two `batch` runs on one OUT: the second is refused (exit 2).
- Transport errors raised in the middle of a stream, as older `openai` clients let them
  through, become the one-line errors.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
from packaging.requirements import Requirement
from sse_server import Script, ScriptedServer, plan
from test_batch_servers import (
    BASE as BATCH_BASE,
)
from test_batch_servers import (
    EchoServer,
    batch_argv,
    check_output,
    slow,
    wait_for,
    write_input,
)

from longwrite.batch.input import read_items
from longwrite.batch.pool import FAILED, REJECTED, EnginePool
from longwrite.batch.runner import run_batch
from longwrite.cli.batch import run_batch_command
from longwrite.engines.base import Chunk, EngineError, Sampling
from longwrite.engines.openai import OpenAIEngine, ServerError
from longwrite.errors import LongwriteError
from longwrite.io.jsonl import AppendLog

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "PROMPT:"
# No stop string inside: every token the server generates is sent.
TEXT = (
    "<think>Plan: three parts; keep it short.</think>\n<answer>\n# Tides\n\n"
    "The moon pulls the sea. Twice a day the water climbs the harbour wall, "
    "and twice a day it falls back. Gulls wait on the posts for the ebb."
)
NO_STOP = Sampling(max_tokens=500, stop=())


@pytest.fixture
def serve():
    servers: list[ScriptedServer] = []

    def start(script: Script, cls: type[ScriptedServer] = ScriptedServer) -> ScriptedServer:
        server = cls(script).__enter__()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.__exit__(None, None, None)


def generated(script: Script, sampling: Sampling, index: int = 0) -> int:
    """The tokens the server generates for an uninterrupted stream (its own plan)."""
    return plan(script.candidate(index), 0, script, sampling.max_tokens, list(sampling.stop)).tokens


# ---------------------------------------------------------------- 11: token counts


def test_llama_cpp_blank_tokens_are_counted_without_usage(serve) -> None:
    script = Script(text=TEXT, blank_every=3, usage=False)
    srv = serve(script)
    chunks = list(OpenAIEngine(srv.url).stream(PROMPT, NO_STOP))
    assert "".join(c.text for c in chunks) == TEXT and chunks[-1].finish_reason == "stop"
    assert srv.usage_sent == []  # no usage report: the count is the engine's own
    blanks = sum(1 for c in chunks if not c.text and c.finish_reason is None)
    assert blanks >= 10
    assert sum(c.tokens for c in chunks) == generated(script, NO_STOP)


def test_llama_cpp_resume_keeps_the_token_budget(serve) -> None:
    script = Script(text=TEXT, blank_every=2, usage=False, drop_after=6, drop_style="close")
    srv = serve(script)
    chunks = list(OpenAIEngine(srv.url).stream(PROMPT, Sampling(max_tokens=20, stop=())))
    # 6 tokens came before the drop (3 of them blank): the resume asks for the 14 left
    assert [r.body["max_tokens"] for r in srv.completions] == [20, 14]
    assert chunks[-1].finish_reason == "length"
    assert sum(c.tokens for c in chunks) == 20


def test_the_servers_usage_wins_over_the_chunk_count(serve) -> None:
    script = Script(text=TEXT, blank_every=3)
    srv = serve(script)
    chunks = list(OpenAIEngine(srv.url).stream(PROMPT, NO_STOP))
    assert sum(c.tokens for c in chunks) == srv.usage_sent[-1] == generated(script, NO_STOP)


def test_llama_cpp_blank_tokens_are_counted_per_candidate(serve) -> None:
    script = Script(text=TEXT, others=(TEXT[:80],), blank_every=2, usage=False)
    srv = serve(script)
    sampling = Sampling(max_tokens=500, stop=(), n=2)
    chunks = list(OpenAIEngine(srv.url).stream(PROMPT, sampling))
    for i in (0, 1):
        mine = [c for c in chunks if c.index == i]
        assert sum(c.tokens for c in mine) == generated(script, sampling, i)


# ---------------------------------------------------------------- 16: errors mid-stream


class _Completion:
    """The shape of one streamed completion chunk of the `openai` client."""

    def __init__(self, text: str) -> None:
        choice = type("Choice", (), {"text": text, "finish_reason": None, "index": 0})
        self.choices = [choice()]
        self.usage = None


class _RaisingStream:
    """A stream that yields `pieces`, then raises `error`, as an older client does."""

    def __init__(self, pieces: list[str], error: BaseException) -> None:
        self.pieces, self.error = pieces, error

    def __iter__(self):
        for piece in self.pieces:
            yield _Completion(piece)
        raise self.error

    def close(self) -> None:
        pass


def _raising_engine(serve, monkeypatch, error: BaseException) -> OpenAIEngine:
    engine = OpenAIEngine(serve(Script(text=TEXT)).url, timeout=2)

    def create(**kwargs: Any) -> _RaisingStream:
        return _RaisingStream(["one ", "two "], error)

    monkeypatch.setattr(engine._generate.completions, "create", create)
    return engine


def test_a_raw_read_timeout_mid_stream_is_the_timeout_error(serve, monkeypatch) -> None:
    request = httpx2.Request("POST", "http://127.0.0.1/v1/completions")
    engine = _raising_engine(serve, monkeypatch, httpx2.ReadTimeout("timed out", request=request))
    with pytest.raises(EngineError, match=r"sent nothing for 2 s \(the timeout\)"):
        list(engine.stream(PROMPT, NO_STOP))


@pytest.mark.parametrize(
    "error",
    [
        httpx2.DecodingError("bad gzip"),
        httpx2.TooManyRedirects("loop"),
        OSError(104, "Connection reset by peer"),
    ],
    ids=["decoding", "redirects", "oserror"],
)
def test_any_network_error_mid_stream_is_one_line(serve, monkeypatch, error) -> None:
    engine = _raising_engine(serve, monkeypatch, error)
    with pytest.raises(LongwriteError, match="the server at http://127.0.0.1") as info:
        list(engine.stream(PROMPT, NO_STOP))
    assert "\n" not in str(info.value)


def test_an_event_that_is_not_json_is_a_server_error(serve) -> None:
    srv = serve(Script(text=TEXT, junk_after=3))
    chunks: list[Chunk] = []
    with pytest.raises(ServerError, match="not JSON"):
        chunks.extend(OpenAIEngine(srv.url).stream(PROMPT, NO_STOP))
    assert len(chunks) == 3


def test_an_event_that_is_not_json_is_one_line_through_the_cli(tmp_path: Path) -> None:
    with EchoServer(Script(pieces=(8,), junk_after=2)) as srv:
        env = {**os.environ, "LONGWRITE_SERVER": ""}
        argv = [sys.executable, "-m", "longwrite", "Write about tides.", "--server", srv.url]
        proc = subprocess.run(
            argv + ["--max-rounds", "0"], capture_output=True, text=True, timeout=120, env=env
        )
    assert "Traceback" not in proc.stderr
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("longwrite: error:")]
    assert errors == [
        f"longwrite: error: the server at {srv.url}/v1 sent an event that is not JSON"
    ]


def test_the_openai_bound_is_a_client_that_wraps_stream_errors() -> None:
    """openai 3.14.0 is the first release whose streams raise APITimeoutError /
    APIConnectionError for transport errors mid-stream (its changelog: "normalize errors
    raised while reading streams"); older ones let httpx's own exceptions through."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    (spec,) = [
        Requirement(d).specifier
        for d in project["project"]["dependencies"]
        if Requirement(d).name == "openai"
    ]
    assert not spec.contains("3.13.0") and spec.contains("3.14.0")
    assert spec.contains(openai.__version__)


# ---------------------------------------------------------------- 12, 13: failing servers


def _run(tmp_path: Path, urls: list[str], concurrency: int = 2) -> tuple[int, list[str]]:
    ids = write_input(tmp_path / "in.jsonl", 12)
    code = run_batch_command(
        tmp_path / "in.jsonl", tmp_path / "out.jsonl", BATCH_BASE, urls, concurrency
    )
    return code, ids


PROXY_502 = "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"


@pytest.mark.parametrize(
    "fault",
    [
        Script(status=502, status_body=PROXY_502),
        Script(status=400),
        Script(pieces=(8,), junk_after=1),
    ],
    ids=["proxy-502", "400", "not-json"],
)
def test_a_fast_failing_server_is_backed_off(tmp_path: Path, capsys, fault: Script) -> None:
    with EchoServer(slow()) as a, EchoServer(fault) as bad, EchoServer(slow()) as c:
        started = time.monotonic()
        code, ids = _run(tmp_path, [a.url, bad.url, c.url])
        took = time.monotonic() - started
        err = capsys.readouterr().err
        assert code == 0, err
        records = check_output(tmp_path / "out.jsonl", ids)  # every id exactly once
        assert {r["prompt"] for r in records} <= set(a.questions() + c.questions())
        assert len(bad.completions) <= 4  # backed off: not handed every line
        assert f"server {bad.url}" in err and "backing off" in err
        assert "error: line" not in err
        assert took < 20


def test_a_request_slower_than_the_timeout_does_not_retire_the_server(tmp_path: Path) -> None:
    """The first request hangs past the timeout; the server is healthy after that."""
    ids = write_input(tmp_path / "in.jsonl", 8)
    items, _ = read_items(tmp_path / "in.jsonl", BATCH_BASE)
    warnings: list[str] = []
    with EchoServer(Script(pieces=(8,), hang=30, faults=1)) as srv:
        pool = EnginePool(
            [(f"server {srv.url}", OpenAIEngine(srv.url, timeout=0.5))],
            servers=True,
            warn=warnings.append,
            backoff=0.05,
        )
        log = AppendLog(tmp_path / "out.jsonl")
        outcome = run_batch(items, pool, log, BATCH_BASE, concurrency=2, warn=warnings.append)
        log.close()
        pool.close()
    assert not outcome.all_dead and not outcome.failed and outcome.written == 8, warnings
    assert not any("retired" in w for w in warnings)
    assert len(srv.completions) == 9  # the one that timed out ran again
    check_output(tmp_path / "out.jsonl", ids)


def test_a_server_that_keeps_failing_is_taken_out(tmp_path: Path) -> None:
    ids = write_input(tmp_path / "in.jsonl", 10)
    items, _ = read_items(tmp_path / "in.jsonl", BATCH_BASE)
    warnings: list[str] = []
    with EchoServer(slow(0.005)) as good, EchoServer(Script(status=503)) as bad:
        engines = [(f"server {u}", OpenAIEngine(u)) for u in (good.url, bad.url)]
        pool = EnginePool(engines, servers=True, warn=warnings.append, backoff=0.01)
        log = AppendLog(tmp_path / "out.jsonl")
        outcome = run_batch(items, pool, log, BATCH_BASE, concurrency=1, warn=warnings.append)
        log.close()
        pool.close()
    assert outcome.written == 10 and not outcome.failed
    assert pool.slots[1].dead is not None and pool.slots[0].dead is None
    assert any(f"server {bad.url}" in w and "retired" in w for w in warnings)
    assert len(bad.completions) == 3  # three failures in a row, each after a back-off
    check_output(tmp_path / "out.jsonl", ids)


def test_a_line_that_fails_everywhere_fails_once_tried_on_each(tmp_path: Path) -> None:
    """A 400 on every server is the line's own fault: it fails, the servers live on."""
    ids = write_input(tmp_path / "in.jsonl", 4)
    with EchoServer(Script(status=400)) as a, EchoServer(Script(status=400)) as b:
        items, _ = read_items(tmp_path / "in.jsonl", BATCH_BASE)
        engines = [(f"server {u}", OpenAIEngine(u)) for u in (a.url, b.url)]
        warnings: list[str] = []
        pool = EnginePool(engines, servers=True, warn=warnings.append, backoff=0.01)
        log = AppendLog(tmp_path / "out.jsonl")
        outcome = run_batch(items, pool, log, BATCH_BASE, concurrency=1, warn=warnings.append)
        log.close()
        pool.close()
    assert len(outcome.failed) == 4 and outcome.written == 0 and not outcome.all_dead
    assert all("HTTP 400" in why for _, why in outcome.failed)
    assert len(a.completions) + len(b.completions) == 8  # each line once on each server
    assert all(s.dead is None for s in pool.slots)
    assert not (tmp_path / "out.jsonl").exists() or AppendLog(tmp_path / "out.jsonl").load() == []
    assert len(ids) == 4


class _Named:
    def __init__(self, name: str) -> None:
        self.name = name

    def close(self) -> None:
        pass


def test_pool_counts_one_failure_per_episode_and_probes_after_the_pause() -> None:
    warnings: list[str] = []
    engines = [(n, _Named(n)) for n in "ab"]
    pool = EnginePool(engines, servers=True, warn=warnings.append, per_slot=3, backoff=0.2)
    a, b = pool.slots
    held = [pool.acquire() for _ in range(6)]
    assert [s.name for s in held] == ["a", "b", "a", "b", "a", "b"]
    episode = a.episode
    for _ in range(3):  # three lines in flight on a fail together: one failure, not three
        pool.failed(a, episode, FAILED, "HTTP 502")
        pool.release(a)
    assert a.strikes == 1 and a.dead is None and len(warnings) == 1
    assert "backing off 0.2 s" in warnings[0]
    for _ in range(3):
        pool.release(b)
    assert [pool.acquire().name for _ in range(3)] == ["b", "b", "b"]  # a is paused
    time.sleep(0.25)
    pool.release(b)
    probe = pool.acquire()
    assert probe is a and pool.acquire() is b  # a: one line at a time until one succeeds
    pool.release(b)
    assert pool.acquire() is b
    pool.release(a)
    pool.succeeded(a, a.episode)
    assert a.failures == a.strikes == 0 and a.until <= time.monotonic()
    pool.failed(a, a.episode - 1, FAILED, "late")  # started before the failure: not counted
    assert a.strikes == 0


def test_pool_refusals_do_not_retire_and_a_lone_server_is_not_paused() -> None:
    pool = EnginePool([("a", _Named("a")), ("b", _Named("b"))], servers=True, warn=lambda m: None)
    a, b = pool.slots
    for _ in range(5):
        pool.failed(a, a.episode, REJECTED, "HTTP 400")
    assert a.dead is None and a.strikes == 0 and a.failures == 5
    pool.retire(b, "connection refused")
    pool.succeeded(a, a.episode)
    pool.failed(a, a.episode, REJECTED, "HTTP 400")
    assert a.failures == 0 and a.until <= time.monotonic()  # nowhere else to go


# ---------------------------------------------------------------- 14: concurrency per server


def test_concurrency_is_per_server(tmp_path: Path) -> None:
    with EchoServer(slow(0.01)) as a, EchoServer(slow(0.01)) as b:
        code, ids = _run(tmp_path, [a.url, b.url], concurrency=2)
    assert code == 0
    assert a.most_in_flight == 2 and b.most_in_flight == 2
    check_output(tmp_path / "out.jsonl", ids)


# ---------------------------------------------------------------- 15: one writer per OUT


@pytest.mark.slow
def test_a_second_batch_on_the_same_output_is_refused(tmp_path: Path) -> None:
    ids = write_input(tmp_path / "in.jsonl", 10)
    out = tmp_path / "out.jsonl"
    with EchoServer(slow(0.02)) as srv:  # about 0.75 s a line: the first run takes ~7 s
        argv = batch_argv() + [str(tmp_path / "in.jsonl"), "-o", str(out), "--server", srv.url]
        argv += ["--concurrency", "1", "--max-tokens", "200", "--max-rounds", "0"]
        env = {**os.environ, "LONGWRITE_SERVER": ""}
        first = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        try:
            wait_for(lambda: out.exists() and out.read_bytes().count(b"\n") >= 1, "a result")
            second = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env)
            assert first.poll() is None, "the first run ended before the second started"
            assert second.returncode == 2
            assert second.stderr.strip().splitlines() == [
                f"longwrite: error: another longwrite run is writing {out} (pid {first.pid}); "
                "wait for it to finish or stop it"
            ]
            _, first_err = first.communicate(timeout=120)
        finally:
            if first.poll() is None:
                first.kill()
        assert first.returncode == 0, first_err
        check_output(out, ids)  # every id exactly once, no interleaved line
        again = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env)
        assert again.returncode == 0 and "all 10 lines are in" in again.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "out.jsonl"]
