"""The judged evaluations (`eval quality`, `writingbench`, `arena`) against a judge that
answers well, then turns bad: a 100,000-brace reply, a 3 MB value, a proxy's page, a reply
of another shape, HTTP 500; and one whose model list is a page.

Each command ends with exit 1 and one error line (how many are unscored, and why, in a
line of bounded length: a 3 MB reply is never quoted, nor stored in a verdict), never a
traceback; the verdicts given before the judge turned bad stay in the verdict log, and the
same command with a good judge asks only about the rest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from judge_servers import judge
from sse_server import Script

from faults import JUDGE_MODES, PAGE, judge_reply
from faults.common import errors
from longwrite.cli.app import main

pytestmark = pytest.mark.slow  # 19 judge runs, up to a few seconds each (a 3 MB reply, 100k braces)
GOOD_AT_FIRST = 2  # asks the judge answers well before it turns bad
QUALITY = json.dumps({d: 4 for d in ("relevance", "accuracy", "coherence", "clarity",
                                     "breadth_and_depth", "reading_experience")})  # fmt: skip
BIG = "x" * 3_000_000
GOOD = {  # the good reply of each judge, and the reply with a 3 MB value in its verdict
    "quality": (QUALITY, '{"relevance": "' + BIG + '"}'),
    "writingbench": ('{"score": 7, "reason": "clear and complete"}',
                     '{"score": 7, "reason": "' + BIG + '"}'),
    "arena": ('{"winner": "A"}', '{"winner": "' + BIG + '"}'),
}  # fmt: skip


def write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def crit(name: str) -> dict:
    bands = {band: f"rubric {band}" for band in ("1-2", "3-4", "5-6", "7-8", "9-10")}
    return {"name": name, "criteria_description": f"How good is the {name}?", **bands}


def inputs(kind: str, tmp: Path) -> tuple[list[str], Path, int]:
    """(the eval's arguments before --judge, its verdict log, how many asks it makes)."""
    answers = [{"id": str(i), "idx": str(i), "index": str(i), "prompt": f"Write {i}.",
                "answer": f"Essay {i} about the sea.", "length": 6} for i in range(4)]  # fmt: skip
    results = write(tmp / "results.jsonl", answers)
    if kind == "quality":
        return ["quality", str(results), "--concurrency", "1"], tmp / "results.quality.jsonl", 4
    if kind == "writingbench":
        queries = [{"index": str(i), "query": f"Write {i}.", "checklist": [crit("a"), crit("b")]}
                   for i in range(4)]  # fmt: skip
        args = ["writingbench", str(results), "--queries", str(write(tmp / "q.jsonl", queries))]
        return args + ["--concurrency", "1"], tmp / "results.writingbench.jsonl", 8
    prompts = [{"idx": str(i), "question": f"Write {i}.", "baseline_response": {"b": "Base."}}
               for i in range(4)]  # fmt: skip
    args = ["arena", str(results), "--baselines", str(write(tmp / "p.jsonl", prompts))]
    return args + ["--concurrency", "1", "--rounds", "10"], tmp / "results.arena.jsonl", 8


def run(argv: list[str], capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as ended:
        main(["eval", *argv])
    return ended.value.code, capsys.readouterr().err


def turning(mode: str, kind: str):
    good, big = GOOD[kind]
    asked: list[str] = []

    def reply(prompt: str):
        asked.append(prompt)
        if len(asked) <= GOOD_AT_FIRST:
            return good
        return big if mode == "reply-3mb" else judge_reply(mode, good)

    return reply


@pytest.mark.parametrize("mode", JUDGE_MODES)
@pytest.mark.parametrize("kind", ["quality", "writingbench", "arena"])
def test_a_judge_turning_bad_keeps_its_verdicts_and_says_one_line(kind, mode, tmp_path, capsys):
    args, scores, asks = inputs(kind, tmp_path)
    with judge(turning(mode, kind)) as bad:
        code, err = run([*args, "--judge" if kind != "writingbench" else "--critic", bad.url,
                         "--retries", "0"], capsys)  # fmt: skip
    verdicts = [json.loads(line) for line in scores.read_text(encoding="utf-8").splitlines()]
    field = {"quality": "scores", "writingbench": "score", "arena": "winner"}[kind]
    scored = [v for v in verdicts if v[field] is not None]
    assert code == 1, err
    (line,) = errors(err)
    assert " unscored: the judge gave no usable reply" in line and len(line) < 1000
    assert len(scored) == GOOD_AT_FIRST and len(verdicts) == asks  # kept, one line each
    assert scores.stat().st_size < 20_000  # no 3 MB reply copied into a verdict
    flag = "--judge" if kind != "writingbench" else "--critic"
    with judge(lambda prompt: GOOD[kind][0]) as good:
        code, err = run([*args, flag, good.url, "--retries", "0"], capsys)
        assert len(good.asked) == asks - GOOD_AT_FIRST  # only what has no verdict yet
    assert code == 0, err


@pytest.mark.parametrize("kind", ["quality", "writingbench", "arena"])
def test_a_judge_whose_model_list_is_a_page_is_one_line(kind, tmp_path, capsys):
    args, scores, _ = inputs(kind, tmp_path)
    flag = "--judge" if kind != "writingbench" else "--critic"
    with judge(lambda p: "", Script(models_body=PAGE.encode())) as bad:
        code, err = run([*args, flag, bad.url], capsys)
    assert code == 1
    (line,) = errors(err)
    assert line.startswith(f"longwrite: error: the server at {bad.url}/v1 answered GET /models")
    assert not scores.exists()


def test_a_damaged_verdict_names_its_line(tmp_path, capsys):
    args, scores, _ = inputs("quality", tmp_path)
    with judge(lambda prompt: GOOD["quality"][0]) as good:
        assert run([*args, "--judge", good.url], capsys)[0] == 0
        lines = scores.read_text(encoding="utf-8").splitlines()
        damaged = {**json.loads(lines[1]), "attempts": "x"}  # an edit by hand gone wrong
        scores.write_text("\n".join([lines[0], json.dumps(damaged), *lines[2:]]) + "\n")
        before = scores.read_bytes()
        code, err = run([*args, "--judge", good.url], capsys)
    assert code == 2
    assert errors(err) == [
        f"longwrite: error: {scores}:2: `attempts` must be a whole number, not 'x'"
    ]
    assert scores.read_bytes() == before
    code, err = run(["report", str(tmp_path / "results.jsonl"), "-o", str(tmp_path / "r.md")],
                    capsys)  # fmt: skip
    assert code == 2 and f"{scores}:2: `attempts`" in errors(err)[0]
