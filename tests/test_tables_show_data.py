"""The evaluation tables print ids, types, domains and file names as they are.

rich reads `[...]` in a string as a style tag: a type such as "[draft]" vanished from the
table, and an id such as "[/INST]" (common in chat-formatted datasets) crashed `eval length`
with a MarkupError traceback. The tables' consoles take such strings as plain text."""

from __future__ import annotations

import json
from pathlib import Path

import test_arena as arena_tests
import test_writingbench as wb_tests
from judge_servers import judge
from typer.testing import CliRunner

from longwrite.cli.eval import eval_app

ODD = "[/INST]"


def lines(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_eval_length(tmp_path):
    results = lines(tmp_path / "r.jsonl", [
        {"id": ODD, "type": "[draft]", "length": 100, "answer": "one two three"},
        {"id": "b", "type": "[bold]essay", "length": 10, "answer": "one"},
    ])  # fmt: skip
    out = CliRunner().invoke(eval_app, ["length", str(results)])
    assert out.exit_code == 0, out.output
    for text in (ODD, "[draft]", "[bold]essay"):
        assert text in out.stdout


def test_eval_quality(tmp_path):
    from test_judge_chat import ratings

    results = lines(tmp_path / "r.jsonl", [
        {"id": "a", "type": ODD, "prompt": "Write.", "answer": "GOOD:555555 text", "length": 2},
    ])  # fmt: skip
    with judge(ratings) as server:
        out = CliRunner().invoke(eval_app, ["quality", str(results), "--judge", server.url])
    assert out.exit_code == 0, out.output
    assert ODD in out.stdout


def test_eval_writingbench(tmp_path):
    queries = [dict(q, domain1=f"{ODD} {q['domain1']}") for q in wb_tests.QUERIES]
    results = lines(tmp_path / "out.jsonl", wb_tests.RESULTS)
    wb = lines(tmp_path / "wb.jsonl", queries)
    with judge(wb_tests.critic) as server:
        args = ["writingbench", str(results), "--queries", str(wb), "--critic", server.url,
                "--retries", "0"]  # fmt: skip
        out = CliRunner().invoke(eval_app, args)
    assert f"{ODD} Academic" in out.stdout, out.output


def test_eval_arena(tmp_path):
    lines(tmp_path / "arena.jsonl", arena_tests.PROMPTS)
    mine = lines(tmp_path / "mine[v2].jsonl", arena_tests.STRONG)
    with judge(arena_tests.scripted) as server:
        args = ["arena", str(mine), "--baselines", str(tmp_path / "arena.jsonl"),
                "--judge", server.url, "--retries", "0", "--rounds", "20"]  # fmt: skip
        out = CliRunner().invoke(eval_app, args)
    assert out.exit_code == 0, out.output
    assert "mine[v2]" in out.stdout
