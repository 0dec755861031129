"""`longwrite batch` over scripted OpenAI-compatible servers (tests/sse_server.py): lines
spread over several servers, a server killed mid-run, every server dead, and the command
itself killed with SIGKILL and run again.

The scripted server answers one fixed prompt; `EchoServer` answers any prompt in the think
template with a text naming the prompt's own question, so every output line can be checked
against its input line. Requests are slowed a little (`Script.delay` per piece) so that
several are in flight when something is killed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sse_server import Script, ScriptedServer, _Handler, _HTTPServer, plan

from longwrite.batch.input import prompt_id
from longwrite.batch.runner import BatchFailed
from longwrite.cli.batch import run_batch_command
from longwrite.generate.job import WriteOptions
from longwrite.io.counting import count_words
from longwrite.io.jsonl import AppendLog

USER, ASSISTANT = "<|user|>: ", " <|assistant|>:"
BASE = WriteOptions(prompt="", max_tokens=200, max_rounds=0)
WAIT_S = 30.0  # the longest any test waits for a condition


def question(prompt: str) -> str:
    return prompt[prompt.rindex(USER) + len(USER) : prompt.rindex(ASSISTANT)]


def reply(q: str) -> str:
    """The scripted completion for question `q`: 40 words that end with the question."""
    return f"<think>plan</think><answer>{'lorem ipsum ' * 20}Answer to: {q}"


class _EchoHandler(_Handler):
    def _plan(self, body: dict[str, Any]) -> list | None:
        prompt, n = body.get("prompt"), int(body.get("n") or 1)
        if not isinstance(prompt, str) or USER not in prompt or ASSISTANT not in prompt:
            return None
        end = prompt.rindex(ASSISTANT) + len(ASSISTANT)
        text, done = reply(question(prompt)), prompt[end:]
        if not text.startswith(done):
            return None
        stop = body.get("stop") or []
        max_tokens = int(body.get("max_tokens") or 16)
        return [plan(text, len(done), self.owner.script, max_tokens, stop) for _ in range(n)]


class EchoServer(ScriptedServer):
    """A ScriptedServer that answers every prompt of the think template."""

    def __enter__(self) -> EchoServer:
        self._httpd = _HTTPServer(("127.0.0.1", 0), _EchoHandler)
        self._httpd.owner = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def questions(self) -> list[str]:
        return [question(r.body["prompt"]) for r in self.completions]


def slow(delay: float = 0.004) -> Script:
    return Script(pieces=(8,), delay=delay)


def write_input(path: Path, n: int) -> list[str]:
    """n prompts, ids given to every other line; returns the ids the output must have."""
    ids, lines = [], []
    for i in range(n):
        prompt = f"Write about item number {i}."
        obj: dict[str, Any] = {"prompt": prompt, "type": "t" + str(i % 3)}
        if i % 2:
            obj["id"] = f"id-{i}"
        lines.append(json.dumps(obj))
        ids.append(obj.get("id", prompt_id(prompt)))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return ids


def check_output(path: Path, ids: list[str]) -> list[dict]:
    """Every id exactly once, no torn line, each answer for its own prompt."""
    raw = path.read_bytes()
    assert raw.endswith(b"\n")
    records = [json.loads(line) for line in raw.decode("utf-8").splitlines()]
    assert sorted(r["id"] for r in records) == sorted(ids)
    for r in records:
        assert r["answer"].endswith(f"Answer to: {r['prompt']}")
        assert r["finish_reason"] == "stop"
        assert r["words"] == 40 + 2 + count_words(r["prompt"])  # lorem ipsum, "Answer to"
    return records


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


@pytest.mark.slow
def test_three_servers_one_killed_mid_run(tmp_path: Path, capsys) -> None:
    ids = write_input(tmp_path / "in.jsonl", 18)
    out = tmp_path / "out.jsonl"
    with EchoServer(slow()) as a, EchoServer(slow()) as c:
        b = EchoServer(slow()).__enter__()
        killed: list[str] = []

        def kill_b() -> None:
            wait_for(lambda: len(b.completions) >= 2, "the second request to b")
            killed.extend(b.questions())  # b has these in flight (or finished) now
            b.__exit__(None, None, None)

        killer = threading.Thread(target=kill_b, daemon=True)
        killer.start()
        code = run_batch_command(tmp_path / "in.jsonl", out, BASE, [a.url, b.url, c.url], 6)
        killer.join(WAIT_S)
        assert code == 0
        records = check_output(out, ids)
        err = capsys.readouterr().err
        assert f"server {b.url}" in err and "retired" in err
        survivors = a.questions() + c.questions()
        lost = [q for q in killed if q in survivors]
        assert lost, "no prompt of the killed server was sent again"
        # before the kill, the load went to all three servers
        assert a.completions and c.completions and len(killed) >= 2
        by_prompt = {r["prompt"]: r for r in records}
        assert set(lost) <= set(by_prompt)


@pytest.mark.slow
def test_every_server_dead_keeps_what_finished(tmp_path: Path, capsys) -> None:
    ids = write_input(tmp_path / "in.jsonl", 10)
    out = tmp_path / "out.jsonl"
    a = EchoServer(slow()).__enter__()

    def kill_a() -> None:
        wait_for(lambda: out.exists() and out.read_bytes().count(b"\n") >= 2, "2 results")
        a.__exit__(None, None, None)

    killer = threading.Thread(target=kill_a, daemon=True)
    killer.start()
    with pytest.raises(BatchFailed, match="every server failed") as failed:
        run_batch_command(tmp_path / "in.jsonl", out, BASE, [a.url], 2)
    killer.join(WAIT_S)
    assert failed.value.exit_code == 1
    kept = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert 2 <= len(kept) < 10
    with EchoServer(Script(pieces=(8,))) as fresh:
        assert run_batch_command(tmp_path / "in.jsonl", out, BASE, [fresh.url], 4) == 0
        assert len(fresh.completions) == 10 - len(kept)  # only what was missing
    check_output(out, ids)


def test_a_line_the_server_refuses_fails_alone(tmp_path: Path, capsys) -> None:
    """An HTTP error is the line's failure, not the server's death: the others finish."""
    (tmp_path / "in.jsonl").write_text(
        json.dumps({"prompt": "fine", "id": "ok"})
        + "\n"
        + json.dumps({"prompt": "x", "id": "bad", "max_tokens": 10**9})
        + "\n",
        encoding="utf-8",
    )

    class Strict(_EchoHandler):
        def _plan(self, body):
            return None if body.get("max_tokens", 0) > 10**6 else super()._plan(body)

    class StrictServer(EchoServer):
        def __enter__(self):
            super().__enter__()
            self._httpd.RequestHandlerClass = Strict
            return self

    with StrictServer(Script(pieces=(8,))) as srv:
        code = run_batch_command(tmp_path / "in.jsonl", tmp_path / "out.jsonl", BASE, [srv.url], 2)
    assert code == 1
    err = capsys.readouterr().err
    assert "line 2 (id bad)" in err and "HTTP 400" in err and "retired" not in err
    assert [r["id"] for r in AppendLog(tmp_path / "out.jsonl").load()] == ["ok"]


def test_unreachable_servers_are_skipped_at_start(tmp_path: Path, capsys) -> None:
    ids = write_input(tmp_path / "in.jsonl", 3)
    with EchoServer(Script(pieces=(8,))) as srv:
        dead = "http://127.0.0.1:9"  # discard port: nothing listens
        servers = tmp_path / "servers.txt"
        servers.write_text(f"# two servers\n{dead}\n{srv.url}  # the live one\n", encoding="utf-8")
        from longwrite.batch.pool import server_urls

        urls = server_urls(None, servers)
        assert urls == [dead, srv.url]
        assert run_batch_command(tmp_path / "in.jsonl", tmp_path / "out.jsonl", BASE, urls, 2) == 0
    assert f"skipping {dead}" in capsys.readouterr().err
    check_output(tmp_path / "out.jsonl", ids)


# ---------------------------------------------------------------- the command, killed

APP = """
import sys
from longwrite.cli import app as cli
from longwrite.cli.batch import batch_command
cli.app.registered_commands = [c for c in cli.app.registered_commands if c.name != "batch"]
cli.app.command("batch")(batch_command)
cli.main(sys.argv[1:])
"""


def batch_argv() -> list[str]:
    """`python -m longwrite batch` once cli.py registers the command; until then a script
    that registers it the same way and runs `cli.main`."""
    from longwrite.cli import app as cli
    from longwrite.cli.batch import batch_command

    if any(c.callback is batch_command for c in cli.app.registered_commands):
        return [sys.executable, "-m", "longwrite", "batch"]
    return [sys.executable, "-c", APP, "batch"]


@pytest.mark.slow
def test_killed_with_sigkill_then_run_again(tmp_path: Path) -> None:
    ids = write_input(tmp_path / "in.jsonl", 12)
    out = tmp_path / "out.jsonl"
    with EchoServer(slow(0.01)) as srv:
        argv = batch_argv() + [str(tmp_path / "in.jsonl"), "-o", str(out), "--server", srv.url]
        argv += ["--concurrency", "2", "--max-tokens", "200", "--max-rounds", "0"]
        env = {**os.environ, "LONGWRITE_SERVER": ""}
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        try:
            wait_for(lambda: out.exists() and out.read_bytes().count(b"\n") >= 3, "3 results")
            proc.send_signal(signal.SIGKILL)
            proc.wait(WAIT_S)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == -signal.SIGKILL
        kept = out.read_bytes()
        lines = kept.decode("utf-8").splitlines()
        assert 3 <= len(lines) < 12
        assert all(isinstance(json.loads(line), dict) for line in lines)
        # as if the kill had landed in the middle of a write
        out.write_bytes(kept + b'{"id": "id-11", "prompt": "Write about it')
        asked = len(srv.completions)
        again = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env)
        assert again.returncode == 0, again.stderr
        assert "torn line" in again.stderr
        assert "batch: " in again.stderr and f"{len(lines)} already there" in again.stderr
        assert len(srv.completions) - asked == 12 - len(lines)
    check_output(out, ids)


def test_malformed_lines_exit_1_through_the_command(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"prompt": "fine", "id": 1}\n{"prompt": 3}\n\n[]\n', encoding="utf-8")
    with EchoServer(Script(pieces=(8,))) as srv:
        argv = batch_argv() + [str(src), "-o", str(tmp_path / "out.jsonl"), "--server", srv.url]
        proc = subprocess.run(
            argv + ["--max-rounds", "0"], capture_output=True, text=True, timeout=120
        )
    assert proc.returncode == 1, proc.stderr
    assert f"{src}:2: no `prompt` text; line skipped" in proc.stderr
    assert f"{src}:4: expected a JSON object, got list; line skipped" in proc.stderr
    assert [r["id"] for r in AppendLog(tmp_path / "out.jsonl").load()] == [1]


def test_a_user_mistake_is_one_line_and_exit_2(tmp_path: Path) -> None:
    argv = batch_argv() + [str(tmp_path / "missing.jsonl"), "-o", str(tmp_path / "out.jsonl")]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"longwrite: error: cannot read {tmp_path / 'missing.jsonl'}: no such file"
    ]
