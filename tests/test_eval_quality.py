"""`longwrite eval quality`: the judge's reply parser, S_q against hand-computed values, and a
scripted judge server (tests/sse_server.py) that answers well, badly, slowly or not at all.

The judge server reads a marker at the start of the judged answer: `GOOD:543215` replies
with those six ratings, `FENCED:...` wraps them in prose and a code fence, `FLAKY:...`
replies with prose the first time and the ratings after, `MALFORMED` never gives ratings,
`SLOW:...` answers late but in time, `HANG` answers after the client's timeout, `FAIL` gets
HTTP 500.
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any

import pytest
from sse_server import Script, ScriptedServer, _Handler, _HTTPServer, error_body, plan
from test_judge import BYTES_PER_SERVER_TOKEN, LONG, ContextServer
from typer.testing import CliRunner

from longwrite.cli.eval import eval_app
from longwrite.errors import LongwriteError
from longwrite.evaluate.quality import (
    DIMENSIONS,
    JUDGE_MAX_TOKENS,
    Verdict,
    answer_digest,
    default_scores_path,
    judge_file,
    judge_prompt,
    judge_template,
    load_items,
    parse_judgement,
    quality_score,
    rescale,
    server_judge,
)
from longwrite.evaluate.summary import summarize_quality
from longwrite.io.jsonl import AppendLog

# ---------------------------------------------------------------- pure parts


def test_rescale_and_item_score() -> None:
    assert [rescale(s) for s in (1, 2, 3, 4, 5)] == [0.0, 25.0, 50.0, 75.0, 100.0]
    scores = dict(zip(DIMENSIONS, (5, 4, 3, 2, 1, 5), strict=True))
    assert quality_score(scores) == pytest.approx((100 + 75 + 50 + 25 + 0 + 100) / 6)


def test_parse_judgement_reads_json_where_it_is() -> None:
    expected = dict(zip(DIMENSIONS, (4.0, 3.0, 5.0, 4.0, 2.0, 3.0), strict=True))
    plain = json.dumps(dict(zip(DIMENSIONS, (4, 3, 5, 4, 2, 3), strict=True)))
    assert parse_judgement(plain) == expected
    fenced = (
        "Here is my assessment {of sorts}.\n```json\n"
        '{"Relevance": 4, "Accuracy": "3", "Coherence": 5, "Clarity": 4.0, '
        '"Breadth and Depth": 2, "Reading Experience": 3}\n```\nThanks.'
    )
    assert parse_judgement(fenced) == expected


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        ("The response is good.", "no JSON object"),
        ('{"score": 5}', "no JSON object"),
        ('{"relevance": 4, "accuracy": 3}', "no rating for coherence"),
        (json.dumps(dict.fromkeys(DIMENSIONS, 6)), "outside 1-5"),
        (json.dumps(dict.fromkeys(DIMENSIONS, 0)), "outside 1-5"),
        (json.dumps(dict.fromkeys(DIMENSIONS, "good")), "not a number"),
        (json.dumps(dict.fromkeys(DIMENSIONS, True)), "not a number"),
    ],
)
def test_parse_judgement_rejects_what_is_not_six_ratings(reply: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_judgement(reply)


def test_judge_prompt_puts_texts_in_once_and_tells_the_judge_to_ignore_length() -> None:
    template = judge_template()
    assert "length" in template.lower() and "json" in template.lower()
    text = judge_prompt("Write {answer} about {prompt}", "The answer {prompt}.")
    assert "Write {answer} about {prompt}" in text and "The answer {prompt}." in text
    assert text.count("{prompt}") == 2 and text.count("{answer}") == 1  # only the user's


# ---------------------------------------------------------------- the scripted judge

MARK = re.compile(r"\[Response\]\n(\w+)(?::(\d{6}))?")


def ratings_json(digits: str) -> str:
    return json.dumps(dict(zip(DIMENSIONS, map(int, digits), strict=True)))


class _JudgeHandler(_Handler):
    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        self._record(body)
        match = MARK.search(body.get("prompt", ""))
        kind, digits = (match.group(1), match.group(2)) if match else ("NONE", None)
        owner: JudgeServer = self.owner  # type: ignore[assignment]
        calls = owner.count(kind + (digits or ""))
        if kind == "FAIL":
            self._send_json(500, error_body(500, "the judge crashed"))
            return
        if kind == "HANG" and owner.stopping.wait(owner.hang):
            return
        if kind == "SLOW":
            owner.stopping.wait(0.3)
        if kind in ("GOOD", "SLOW") or (kind == "FLAKY" and calls > 1):
            text = ratings_json(digits)
        elif kind == "FENCED":
            text = f"My scores:\n```json\n{ratings_json(digits)}\n```"
        else:
            text = "I found it quite good overall."
        try:
            self._stream(body, [plan(text, 0, owner.script, 10_000, [])])
        except OSError:
            self.close_connection = True


class JudgeServer(ScriptedServer):
    hang: float = 3.0

    def __post_init__(self) -> None:
        super().__post_init__()
        self.calls: dict[str, int] = {}

    def count(self, key: str) -> int:
        with self._lock:
            self.calls[key] = self.calls.get(key, 0) + 1
            return self.calls[key]

    def __enter__(self) -> JudgeServer:
        self._httpd = _HTTPServer(("127.0.0.1", 0), _JudgeHandler)
        self._httpd.owner = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self


def answer(marker: str, words: int) -> str:
    """`marker` (one counted word: digits do not count) and filler up to `words` words."""
    return marker + " " + " ".join(["word"] * (words - 1))


def write_results(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


HAND = [
    {"id": "a", "type": "essay", "length": 100, "answer": answer("GOOD:555555", 100)},
    {"id": "b", "type": "essay", "length": 100, "answer": answer("GOOD:333333", 50)},
    {"id": "c", "type": "story", "length": 200, "answer": answer("GOOD:543215", 400)},
    {"id": "d", "type": "story", "length": 200, "answer": answer("MALFORMED", 200)},
    {"id": "e", "type": "story", "answer": answer("FLAKY:444444", 10)},
]


def hand_file(tmp_path: Path) -> Path:
    rows = [{"prompt": f"Write piece {r['id']}.", **r} for r in HAND]
    return write_results(tmp_path / "results.jsonl", rows)


def test_quality_scores_against_hand_computed_values(tmp_path: Path) -> None:
    results = hand_file(tmp_path)
    items = load_items(results)
    with JudgeServer(Script()) as judge:
        complete, engine = server_judge(judge.url, None, timeout=10)
        verdicts = judge_file(
            items, complete, default_scores_path(results), concurrency=3, retries=1, backoff=0
        )
        engine.close()
    report = summarize_quality(items, verdicts)
    total = report.total
    # S_q over a, b, c, e (d unscored): 100, 50, 350/6, 75
    assert total.quality == pytest.approx((100 + 50 + 350 / 6 + 75) / 4)  # 70.8333
    # S_l over a-d (e has no length): 100, 50 (half as long), 66.67 (twice as long), 100
    assert total.length == pytest.approx((100 + 50 + 200 / 3 + 100) / 4)  # 79.1667
    assert total.overall == pytest.approx(75.0)
    assert (total.n, total.scored) == (5, 4)
    assert total.dimensions == pytest.approx(
        dict(zip(DIMENSIONS, (4.25, 4.0, 3.75, 3.5, 3.25, 4.25), strict=True))
    )
    essay, story = report.by_type["essay"], report.by_type["story"]
    assert (essay.quality, essay.length, essay.overall) == pytest.approx((75.0, 75.0, 75.0))
    assert story.quality == pytest.approx((350 / 6 + 75) / 2)
    assert story.length == pytest.approx((200 / 3 + 100) / 2)
    assert report.unscored == ("d",)
    assert verdicts["d"].scores is None and verdicts["d"].quality is None  # never 0
    assert verdicts["d"].attempts == 2 and "malformed reply" in verdicts["d"].error
    assert verdicts["e"].attempts == 2 and verdicts["e"].quality == 75.0
    assert judge.calls["MALFORMED"] == 2  # one retry, then given up


def test_judge_is_resumable_and_retries_only_the_unscored(tmp_path: Path) -> None:
    results = hand_file(tmp_path)
    items = load_items(results)
    scores = tmp_path / "scores.jsonl"
    with JudgeServer(Script()) as judge:
        complete, engine = server_judge(judge.url, None, timeout=10)
        judge_file(items, complete, scores, concurrency=2, retries=0, backoff=0)
        first = sum(judge.calls.values())
        assert first == 5
        # a crash in the middle of a write left a torn line
        with open(scores, "ab") as f:
            f.write(b'{"key": "b", "scores": {"relev')
        verdicts = judge_file(items, complete, scores, concurrency=2, retries=0, backoff=0)
        engine.close()
    # asked again: d (malformed again) and e (unscored the first time, good now)
    assert sum(judge.calls.values()) - first == 2
    assert judge.calls["MALFORMED"] == 2 and judge.calls["FLAKY444444"] == 2
    assert verdicts["e"].quality == 75.0 and verdicts["d"].scores is None
    records = AppendLog(scores).load()
    assert [r["key"] for r in records].count("e") == 2  # the old verdict stays; the last counts
    assert all(r["quality"] is None or r["scores"] for r in records)


def test_slow_fenced_hanging_and_failing_judges(tmp_path: Path) -> None:
    rows = [
        {"id": "slow", "answer": "SLOW:444444 text"},
        {"id": "fenced", "answer": "FENCED:222222 text"},
        {"id": "hang", "answer": "HANG text"},
        {"id": "fail", "answer": "FAIL text"},
    ]
    results = write_results(tmp_path / "r.jsonl", [{"prompt": "p", **r} for r in rows])
    items = load_items(results)
    with JudgeServer(Script()) as judge:
        judge.hang = 3.0
        complete, engine = server_judge(judge.url, None, timeout=1.0)
        verdicts = judge_file(items, complete, tmp_path / "s.jsonl", retries=1, backoff=0)
        engine.close()
    assert verdicts["slow"].quality == 75.0
    assert verdicts["fenced"].quality == 25.0
    assert verdicts["hang"].scores is None and "timeout" in verdicts["hang"].error
    assert verdicts["fail"].scores is None and "HTTP 500" in verdicts["fail"].error
    assert judge.calls["FAIL"] == 2 and judge.calls["HANG"] == 2
    report = summarize_quality(items, verdicts)
    assert report.total.quality == pytest.approx(50.0)  # the unscored are not zeros
    assert set(report.unscored) == {"hang", "fail"}


def test_items_are_named_by_id_else_line(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text(
        '{"prompt": "p", "answer": "a", "id": 7}\n\n{"prompt": "q", "answer": "b"}\n',
        encoding="utf-8",
    )
    items = load_items(path)
    assert [(i.key, i.line, i.length) for i in items] == [("7", 1, None), ("line:3", 3, None)]
    path.write_text('{"prompt": "p"}\n', encoding="utf-8")
    with pytest.raises(LongwriteError, match=r"r.jsonl:1: needs `prompt` and `answer`"):
        load_items(path)


def test_verdict_json_round_trip() -> None:
    good = Verdict("k", dict.fromkeys(DIMENSIONS, 4.0), 1)
    assert Verdict.from_json(json.loads(json.dumps(good.to_json()))) == good
    assert good.to_json()["quality"] == 75.0
    bad = Verdict("k", None, 3, "malformed reply: no JSON object")
    assert bad.to_json()["quality"] is None
    assert Verdict.from_json({"key": "k", "scores": {"relevance": 9}}) is None


# ---------------------------------------------------------------- the command


def test_eval_quality_command(tmp_path: Path) -> None:
    results = hand_file(tmp_path)
    runner = CliRunner()
    with JudgeServer(Script()) as judge:
        args = ["quality", str(results), "--judge", judge.url, "--retries", "1", "--json"]
        out = runner.invoke(eval_app, args)
    assert out.exit_code == 1, out.output  # one item stayed unscored
    data = json.loads(out.stdout)
    assert data["quality_score"] == pytest.approx(70.8333, abs=1e-4)
    assert data["length_score"] == pytest.approx(79.1667, abs=1e-4)
    assert data["overall"] == pytest.approx(75.0)
    assert data["by_type"]["essay"]["overall"] == pytest.approx(75.0)
    assert data["unscored"] == ["d"]
    assert default_scores_path(results).exists()
    n = len(results.read_text().splitlines())
    # progress on stderr (a plain line off a terminal): every ask, the unscored one counted
    *progress, said = out.stderr.splitlines()
    assert progress[-1] == f"judge: {n - 1}/{n} done, 1 unscored"
    assert said.startswith(f"longwrite: error: 1 of {n} unscored: the judge gave no usable")
    with JudgeServer(Script()) as judge:
        args = ["quality", str(results), "--judge", judge.url, "--retries", "0"]
        table = runner.invoke(eval_app, args)
        assert len(judge.completions) == 1  # only d was asked again
    assert table.stderr.splitlines()[-2] == "judge: 0/1 done, 1 unscored"  # what was asked
    assert "70.83" in table.stdout and "75.00" in table.stdout and "unscored" in table.stdout


def test_a_second_judge_run_on_the_same_scores_file_is_refused(tmp_path: Path) -> None:
    from longwrite.errors import LongwriteError
    from longwrite.evaluate.quality import judge_file, load_items
    from longwrite.io.jsonl import AppendLog

    results = hand_file(tmp_path)
    holder = AppendLog(default_scores_path(results))
    holder.lock()  # another `eval quality` run is writing verdicts
    try:
        with pytest.raises(LongwriteError, match="another longwrite run is writing"):
            judge_file(load_items(results), lambda _: "", default_scores_path(results))
    finally:
        holder.close()


@pytest.mark.parametrize("reported", [4096, None])  # /v1/models says max_model_len, or not
def test_an_answer_longer_than_the_judge_context_is_cut_to_fit(
    tmp_path: Path, reported: int | None
) -> None:
    rows = [
        {"id": "long", "prompt": "Write at length.", "answer": LONG},
        {"id": "short", "prompt": "Write briefly.", "answer": "A short text."},
    ]
    results = write_results(tmp_path / "r.jsonl", rows)
    runner = CliRunner()
    with ContextServer(Script(max_model_len=reported)) as judge:
        judge.context, judge.reply = 4096, ratings_json("444444")
        args = ["quality", str(results), "--judge", judge.url]
        if reported is None:
            args += ["--judge-context", "4096"]  # the server does not say: the user does
        out = runner.invoke(eval_app, [*args, "--json"])
        assert out.exit_code == 0, out.output
        assert len(judge.completions) == 2  # fitted at once: no refusal, no retry
        table = runner.invoke(eval_app, args)  # reused from the scores file, not asked again
        assert len(judge.completions) == 2
    data = json.loads(out.stdout)
    assert (data["unscored"], data["truncated"], data["quality_score"]) == ([], ["long"], 75.0)
    sent = next(r.body["prompt"] for r in judge.completions if "Paragraph 0" in r.body["prompt"])
    assert len(sent.encode()) // BYTES_PER_SERVER_TOKEN + JUDGE_MAX_TOKENS <= 4096
    assert "Paragraph 199" not in sent and "more words are not shown here" in sent
    records = {r["key"]: r for r in AppendLog(default_scores_path(results)).load()}
    assert records["long"]["truncated"] is True and records["short"]["truncated"] is False
    assert records["long"]["answer_sha"] == answer_digest("Write at length.", LONG)  # all of it
    assert table.exit_code == 0 and "1 answer(s) longer than" in table.stdout
