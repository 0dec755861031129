"""`longwrite eval writingbench`: WritingBench scores from a critic, criterion by criterion.

WritingBench gives each query its own checklist of criteria, each with a rubric in five
bands (1-2 ... 9-10). A critic (WritingBench's released critic model served by vLLM, or any
LLM) scores the response against each criterion separately, an integer 1-10 with a reason.
The paper reports the mean on 1-10 (LongWriter-Zero 8.69); the leaderboard shows it x 10.

Choices:
- The prompt is ours (`prompts/writingbench_critic_en.txt`), following WritingBench's
  published rules: one criterion at a time, its rubric quoted, a whole number 1-10 and a
  reason, one JSON object as the reply. It goes through the one judge client
  (`scoring.judge`), by default over the chat endpoint so that the critic's own chat template
  applies.
- Replies are read strictly: a JSON object with an integer `score` in 1-10 and a `reason`
  text; anything else is retried, and after the last attempt the criterion is unscored,
  never 0: it is left out of every mean and the command exits 1.
- Means: a query's score is the mean of its scored criteria; a domain's and the overall score
  are means of query scores; a criterion's (by name) is the mean of its verdicts.
- Resumable: every verdict is appended to the scores file as it comes (`io.jsonl`), keyed by
  query index and criterion number, with a digest of what was judged and who judged it; a
  re-run asks only about what is unscored, changed, or was judged by another critic.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from longwrite.errors import LongwriteError, clip, quoted
from longwrite.evaluate.judged import (
    answer_of,
    digest,
    fill,
    key_of,
    load_template,
    read_objects,
    reply_object,
)
from longwrite.evaluate.verdict_log import Asking, ProgressFor, ask_missing
from longwrite.scoring.judge import Ask, Judged

TEMPLATE = "writingbench_critic_en"
FIELDS = ("query", "response", "criterion")
BANDS = ("1-2", "3-4", "5-6", "7-8", "9-10")
CRITIC_MAX_TOKENS = 1024
REASON_CHARS = 2000  # of a critic's reason, kept in each verdict (a reply may run to megabytes)
LEADERBOARD_SCALE = 10  # the leaderboard shows the 1-10 mean on 100 points


@dataclass(frozen=True)
class Criterion:
    name: str
    description: str
    rubric: tuple[tuple[str, str], ...]  # (band, text) in band order

    def text(self) -> str:
        lines = [f"Name: {self.name}", f"Description: {self.description}", "Rubric:"]
        lines += [f"- {band}: {text}" for band, text in self.rubric]
        return "\n".join(lines)


@dataclass(frozen=True)
class Query:
    index: str
    domain1: str
    domain2: str
    query: str
    criteria: tuple[Criterion, ...]


def _criterion(obj: Any, where: str) -> Criterion:
    if not isinstance(obj, dict):
        raise LongwriteError(f"{where}: a criterion must be a JSON object")
    name, desc = obj.get("name"), obj.get("criteria_description")
    if not isinstance(name, str) or not isinstance(desc, str):
        raise LongwriteError(f"{where}: a criterion needs `name` and `criteria_description`")
    rubric = tuple((b, obj[b]) for b in BANDS if isinstance(obj.get(b), str))
    return Criterion(name.strip(), desc, rubric)


def load_queries(path: str | Path) -> list[Query]:
    """WritingBench's queries: `index`, `domain1`, `domain2`, `query`, `checklist`."""
    queries: list[Query] = []
    seen: set[str] = set()
    for number, obj in read_objects(path):
        where = f"{path}:{number}"
        index, query, checklist = key_of(obj, ("index",)), obj.get("query"), obj.get("checklist")
        if index is None or not isinstance(query, str):
            raise LongwriteError(f"{where}: needs `index` and `query` text")
        if not isinstance(checklist, list) or not checklist:
            raise LongwriteError(f"{where}: needs a `checklist` list of criteria")
        if index in seen:
            raise LongwriteError(f"{where}: index {index!r} again")
        seen.add(index)
        criteria = tuple(_criterion(c, where) for c in checklist)
        d1, d2 = obj.get("domain1"), obj.get("domain2")
        queries.append(Query(index, str(d1 or "-"), str(d2 or "-"), query, criteria))
    return queries


def load_answers(path: str | Path) -> dict[str, str]:
    """index -> answer of a results file (`index`, else `id`; `answer`, else `response`)."""
    answers: dict[str, str] = {}
    for number, obj in read_objects(path):
        index, answer = key_of(obj, ("index", "id")), answer_of(obj)
        if index is None or answer is None:
            raise LongwriteError(f"{path}:{number}: needs `index` and `response` or `answer`")
        answers[index] = answer
    return answers


def parse_verdict(reply: str) -> dict[str, Any]:
    """`{"score": 1-10, "reason": text}` from a critic's reply; ValueError says what is wrong."""
    obj = reply_object(reply, ("score",))
    score, reason = obj["score"], obj.get("reason")
    if isinstance(score, str) and score.strip().isdigit():
        score = int(score.strip())
    if isinstance(score, float) and score.is_integer():
        score = int(score)
    if isinstance(score, bool) or not isinstance(score, int):
        raise ValueError(f"the score is not a whole number: {quoted(score)}")
    if not 1 <= score <= 10:
        raise ValueError(f"the score is {score}, outside 1-10")
    if not isinstance(reason, str) or not reason.strip():
        raise ValueError("the verdict gives no reason")
    return {"score": score, "reason": clip(reason.strip(), REASON_CHARS)}


@dataclass(frozen=True)
class Task:
    query: Query
    number: int  # the criterion's position in the checklist, from 1
    answer: str

    @property
    def criterion(self) -> Criterion:
        return self.query.criteria[self.number - 1]

    @property
    def key(self) -> str:
        return f"{self.query.index}#{self.number}"

    @property
    def sha(self) -> str:
        return digest(self.query.query, self.answer, self.criterion.text())


def tasks_of(queries: list[Query], answers: dict[str, str]) -> list[Task]:
    return [
        Task(q, n, answers[q.index])
        for q in queries
        if q.index in answers
        for n in range(1, len(q.criteria) + 1)
    ]


def current(
    tasks: list[Task], records: list[tuple[int, dict[str, Any]]], judge: str | None
) -> dict:
    """Task key -> its last record for the same content (and judge, when given); a record
    whose key or score is of another kind counts for nothing."""
    wanted = {t.key: t.sha for t in tasks}
    out: dict[str, dict[str, Any]] = {}
    for _, rec in records:
        key = rec.get("key")
        if not isinstance(key, str) or wanted.get(key) != rec.get("sha"):
            continue
        if judge is not None and rec.get("judge") != judge:
            continue
        score = rec.get("score")
        if score is not None and not (isinstance(score, int) and 1 <= score <= 10):
            continue
        out[key] = rec
    return out


def judge_all(
    tasks: list[Task],
    send: Any,
    scores_path: Path,
    *,
    judge_model: str | None,
    concurrency: int = 4,
    retries: int = 2,
    backoff: float = 0.5,
    context_tokens: int | None = None,
    progress: ProgressFor | None = None,
) -> dict[str, dict[str, Any]]:
    """Ask the critic about every task without a current score, appending each verdict."""
    template = load_template(TEMPLATE, FIELDS)
    judge = f"{judge_model or '?'}@{digest(template)}"

    def render(t: Task, shown: str) -> str:
        values = {"query": t.query.query, "response": shown, "criterion": t.criterion.text()}
        return fill(template, values)

    def record(t: Task, judged: Judged[dict[str, Any]]) -> tuple[str, dict[str, Any], dict]:
        value = judged.value or {}
        line = {
            "key": t.key,
            "index": t.query.index,
            "criterion": t.number,
            "name": t.criterion.name,
            "score": value.get("score"),
            "reason": value.get("reason"),
            "attempts": judged.attempts,
            "error": judged.error,
            "sha": t.sha,
            "judge": judge,
            "truncated": judged.cut,
        }
        return t.key, line, line

    return ask_missing(
        scores_path,
        send,
        Asking(concurrency, retries, backoff, context_tokens, CRITIC_MAX_TOKENS),
        current=lambda records: current(tasks, records, judge),
        pending=lambda verdicts: [
            t for t in tasks if (verdicts.get(t.key) or {}).get("score") is None
        ],
        ask=lambda _client, t: Ask(partial(render, t), t.answer),
        parse=parse_verdict,
        record=record,
        progress=progress,
    )


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def summarize(queries: list[Query], answers: dict[str, str], verdicts: dict) -> dict[str, Any]:
    """The scores as one JSON-ready object (1-10 means; `x100` adds the leaderboard scale)."""
    per_query: dict[str, float] = {}
    by_name: dict[str, list[float]] = {}
    unscored: list[str] = []
    truncated = 0
    for t in tasks_of(queries, answers):
        rec = verdicts.get(t.key)
        if rec is None or rec.get("score") is None:
            unscored.append(t.key)
            continue
        by_name.setdefault(t.criterion.name, []).append(float(rec["score"]))
        truncated += bool(rec.get("truncated"))
    for q in queries:
        scores = [verdicts[f"{q.index}#{n}"].get("score") for n in range(1, len(q.criteria) + 1)
                  if f"{q.index}#{n}" in verdicts]  # fmt: skip
        mean = _mean([float(s) for s in scores if s is not None])
        if mean is not None:
            per_query[q.index] = mean

    def group(attr: str) -> dict[str, dict[str, Any]]:
        groups: dict[str, list[float]] = {}
        for q in queries:
            if q.index in per_query:
                groups.setdefault(getattr(q, attr), []).append(per_query[q.index])
        return {k: _row(v) for k, v in sorted(groups.items())}

    return {
        "benchmark": "WritingBench",
        "queries": len(queries),
        "answered": sum(q.index in answers for q in queries),
        "missing": [q.index for q in queries if q.index not in answers],
        "overall": _row(list(per_query.values())),
        "domain1": group("domain1"),
        "domain2": group("domain2"),
        "criteria": {k: _row(v) for k, v in sorted(by_name.items())},
        "per_query": per_query,
        "unscored": unscored,
        "truncated": truncated,
    }


def _row(values: list[float]) -> dict[str, Any]:
    mean = _mean(values)
    scaled = None if mean is None else mean * LEADERBOARD_SCALE
    return {"n": len(values), "mean": mean, "x100": scaled}


def default_scores_path(results: Path) -> Path:
    """`RESULTS.jsonl` -> `RESULTS.writingbench.jsonl` (its summary: `.writingbench.json`)."""
    return results.with_name(results.stem + ".writingbench.jsonl")


def print_summary(summary: dict[str, Any]) -> None:
    """Tables on stdout: overall and per domain, then per criterion."""
    from rich.console import Console
    from rich.table import Table

    console = Console(markup=False)  # ids, types and names are data, not rich markup
    table = Table(title="WritingBench (critic scores 1-10; x10 on the leaderboard's scale)")
    for name in ("group", "n", "mean 1-10", "score /100"):
        table.add_column(name, justify="left" if name == "group" else "right")
    rows = [(f"domain1: {k}", v) for k, v in summary["domain1"].items()]
    rows += [(f"domain2: {k}", v) for k, v in summary["domain2"].items()]
    for label, row in [*rows, ("all", summary["overall"])]:
        table.add_row(label, str(row["n"]), _fmt(row["mean"]), _fmt(row["x100"]),
                      style="bold" if label == "all" else None)  # fmt: skip
    console.print(table)
    if summary["criteria"]:
        crit = Table(title="per criterion (by name)")
        for name in ("criterion", "n", "mean 1-10"):
            crit.add_column(name, justify="left" if name == "criterion" else "right")
        for k, row in summary["criteria"].items():
            crit.add_row(k, str(row["n"]), _fmt(row["mean"]))
        console.print(crit)
    if summary["missing"]:
        console.print(f"{len(summary['missing'])} query(ies) have no answer in the results")
    if summary["unscored"]:
        console.print(
            f"{len(summary['unscored'])} criterion verdict(s) unscored (the critic gave no "
            "usable reply; left out of every mean): run the same command again to retry them"
        )


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
