"""Evaluation faults from the correctness issue (items 17-19), each through the real commands:

- 17: the produced word count (`words`) and the required length (`length`) never share a
  field, so `eval length` on output whose input gave no length refuses it (one line, exit 2)
  instead of scoring the answer against its own length;
- 18: a judge verdict counts only for the answer it was given for (and the judge that gave it);
- 19: `eval report` writes the page and its plots and nothing else.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sse_server import Script
from test_batch_servers import BASE as SERVER_BASE
from test_batch_servers import EchoServer
from test_eval_quality import JudgeServer, answer
from typer.testing import CliRunner

from longwrite.cli.batch import run_batch_command
from longwrite.cli.eval import eval_app
from longwrite.errors import LongwriteError
from longwrite.evaluate.length import length_score
from longwrite.evaluate.quality import (
    DIMENSIONS,
    judge_file,
    load_items,
    server_judge,
)
from longwrite.evaluate.report import write_report
from longwrite.evaluate.summary import summarize_quality
from longwrite.io.counting import count_words

ROOT = Path(__file__).resolve().parents[1]


def longwrite(*args: str) -> subprocess.CompletedProcess[str]:
    """The real command in a child process, importing this checkout."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "longwrite", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("longwrite: error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


# ---------------------------------------------------------------- 17: count vs required length


def test_eval_length_refuses_batch_output_whose_input_gave_no_length(tmp_path: Path) -> None:
    (tmp_path / "in.jsonl").write_text(
        json.dumps({"id": "t", "prompt": "Write about tides.", "words": 30})
        + "\n"
        + json.dumps({"id": "n", "prompt": "Write about nothing in particular."})
        + "\n",
        encoding="utf-8",
    )
    out = tmp_path / "out.jsonl"
    with EchoServer(Script(pieces=(8,))) as srv:
        assert run_batch_command(tmp_path / "in.jsonl", out, SERVER_BASE, [srv.url], 2) == 0
    records = {r["id"]: r for r in map(json.loads, out.read_text("utf-8").splitlines())}
    # the produced count and the required length are two fields, never one
    for r in records.values():
        assert r["words"] == count_words(r["answer"])
    assert records["t"]["length"] == 30
    assert "length" not in records["n"]
    line_n = 1 + [json.loads(x)["id"] for x in out.read_text("utf-8").splitlines()].index("n")

    error = one_error_line(longwrite("eval", "length", str(out)))
    assert f"{out}:{line_n}: no required length" in error
    assert "`words` is the answer's own word count" in error

    # with only the line that gave a length, it is scored against that length, not its count
    (tmp_path / "t.jsonl").write_text(json.dumps(records["t"]) + "\n", encoding="utf-8")
    proc = longwrite("eval", "length", str(tmp_path / "t.jsonl"), "--json")
    assert proc.returncode == 0, proc.stderr
    produced = records["t"]["words"]
    assert produced != 30
    assert json.loads(proc.stdout)["length_score"] == pytest.approx(length_score(30, produced))
    assert json.loads(proc.stdout)["length_score"] < 100


def test_eval_length_refuses_the_single_run_json_record(tmp_path: Path) -> None:
    """`longwrite PROMPT --json` prints the answer's count in `words` and no target."""
    with EchoServer(Script(pieces=(8,))) as srv:
        run = longwrite("Write about tides.", "--server", srv.url, "--json", "--max-tokens", "200")
    assert run.returncode == 0, run.stderr
    record = json.loads(run.stdout)
    assert record["words"] == count_words(record["answer"]) > 0
    results = tmp_path / "single.jsonl"
    results.write_text(json.dumps(record) + "\n", encoding="utf-8")
    error = one_error_line(longwrite("eval", "length", str(results)))
    assert f"{results}:1: no required length" in error


def test_quality_and_report_refuse_a_malformed_length_and_skip_a_missing_one(
    tmp_path: Path,
) -> None:
    results = tmp_path / "r.jsonl"
    rows = [
        {"id": "a", "prompt": "p", "length": 4, "answer": "one two three four"},
        {"id": "b", "prompt": "q", "words": 2, "answer": "one two"},  # no required length
    ]
    results.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    items = load_items(results)
    assert items[0].length is not None and items[0].length.score == 100.0
    assert items[1].length is None  # `words` is not read as a target
    page = tmp_path / "report.md"
    write_report(results, page)
    text = page.read_text("utf-8")
    assert "| S_l (length) | 100.00 | 1 |" in text
    assert "1 item(s) give no required length (`length`): left out of S_l." in text

    results.write_text(
        json.dumps(rows[0]) + "\n" + json.dumps({**rows[1], "length": "many"}) + "\n",
        encoding="utf-8",
    )
    with pytest.raises(LongwriteError, match=r"r.jsonl:2: `length` must be a positive whole"):
        load_items(results)
    error = one_error_line(longwrite("eval", "report", str(results), "-o", str(page)))
    assert "r.jsonl:2:" in error


# ---------------------------------------------------------------- 18: verdicts by content


def rows_with(answers: dict[str, str]) -> list[dict[str, object]]:
    return [
        {"id": k, "prompt": f"Write {k}.", "length": 10, "answer": a} for k, a in answers.items()
    ]


def write_rows(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_regenerated_answers_under_the_same_ids_are_judged_again(tmp_path: Path) -> None:
    results = tmp_path / "run.jsonl"
    scores = tmp_path / "run.quality.jsonl"
    first = {"a": answer("GOOD:555555", 10), "b": answer("GOOD:111111", 10)}
    write_rows(results, rows_with(first))
    with JudgeServer(Script()) as judge:
        complete, engine = server_judge(judge.url, None, timeout=10)
        old = judge_file(load_items(results), complete, scores, retries=0, backoff=0)
        assert old["b"].quality == 0.0 and len(judge.completions) == 2
        # the outputs are regenerated with the same ids: b is a new answer, a is the same
        write_rows(results, rows_with({**first, "b": answer("GOOD:444444", 10)}))
        items = load_items(results)
        new = judge_file(items, complete, scores, retries=0, backoff=0)
        engine.close()
    assert len(judge.completions) == 3  # b asked again; a (unchanged) reused
    assert judge.calls == {"GOOD555555": 1, "GOOD111111": 1, "GOOD444444": 1}
    assert new["a"].quality == 100.0 and new["b"].quality == 75.0
    # the report reads the same scores file and shows b's new score, not the old one
    page = tmp_path / "report.md"
    write_report(results, page)
    assert summarize_quality(items, new).total.quality == pytest.approx(87.5)
    assert "| S_q (quality) | 87.50 | 2 |" in page.read_text("utf-8")


def test_a_report_never_shows_a_verdict_for_another_answer(tmp_path: Path) -> None:
    results = tmp_path / "run.jsonl"
    write_rows(results, rows_with({"a": answer("GOOD:555555", 10)}))
    with JudgeServer(Script()) as judge:
        complete, engine = server_judge(judge.url, None, timeout=10)
        judge_file(load_items(results), complete, tmp_path / "run.quality.jsonl", backoff=0)
        engine.close()
    write_rows(results, rows_with({"a": answer("GOOD:111111", 10)}))  # regenerated, not judged
    page = tmp_path / "report.md"
    write_report(results, page)
    text = page.read_text("utf-8")
    assert "| S_q (quality) | - | 0 |" in text
    assert "## Unscored" in text and "`a`" in text


def test_another_judge_model_judges_again(tmp_path: Path) -> None:
    results = write_rows(tmp_path / "run.jsonl", rows_with({"a": answer("GOOD:555555", 10)}))
    runner = CliRunner()
    with JudgeServer(Script(models=("judge-a", "judge-b"))) as judge:
        for model, asked in (("judge-a", 1), ("judge-a", 1), ("judge-b", 2)):
            args = ["quality", str(results), "--judge", judge.url, "--judge-model", model]
            out = runner.invoke(eval_app, [*args, "--json"])
            assert out.exit_code == 0, out.output
            assert len(judge.completions) == asked, model
    records = [json.loads(x) for x in (tmp_path / "run.quality.jsonl").read_text().splitlines()]
    assert [r["judge"].split("@")[0] for r in records] == ["judge-a", "judge-b"]
    assert all(set(r["scores"]) == set(DIMENSIONS) for r in records)


def test_any_failure_of_the_judge_request_is_retried_then_unscored(tmp_path: Path) -> None:
    results = write_rows(tmp_path / "run.jsonl", rows_with({"a": "x", "b": "y"}))
    calls: list[str] = []

    def complete(text: str) -> str:
        calls.append(text)
        if "Write a." in text:
            raise json.JSONDecodeError("Expecting value", "<html>502</html>", 0)
        raise KeyError("choices")  # not one of our errors: the client's own

    scores = tmp_path / "s.jsonl"
    verdicts = judge_file(load_items(results), complete, scores, retries=1, backoff=0)
    assert len(calls) == 4  # both asked twice: a failure is retried, never fatal
    assert verdicts["a"].scores is None and "JSONDecodeError" in (verdicts["a"].error or "")
    assert verdicts["b"].scores is None and "KeyError" in (verdicts["b"].error or "")
    assert len(scores.read_text().splitlines()) == 2  # recorded as unscored, both


def test_a_verdict_that_cannot_be_written_stops_the_run_with_one_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from longwrite.io.jsonl import AppendLog

    results = write_rows(tmp_path / "run.jsonl", rows_with({k: f"text {k}" for k in "abcd"}))
    scores = tmp_path / "s.jsonl"
    append = AppendLog.append
    calls: list[str] = []

    def full_after_one(self: AppendLog, record: dict[str, object]) -> None:
        if len(calls) > 1:  # the second verdict finds the disk full
            raise LongwriteError(f"cannot write {self.path}: No space left on device")
        append(self, record)

    def complete(text: str) -> str:
        calls.append(text)
        return json.dumps(dict.fromkeys(DIMENSIONS, 4))

    monkeypatch.setattr(AppendLog, "append", full_after_one)
    with pytest.raises(LongwriteError, match="No space left on device"):
        judge_file(load_items(results), complete, scores, concurrency=1, backoff=0)
    assert len(calls) == 2  # the judges stop: no verdict is asked for that cannot be kept
    assert [json.loads(x)["key"] for x in scores.read_text().splitlines()] == ["a"]


@pytest.mark.slow
@pytest.mark.parametrize(("stop", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_while_a_judge_hangs_keeps_the_verdicts_written(
    tmp_path: Path, stop: int, code: int
) -> None:
    results = write_rows(
        tmp_path / "run.jsonl",
        rows_with({"a": "GOOD:555555 x", "b": "HANG x", "c": "GOOD:444444 x"}),
    )
    scores = tmp_path / "run.quality.jsonl"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
    with JudgeServer(Script()) as judge:
        judge.hang = 60.0  # far past the test: only Ctrl-C ends the wait
        args = ["eval", "quality", str(results), "--judge", judge.url, "--concurrency", "1"]
        proc = subprocess.Popen(
            [sys.executable, "-m", "longwrite", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        while judge.calls.get("HANG") is None and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(stop)  # Ctrl-C, or SIGTERM (kill, a scheduler): the same path
        started = time.monotonic()
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err
    assert f"interrupted: what was done is kept in {scores}" in err and "Traceback" not in err
    assert time.monotonic() - started < 5  # not after the hanging request
    assert [json.loads(x)["key"] for x in scores.read_text().splitlines()] == ["a"]


# ---------------------------------------------------------------- 19: eval report is read-only


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize(
    "tail",
    [
        None,  # no scores file at all
        b"",  # a whole scores file
        b'{"key": "a", "scores": {"relev',  # a torn last line (an eval quality killed mid-write)
        b"WHOLE",  # a last record without its newline
    ],
)
def test_eval_report_writes_only_the_page_and_its_plots(tmp_path: Path, tail: bytes | None):
    folder = tmp_path / "run"
    folder.mkdir()
    results = write_rows(
        folder / "run.jsonl",
        rows_with({"a": answer("GOOD:555555", 10), "b": answer("GOOD:333333", 12)}),
    )
    scores = folder / "run.quality.jsonl"
    if tail is not None:
        with JudgeServer(Script()) as judge:
            complete, engine = server_judge(judge.url, None, timeout=10)
            verdicts = judge_file(load_items(results), complete, scores, retries=0, backoff=0)
            engine.close()
        body = scores.read_bytes()
        if tail == b"WHOLE":  # the last record loses its newline
            body = body.rstrip(b"\n")
        scores.write_bytes(body + (b"" if tail == b"WHOLE" else tail))
        assert verdicts["a"].quality == 100.0
    before = snapshot(folder)
    out = longwrite("eval", "report", str(results), "-o", str(folder / "report.md"))
    assert out.returncode == 0, out.stderr
    after = snapshot(folder)
    new = sorted(set(after) - set(before))
    assert new == ["report.length.png", "report.md", "report.scores.png"]
    assert {k: after[k] for k in before} == before  # nothing else created, cut or extended
    page = (folder / "report.md").read_text("utf-8")
    if tail is not None:
        assert "| S_q (quality) | 75.00 | 2 |" in page  # both verdicts read, torn tail skipped
