"""`batch` against servers whose replies or model lists are not what they should be.

Beside a healthy server, a misbehaving one is the server's fault: it is backed off (or, when
its model list is not one, skipped) and its lines go to the healthy one; no line fails and
every id is written once. Alone, a server that turns bad in the middle of the run ends it
with exit 1 and one error line for the run, OUT keeps every line finished before the fault
(whole, each the answer to its own prompt), and the same command finishes the rest."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from sse_server import Script
from test_batch_servers import BASE, EchoServer, batch_argv, check_output, slow, write_input

from faults import MODELS, STREAM, WHOLE, Mode, ids
from faults.common import env, errors
from longwrite.cli.batch import run_batch_command

HEALTHY = 3  # requests a server answers well before it turns bad


def early(mode: Mode) -> dict:
    """`mode`'s script, its fault after 2 pieces (a batch reply here is about 40 pieces)."""
    return {k: (2 if k.endswith("_after") and v else v) for k, v in mode.script.items()}


@pytest.mark.parametrize("mode", WHOLE + MODELS, ids=ids(WHOLE + MODELS))
def test_a_misbehaving_server_beside_a_healthy_one_costs_no_line(tmp_path, capsys, mode):
    ids_ = write_input(tmp_path / "in.jsonl", 8)
    with EchoServer(slow()) as good, EchoServer(Script(pieces=(8,), **mode.script)) as bad:
        code = run_batch_command(
            tmp_path / "in.jsonl", tmp_path / "out.jsonl", BASE, [good.url, bad.url], 2
        )
        asked_bad = len(bad.completions)
    err = capsys.readouterr().err
    assert code == 0, err
    assert errors(err) == []
    check_output(tmp_path / "out.jsonl", ids_)  # every id once, each its own answer
    if mode in MODELS:
        assert asked_bad == 0 and f"skipping {bad.url}" in err and mode.says in err
    else:
        assert asked_bad <= 4 and f"server {bad.url}" in err and "backing off" in err


BAD_LATER = WHOLE + [m for m in STREAM if m.name in ("event-nested", "event-choices-5")]


@pytest.mark.slow
@pytest.mark.parametrize("mode", BAD_LATER, ids=ids(BAD_LATER))
def test_a_lone_server_turning_bad_keeps_every_finished_line(tmp_path, capsys, mode):
    ids_ = write_input(tmp_path / "in.jsonl", 6)
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    stream = ["--stream"] if mode in STREAM else []
    with EchoServer(Script(pieces=(8,), healthy=HEALTHY, **early(mode))) as srv:
        argv = batch_argv() + [str(src), "-o", str(out), "--server", srv.url, *stream]
        argv += ["--concurrency", "1", "--max-tokens", "200", "--max-rounds", "0"]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env())
    assert proc.returncode == 1, proc.stderr
    said = errors(proc.stderr)
    assert said[-1].startswith("longwrite: error: every server failed; ")
    assert said[-1].endswith("keeps what finished: run the same command again to finish")
    assert all(mode.says in line for line in said[:-1])  # a line reported failed names why
    kept = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(kept) == HEALTHY  # each finished line is there, whole
    check_output(out, [r["id"] for r in kept])
    with EchoServer(Script(pieces=(8,))) as good:
        code = run_batch_command(src, out, BASE, [good.url], 2)
        assert len(good.completions) == 6 - HEALTHY  # only the lines not in OUT
    assert code == 0, capsys.readouterr().err
    check_output(out, ids_)


def test_batch_refuses_to_write_into_its_input(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    write_input(src, 2)
    before = src.read_bytes()
    proc = subprocess.run(
        batch_argv() + [str(src), "-o", str(tmp_path / "." / "in.jsonl"), "--server", "x:1"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env(),
    )
    assert proc.returncode == 2
    (line,) = errors(proc.stderr)
    assert "is also what this command reads" in line
    assert src.read_bytes() == before
