"""`eval report` with WritingBench and Arena-Write scores: their sections and the paper's
published figures beside the user's, only when those scores exist."""

from __future__ import annotations

import json
from pathlib import Path

from judge_servers import judge
from test_arena import PROMPTS, scripted
from test_writingbench import QUERIES, critic, write
from typer.testing import CliRunner

from longwrite.cli.eval import eval_app

ROWS = [
    {"index": 1, "idx": 1, "prompt": "Write a paper.", "answer": "Structure=8 Accuracy=6 Q=9"},
    {"index": 2, "idx": 2, "prompt": "Write a review.", "answer": "Structure=9 Depth=10 Q=8"},
]


def test_report_gains_benchmark_sections_and_the_paper_figures(tmp_path: Path) -> None:
    results = write(tmp_path / "mine.jsonl", ROWS)
    queries = write(tmp_path / "wb.jsonl", QUERIES[:2])
    baselines = write(tmp_path / "arena.jsonl", PROMPTS[:2])
    runner = CliRunner()
    page = tmp_path / "report.md"
    before = runner.invoke(eval_app, ["report", str(results), "-o", str(page)])
    assert before.exit_code == 0, before.output
    assert "WritingBench" not in page.read_text() and "Arena" not in page.read_text()
    with judge(critic) as server:
        args = ["writingbench", str(results), "--queries", str(queries), "--critic", server.url]
        assert runner.invoke(eval_app, args).exit_code == 0
    with judge(scripted) as server:
        args = ["arena", str(results), "--baselines", str(baselines), "--judge", server.url]
        assert runner.invoke(eval_app, [*args, "--rounds", "50"]).exit_code == 0
    out = runner.invoke(eval_app, ["report", str(results), "-o", str(page)])
    assert out.exit_code == 0, out.output
    text = page.read_text()
    assert "## WritingBench" in text and "## Arena-Write" in text
    assert "| all | 2 | 8.25 | 82.50 |" in text  # (7 + 9.5) / 2
    assert "| domain2: Review | 1 | 9.50 | 95.00 |" in text
    assert "## Beside the paper's figures" in text
    assert "| WritingBench (1-10) | LongWriter-Zero-32B | 8.69 |" in text
    assert "| WritingBench (1-10) | **yours** | 8.25 |" in text
    assert "| Arena-Write (Elo) | LongWriter-Zero | 1447 |" in text
    elo = json.loads((tmp_path / "mine.arena.json").read_text())["ratings"]["mine"]["elo"]
    assert f"| Arena-Write (Elo) | **yours: mine** | {elo:.0f} |" in text
    assert "| vs gpt | 2 | 2 | 0 | 0 | 100.0% |" in text
    assert "not the number" in text


def test_a_named_summary_that_is_missing_or_foreign_is_a_user_error(tmp_path: Path) -> None:
    results = write(tmp_path / "mine.jsonl", ROWS)
    page = tmp_path / "report.md"
    runner = CliRunner()
    out = runner.invoke(
        eval_app, ["report", str(results), "-o", str(page), "--arena", str(tmp_path / "no.json")]
    )
    assert "no such file" in str(out.exception)
    foreign = tmp_path / "x.json"
    foreign.write_text("[1, 2]")
    out = runner.invoke(
        eval_app, ["report", str(results), "-o", str(page), "--arena", str(foreign)]
    )
    assert "not a summary" in str(out.exception)
