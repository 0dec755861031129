"""The main command and `continue` against servers that misbehave mid-stream or in their model
list: each ends with its exit code and one error line, never a traceback, and every byte the
server sent before the fault is in the document (stdout or `-o FILE`'s `.partial`) and the
run log; `continue` then carries the run on to the document an uninterrupted run writes."""

from __future__ import annotations

from pathlib import Path

import pytest
from sse_server import ScriptedServer

from faults import MODELS, STREAM, Mode, ids
from faults.common import (
    QUESTION,
    TEXT,
    answer_of,
    cli,
    errors,
    logged,
    read,
    script,
    sent,
)

pytestmark = pytest.mark.slow


def run_with(mode: Mode, *args: str) -> tuple:
    """(the process, pieces the server sent, its URL) of `longwrite ARGS` on a `mode` server."""
    rounds = [] if args[0] == "continue" else ["--max-rounds", "0"]
    with ScriptedServer(script(**mode.script)) as srv:
        proc = cli(*args, "--server", srv.url, *rounds)
        return proc, srv.pieces_sent, srv.url


@pytest.mark.parametrize("mode", STREAM, ids=ids(STREAM))
@pytest.mark.parametrize("into", ["stdout", "file"])
def test_a_fault_mid_stream_keeps_every_byte_sent_before_it(mode: Mode, into: str, tmp_path):
    doc = tmp_path / "tides.md"
    out = ["-o", str(doc)] if into == "file" else []
    proc, pieces, url = run_with(mode, QUESTION, *out)
    assert proc.returncode == mode.code, proc.stderr
    (line,) = errors(proc.stderr)
    assert mode.says in line and f"the server at {url}/v1" in line
    raw = sent(pieces)
    record = logged()
    assert record["status"] == "failed" and mode.says in record["error"]
    assert record["raw"] == raw and len(answer_of(raw)) > 100  # the log has every byte
    kept = proc.stdout if into == "stdout" else read(Path(f"{doc}.partial"))
    assert kept == answer_of(raw)  # and so has the document
    assert not doc.exists()


AGAIN = [m for m in STREAM if m.name in ("event-nested", "event-choices-5", "drops")]


@pytest.mark.parametrize("mode", AGAIN, ids=ids(AGAIN))  # (each is 4 processes: 3 of the 6)
def test_continue_meets_the_fault_again_then_finishes(mode: Mode, tmp_path, fast_whole):
    proc, first, _ = run_with(mode, QUESTION)
    assert proc.returncode == mode.code, proc.stderr
    run = logged()["id"]
    again, more, _ = run_with(mode, "continue", run)
    assert again.returncode == mode.code, again.stderr
    (line,) = errors(again.stderr)
    assert mode.says in line
    record = logged(run)
    # The continuation resumed where the log ended: the two faulty streams, back to back.
    assert record["raw"] == sent(first + more) and record["status"] == "failed"
    assert again.stdout == answer_of(sent(first + more))[len(answer_of(sent(first))) :]
    with ScriptedServer(script()) as good:
        done = cli("continue", run, "--server", good.url, "-o", str(tmp_path / "doc.md"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "doc.md").read_text(encoding="utf-8") == fast_whole
    assert logged(run)["raw"] == TEXT and logged(run)["status"] == "done"


@pytest.fixture(scope="module")
def fast_whole(tmp_path_factory) -> str:
    """The document an uninterrupted run writes (-o FILE)."""
    target = tmp_path_factory.mktemp("whole") / "doc.md"
    with ScriptedServer(script()) as srv:
        proc = cli(QUESTION, "--server", srv.url, "--max-rounds", "0", "-o", str(target))
    assert proc.returncode == 0, proc.stderr
    return target.read_text(encoding="utf-8")


@pytest.mark.parametrize("mode", MODELS, ids=ids(MODELS))
def test_a_model_list_that_is_not_one_is_the_servers_fault(mode: Mode, tmp_path) -> None:
    proc, pieces, url = run_with(mode, QUESTION, "-o", str(tmp_path / "doc.md"))
    assert proc.returncode == mode.code
    (line,) = errors(proc.stderr)
    assert line.startswith(f"longwrite: error: the server at {url}/v1 answered GET /models")
    assert mode.says in line and len(line) < 400
    assert pieces == 0 and list(tmp_path.iterdir()) == []  # nothing asked, nothing written


def test_a_url_the_http_library_cannot_read_is_one_line() -> None:
    proc = cli(QUESTION, "--server", "http://[::1")
    assert proc.returncode == 2
    assert errors(proc.stderr) == [
        "longwrite: error: bad server URL 'http://[::1': use http://HOST:PORT"
    ]
