"""Batch at fleet scale: the two request modes with a connection dropped mid-line, `--shard`
splitting one input over machines, and `batch merge` joining the shards' OUT files.

Servers are the scripted ones of tests/sse_server.py on 127.0.0.1 (`EchoServer` answers any
prompt of the think template with a text that names the prompt's question).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sse_server import Script, tokens_of
from test_batch_servers import BASE, EchoServer, check_output, question, reply, write_input

from longwrite.batch.input import BatchItem, in_shard, parse_shard, read_items, shard_of
from longwrite.batch.pool import STREAM_INTERVAL
from longwrite.cli.batch import run_batch_command
from longwrite.errors import LongwriteError
from longwrite.generate.job import WriteOptions

SCRIPT = dict(pieces=(4,), delay=0.002)  # 4 characters a token, a little slower than instant


def tokens_for(prompt: str) -> int:
    """The tokens the scripted server generates for a line's prompt."""
    return len(tokens_of(reply(prompt), 0, Script(**SCRIPT)))


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_a_connection_dropped_mid_line_completes_it_exactly_once(tmp_path, stream) -> None:
    ids = write_input(tmp_path / "in.jsonl", 6)
    out = tmp_path / "out.jsonl"
    # The first response breaks off: a whole reply after 20 tokens' time, in the middle of
    # its body (TCP reset); a stream after its second event, 1 + STREAM_INTERVAL tokens (the
    # connection closed mid-body, so that what was sent arrives: a reset may discard it).
    drop = {"drop_after": 2, "drop_style": "close"} if stream else {"drop_after": 20}
    with EchoServer(Script(**SCRIPT, **drop, drops=1)) as srv:
        code = run_batch_command(tmp_path / "in.jsonl", out, BASE, [srv.url], 3, stream=stream)
        bodies = [r.body for r in srv.completions]
    assert code == 0
    records = check_output(out, ids)  # every id once, each answer whole and its own
    assert len(bodies) == len(ids) + 1  # the dropped line was asked once more, nothing else
    assert all(bool(b.get("stream")) is stream for b in bodies)
    for r in records:  # the usage counts survive the drop too
        assert r["tokens"] == tokens_for(r["prompt"]), r["id"]
    prompts = [b["prompt"] for b in bodies]
    if stream:  # resumed from the text so far: the template's prompt plus a piece of reply
        assert all(b["stream_interval"] == STREAM_INTERVAL for b in bodies)
        assert all(b["stream_options"]["continuous_usage_stats"] for b in bodies)
        resumed = [p for p in prompts if not p.endswith(" <|assistant|>:")]
        assert len(resumed) == 1
        assert resumed[0].endswith(reply(question(resumed[0]))[: 4 * (1 + STREAM_INTERVAL)])
    else:  # asked again from the start: the same prompt twice
        assert len(set(prompts)) == len(ids)


def test_whole_replies_carry_every_candidate_of_best_of(tmp_path) -> None:
    ids = write_input(tmp_path / "in.jsonl", 2)
    out = tmp_path / "out.jsonl"
    base = WriteOptions(prompt="", max_tokens=200, max_rounds=0, best_of=2)
    with EchoServer(Script(**SCRIPT)) as srv:
        assert run_batch_command(tmp_path / "in.jsonl", out, base, [srv.url], 2) == 0
        assert [b["n"] for b in (r.body for r in srv.completions)] == [2, 2]
    for r in check_output(out, ids):
        each = [c["tokens"] for c in r["candidates"]]  # one usage report for both, shared
        assert each == [tokens_for(r["prompt"])] * 2 and r["tokens"] == sum(each)


# ---------------------------------------------------------------- shards


def items_of(path: Path) -> list[BatchItem]:
    items, problems = read_items(path, WriteOptions(prompt=""))
    assert not problems
    return items


def test_shards_are_fixed_by_the_id_not_the_line(tmp_path) -> None:
    src = tmp_path / "in.jsonl"
    write_input(src, 60)
    before = {i.id: shard_of(i.id, 3) for i in items_of(src)}
    assert sorted(set(before.values())) == [1, 2, 3]
    assert all(len([s for s in before.values() if s == k]) >= 10 for k in (1, 2, 3))
    lines = src.read_text(encoding="utf-8").splitlines()
    edited = [json.dumps({"prompt": "a new first line"}), *lines[:10], *lines[11:]]
    src.write_text("\n".join(edited) + "\n", encoding="utf-8")
    after = {i.id: k for k in (1, 2, 3) for i in in_shard(items_of(src), k, 3)}
    assert all(after[key] == shard for key, shard in before.items() if key in after)
    assert len(after) == 60  # one line deleted, one added


@pytest.mark.parametrize("text", ["0/3", "4/3", "1/0", "x", "1-3", "/3", "1/"])
def test_a_bad_shard_is_one_error(text) -> None:
    with pytest.raises(LongwriteError, match="--shard"):
        parse_shard(text)


def longwrite(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "longwrite", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_three_shards_cover_every_id_once_and_merge(tmp_path) -> None:
    ids = write_input(tmp_path / "in.jsonl", 24)
    outs = [tmp_path / f"out{k}.jsonl" for k in (1, 2, 3)]
    with EchoServer(Script(**SCRIPT)) as srv:
        for k, out in enumerate(outs, start=1):
            code = run_batch_command(tmp_path / "in.jsonl", out, BASE, [srv.url], 4, shard=f"{k}/3")
            assert code == 0
    shards = [[json.loads(line)["id"] for line in o.read_text().splitlines()] for o in outs]
    assert all(shards) and sorted(sum(shards, [])) == sorted(ids)  # each id in one shard
    done = longwrite(
        "batch", "merge", *map(str, outs), "--input", "in.jsonl", "-o", "all.jsonl", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    merged = check_output(tmp_path / "all.jsonl", ids)
    assert [r["id"] for r in merged] == ids  # in the input's order
    assert "24 lines from 3 file(s)" in done.stderr


def fake_out(path: Path, ids: list[str]) -> None:
    rows = [{"id": i, "prompt": "p", "answer": "a"} for i in ids]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


@pytest.mark.parametrize(
    ("parts", "said"),
    [
        ([["id-1", "id-3"], ["id-3", "id-5"]], "1 id(s) in more than one place: 'id-3'"),
        ([["id-1"], ["id-5"]], "1 id(s) of the input are in no file: 'id-3'"),
        ([["id-1", "id-3", "id-5", "id-9"]], "1 id(s) are not in the input: 'id-9'"),
    ],
    ids=["duplicate", "gap", "stranger"],
)
def test_merge_refuses_a_duplicate_or_a_gap_in_one_line(tmp_path, parts, said) -> None:
    rows = [{"prompt": f"p{i}", "id": f"id-{i}"} for i in (1, 3, 5)]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    names = []
    for k, ids in enumerate(parts):
        fake_out(tmp_path / f"o{k}.jsonl", ids)
        names.append(f"o{k}.jsonl")
    done = longwrite("batch", "merge", *names, "-i", "in.jsonl", "-o", "all.jsonl", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert said in done.stderr and "nothing written" in done.stderr
    assert not (tmp_path / "all.jsonl").exists()


def test_merge_names_a_missing_file(tmp_path) -> None:
    (tmp_path / "in.jsonl").write_text(json.dumps({"prompt": "p", "id": "a"}) + "\n")
    done = longwrite("batch", "merge", "nope.jsonl", "-i", "in.jsonl", "-o", "x", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == "longwrite: error: cannot read nope.jsonl: no such file"


def test_an_empty_shard_says_so_and_asks_no_server(tmp_path, capsys) -> None:
    src = tmp_path / "in.jsonl"
    write_input(src, 2)
    empty = next(k for k in range(1, 9) if not in_shard(items_of(src), k, 8))
    out = tmp_path / "out.jsonl"
    code = run_batch_command(src, out, BASE, ["http://127.0.0.1:9"], 1, shard=f"{empty}/8")
    assert code == 0  # nothing to do is not a failure, and the dead server was never asked
    assert f"falls in shard {empty}/8" in capsys.readouterr().err
