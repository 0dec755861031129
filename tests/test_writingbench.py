"""`longwrite eval writingbench`: a hand-made WritingBench fixture, a scripted critic (chat and
completions) whose verdicts are known, means against hand-computed values, a malformed
verdict, resume, and resume after kill -9.

The critic reads its verdict from the response it is shown: `Name=N` in the response is the
score for the criterion called Name; the criterion `Plot` never gets a usable reply.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from judge_servers import judge
from typer.testing import CliRunner

from longwrite.cli.eval import eval_app
from longwrite.evaluate import writingbench as wb

RUBRIC = {band: f"rubric {band}" for band in wb.BANDS}


def crit(name: str) -> dict[str, Any]:
    return {"name": name, "criteria_description": f"How good is the {name.lower()}?", **RUBRIC}


QUERIES = [
    {"index": 1, "domain1": "Academic", "domain2": "Paper", "query": "Write a paper.",
     "checklist": [crit("Structure"), crit("Accuracy")]},
    {"index": 2, "domain1": "Academic", "domain2": "Review", "query": "Write a review.",
     "checklist": [crit("Structure"), crit("Depth")]},
    {"index": 3, "domain1": "Creative", "domain2": "Story", "query": "Write a story.",
     "checklist": [crit("Voice"), crit("Plot"), crit("Structure")]},
    {"index": 4, "domain1": "Creative", "domain2": "Poem", "query": "Write a poem.",
     "checklist": [crit("Voice")]},
]  # fmt: skip
RESULTS = [
    # a response that still holds the thinking: only the answer may reach the critic
    {"index": 1, "response": "<think>Accuracy=1 SECRET</think>\n<answer>Structure=8 Accuracy=6"
                             "</answer>"},
    {"index": "2", "answer": "Structure=9 Depth=10", "thinking": "SECRET plan"},
    {"index": 3, "answer": "Voice=4 Structure=5 Plot=7"},
]  # fmt: skip
# hand-computed: query means 7, 9.5, 4.5 (Plot unscored); query 4 has no answer
EXPECTED = {"overall": 7.0, "Academic": 8.25, "Creative": 4.5, "Paper": 7.0, "Review": 9.5}


def critic(prompt: str) -> str | int:
    name = re.search(r"\[Criterion\]\nName: (\w+)", prompt).group(1)
    response = prompt.split("[Response]\n", 1)[1].split("\n\n[Criterion]", 1)[0]
    if name == "Plot":
        return "The plot is engaging; I would give it a seven."
    score = re.search(rf"{name}=(\d+)", response).group(1)
    verdict = json.dumps({"score": int(score), "reason": f"{name} judged."})
    return f"```json\n{verdict}\n```" if name == "Depth" else verdict


def write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    return write(tmp_path / "out.jsonl", RESULTS), write(tmp_path / "wb.jsonl", QUERIES)


def run(results: Path, queries: Path, url: str, *extra: str) -> Any:
    args = ["writingbench", str(results), "--queries", str(queries), "--critic", url,
            "--retries", "1", "--json", *extra]  # fmt: skip
    return CliRunner().invoke(eval_app, args)


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        ("I like it.", "no JSON object"),
        ('{"score": 11, "reason": "x"}', "outside 1-10"),
        ('{"score": 0, "reason": "x"}', "outside 1-10"),
        ('{"score": 7.5, "reason": "x"}', "not a whole number"),
        ('{"score": true, "reason": "x"}', "not a whole number"),
        ('{"score": "seven", "reason": "x"}', "not a whole number"),
        ('{"score": 7}', "no reason"),
    ],
)
def test_malformed_verdicts_are_rejected(reply: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        wb.parse_verdict(reply)


def test_verdicts_are_read_where_they_are() -> None:
    assert wb.parse_verdict('Verdict:\n```json\n{"score": "8", "reason": " ok "}\n```') == {
        "score": 8,
        "reason": "ok",
    }
    assert wb.parse_verdict('{"score": 9.0, "reason": "fine"}')["score"] == 9


@pytest.mark.parametrize("endpoint", ["--chat", "--completions"])
def test_scores_against_hand_computed_values(files: tuple[Path, Path], endpoint: str) -> None:
    results, queries = files
    with judge(critic) as server:
        out = run(results, queries, server.url, endpoint)
    assert out.exit_code == 1, out.output  # Plot stays unscored
    data = json.loads(out.stdout)
    assert data["overall"]["mean"] == pytest.approx(EXPECTED["overall"])
    assert data["overall"]["x100"] == pytest.approx(10 * EXPECTED["overall"])
    assert data["domain1"]["Academic"]["mean"] == pytest.approx(EXPECTED["Academic"])
    assert data["domain1"]["Creative"] == {"n": 1, "mean": 4.5, "x100": 45.0}
    assert data["domain2"]["Paper"]["mean"] == pytest.approx(EXPECTED["Paper"])
    assert data["domain2"]["Review"]["x100"] == pytest.approx(10 * EXPECTED["Review"])
    assert data["criteria"]["Structure"]["mean"] == pytest.approx((8 + 9 + 5) / 3)
    assert "Plot" not in data["criteria"]  # unscored is not 0
    assert data["per_query"] == {"1": 7.0, "2": 9.5, "3": 4.5}
    assert data["unscored"] == ["3#2"] and data["missing"] == ["4"]
    path = "/v1/chat/completions" if endpoint == "--chat" else "/v1/completions"
    assert {p for p, _ in server.asked} == {path}
    assert len(server.asked) == 6 + 2  # Plot asked twice (one retry)
    assert not any("SECRET" in prompt for _, prompt in server.asked)
    assert all("rubric 9-10" in prompt for _, prompt in server.asked)
    summary = json.loads(results.with_name("out.writingbench.json").read_text())
    assert summary["overall"] == data["overall"]


def test_a_rerun_asks_only_about_the_unscored_and_the_changed(files: tuple[Path, Path]) -> None:
    results, queries = files
    with judge(critic) as server:
        assert run(results, queries, server.url).exit_code == 1
    rows = [dict(r) for r in RESULTS]
    rows[2]["answer"] = "Voice=6 Structure=5 Plot=7"  # query 3 regenerated
    write(results, rows)
    with judge(critic) as server:
        out = run(results, queries, server.url)
    asked = sorted(re.search(r"Name: (\w+)", p).group(1) for _, p in server.asked)
    assert asked == ["Plot", "Plot", "Structure", "Voice"]  # query 3 only
    assert json.loads(out.stdout)["per_query"]["3"] == pytest.approx(5.5)


def test_bad_inputs_are_one_line_errors(files: tuple[Path, Path], tmp_path: Path) -> None:
    results, queries = files
    bad = write(tmp_path / "bad.jsonl", [{"index": 1, "query": "q", "checklist": []}])
    out = run(results, bad, "http://127.0.0.1:9")
    assert out.exit_code != 0 and "checklist" in str(out.exception or out.output)
    unrelated = write(tmp_path / "other.jsonl", [{"index": 99, "answer": "x"}])
    out = run(unrelated, queries, "http://127.0.0.1:9")
    assert "no answer" in str(out.exception or out.output)


@pytest.mark.slow
def test_resume_after_kill_9(files: tuple[Path, Path], tmp_path: Path) -> None:
    results, queries = files
    scores = results.with_name("out.writingbench.jsonl")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    with judge(critic, delay=0.3) as server:
        cmd = [sys.executable, "-m", "longwrite", "eval", "writingbench", str(results),
               "--queries", str(queries), "--critic", server.url, "--concurrency", "1"]  # fmt: skip
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if scores.exists() and scores.read_text().count("\n") >= 2:
                break
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    kept = [json.loads(line) for line in scores.read_text().splitlines() if line.strip()]
    assert 2 <= len(kept) < 7
    with judge(critic) as server:
        out = run(results, queries, server.url)
    done = [r for r in kept if r["score"] is not None]
    assert len(server.asked) == 7 + 1 - len(done)  # what was recorded is not asked again
    data = json.loads(out.stdout)
    assert data["overall"]["mean"] == pytest.approx(EXPECTED["overall"])


def test_batch_takes_writingbench_queries_directly(files: tuple[Path, Path]) -> None:
    from longwrite.batch.input import read_items
    from longwrite.generate.job import WriteOptions

    _, queries = files
    items, problems = read_items(queries, WriteOptions(prompt=""))
    assert problems == []
    assert [(it.id, it.prompt) for it in items] == [(str(q["index"]), q["query"]) for q in QUERIES]
    assert items[0].fields["checklist"] == QUERIES[0]["checklist"]  # carried to the output
