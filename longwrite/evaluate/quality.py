"""`longwrite eval quality`: LongBench-Write's quality score S_q from an LLM judge.

The judge rates each answer on the benchmark's six dimensions (relevance, accuracy,
coherence, clarity, breadth and depth, reading experience) from 1 to 5. Each rating is
rescaled to 0-100 as (s - 1) * 25, an item's S_q is the mean of its six, and S_q over a file
is the mean over the items the judge scored. With the length score S_l of `eval length`,
the overall score is mean(S_l, S_q).

Choices:
- The prompt is ours (`prompts/quality_judge_en.txt`): it tells the judge to ignore length
  (S_l measures that) and to answer with one JSON object. It is asked through the one judge
  client, `longwrite.scoring.judge` (shared with the RL writing reward): raw completions on
  any OpenAI-compatible server, at temperature 0, several requests in flight, and an answer
  longer than the judge's context (its max_model_len, else `--judge-context`) cut to fit with
  a note saying the rest is not shown; the verdict records `truncated`.
- Replies are read leniently (the first JSON object holding the six keys, in code fences or
  after prose; "Breadth and Depth" and "breadth_and_depth" are the same key; numbers in
  [1, 5]) and checked strictly (all six, nothing out of range). A malformed reply or any
  failed request (ours or the client's, e.g. a reply that is not JSON) is retried with
  backoff; after the last attempt the item is recorded as unscored, never as 0, and left out
  of every mean.
- Resumable like `batch`: every verdict is appended to `RESULTS.quality.jsonl` (or `-o`) as
  it comes, crash-safely (`io.jsonl`). An item is named by its `id`, else `line:N`, and a
  verdict also records a digest of what was judged (`answer_sha`: the prompt and the answer)
  and who judged it (`judge`: the judge model and a digest of the judge prompt). A verdict
  counts only for an item with the same key and the same digest, so regenerating the outputs
  under the same ids gets them judged again instead of reusing the old scores; a re-run asks
  again about what is unscored, changed, or was judged by another judge. When several
  records match, the last one counts. The command exits with 1 while any item is unscored.

The scores per type and the tables are in `evaluate.summary`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from longwrite.errors import LongwriteError, quoted
from longwrite.evaluate.length import LengthResult, NoRequiredLength, parse_result
from longwrite.scoring.judge import (
    DEFAULT_CONTEXT,
    Ask,
    CompletionsEndpoint,
    Judged,
    endpoint,
)

if TYPE_CHECKING:
    from longwrite.evaluate.verdict_log import ProgressFor

DIMENSIONS = (
    "relevance",
    "accuracy",
    "coherence",
    "clarity",
    "breadth_and_depth",
    "reading_experience",
)
LABELS = {d: d.replace("_", " ") for d in DIMENSIONS}
TEMPLATE = "quality_judge_en"
DEFAULT_RETRIES = 2
DEFAULT_CONCURRENCY = 4
DEFAULT_TIMEOUT_S = 300.0
BACKOFF_S = 0.5  # wait before retry k: this times 2**(k-1)
JUDGE_MAX_TOKENS = 400
_ALIASES = {re.sub(r"_and_", "_", d): d for d in DIMENSIONS}
_PLACEHOLDER = re.compile(r"\{(prompt|answer)\}")


def rescale(score: float) -> float:
    """A 1-5 rating on LongBench-Write's 0-100 scale.

    >>> rescale(1), rescale(3), rescale(5)
    (0.0, 50.0, 100.0)
    """
    return (float(score) - 1.0) * 25.0


def quality_score(scores: dict[str, float]) -> float:
    """An item's S_q: the mean of its six rescaled ratings."""
    return sum(rescale(scores[d]) for d in DIMENSIONS) / len(DIMENSIONS)


def _dimension(key: str) -> str | None:
    name = re.sub(r"[^a-z]+", "_", key.lower()).strip("_")
    return _ALIASES.get(name.replace("_and_", "_"))


def _rating(value: Any, name: str) -> float:
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ValueError(f"{name} is not a number: {quoted(value)}") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} is not a number: {quoted(value)}")
    if not 1 <= value <= 5:
        raise ValueError(f"{name} is {value}, outside 1-5")
    return float(value)


def parse_judgement(reply: str) -> dict[str, float]:
    """The six ratings in a judge's reply; ValueError says what is wrong with it."""
    from longwrite.io.records import first_object

    found = first_object(reply, lambda obj: any(_dimension(str(k)) for k in obj))
    if found is None:
        raise ValueError("no JSON object with the ratings in the reply")
    scores: dict[str, float] = {}
    for key, value in found.items():
        name = _dimension(str(key))
        if name is not None:
            scores[name] = _rating(value, name)
    missing = [d for d in DIMENSIONS if d not in scores]
    if missing:
        raise ValueError(f"the reply has no rating for {', '.join(missing)}")
    return {d: scores[d] for d in DIMENSIONS}


def judge_template() -> str:
    """`prompts/quality_judge_en.txt`, which holds `{prompt}` and `{answer}` once each."""
    from longwrite.prompt.templates import templates_dir

    path = templates_dir() / f"{TEMPLATE}.txt"
    text = path.read_bytes().decode("utf-8")
    if sorted(_PLACEHOLDER.findall(text)) != ["answer", "prompt"]:
        raise LongwriteError(f"{path} must hold {{prompt}} and {{answer}} once each")
    return text


def judge_prompt(prompt: str, answer: str, template: str | None = None) -> str:
    """The judge template with the request and the answer put in (plain substitution: the
    texts may hold braces, even "{answer}", and are never scanned again)."""
    template = judge_template() if template is None else template
    values = {"prompt": prompt, "answer": answer}
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def _sha(*parts: str) -> str:
    """16 hex digits of the SHA-256 of `parts`, joined by NUL (which no JSON text holds raw)."""
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()[:16]


def answer_digest(prompt: str, answer: str) -> str:
    """What a verdict was given for: the request and the answer.

    >>> answer_digest("p", "a") == answer_digest("p", "a") != answer_digest("p", "b")
    True
    """
    return _sha(prompt, answer)


def judge_identity(model: str | None, template: str) -> str:
    """Who gives the verdicts: the judge model and a digest of the judge prompt."""
    return f"{model or '?'}@{_sha(template)}"


@dataclass(frozen=True)
class JudgeItem:
    """One line of a results file, as the judge and the report see it."""

    key: str
    line: int
    id: str | None
    type: str | None
    prompt: str
    answer: str
    length: LengthResult | None  # None when the line gives no required length

    @property
    def digest(self) -> str:
        return answer_digest(self.prompt, self.answer)


def load_items(path: str | Path) -> list[JudgeItem]:
    """Every non-blank line of a results file: `prompt` and `answer` are required."""
    from longwrite.io.records import read_objects

    items = []
    for number, obj in read_objects(path):
        prompt, answer = obj.get("prompt"), obj.get("answer")
        if not isinstance(prompt, str) or not isinstance(answer, str):
            raise LongwriteError(f"{path}:{number}: needs `prompt` and `answer` text")
        try:
            length = parse_result(obj, number)
        except NoRequiredLength:
            length = None  # judged all the same; left out of S_l
        except ValueError as e:
            raise LongwriteError(f"{path}:{number}: {e}") from None
        given = obj.get("id")
        kind = obj.get("type")
        items.append(
            JudgeItem(
                key=f"line:{number}" if given is None else str(given),
                line=number,
                id=None if given is None else str(given),
                type=None if kind is None else str(kind),
                prompt=prompt,
                answer=answer,
                length=length,
            )
        )
    if not items:
        raise LongwriteError(f"{path} holds no results")
    return items


@dataclass(frozen=True)
class Verdict:
    """The judge's ratings of one item, or why there are none (`scores is None`)."""

    key: str
    scores: dict[str, float] | None
    attempts: int
    error: str | None = None
    answer_sha: str | None = None  # `answer_digest` of what was judged (None: an old record)
    judge: str | None = None  # `judge_identity` of who judged it
    truncated: bool = False  # the judge saw the answer cut to its context (with a note)

    @property
    def quality(self) -> float | None:
        return None if self.scores is None else quality_score(self.scores)

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "scores": self.scores,
            "quality": self.quality,
            "attempts": self.attempts,
            "error": self.error,
            "answer_sha": self.answer_sha,
            "judge": self.judge,
            "truncated": self.truncated,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Verdict | None:
        """The verdict a record holds; None for one that counts for nothing (another kind
        of record, ratings outside 1-5); ValueError for a field of the wrong type."""
        scores = obj.get("scores")
        if not isinstance(obj.get("key"), str):
            return None
        if scores is not None:
            try:
                scores = {d: _rating(scores[d], d) for d in DIMENSIONS}
            except (KeyError, TypeError, ValueError):
                return None
        sha, judge, error = obj.get("answer_sha"), obj.get("judge"), obj.get("error")
        attempts = obj.get("attempts") or 0
        if isinstance(attempts, bool) or not isinstance(attempts, int):
            raise ValueError(f"`attempts` must be a whole number, not {quoted(attempts)}")
        if error is not None and not isinstance(error, str):
            raise ValueError(f"`error` must be text, not {quoted(error)}")
        return cls(
            obj["key"],
            scores,
            attempts,
            error,
            sha if isinstance(sha, str) else None,
            judge if isinstance(judge, str) else None,
            obj.get("truncated") is True,
        )


def is_scored(verdict: Verdict | None) -> bool:
    return verdict is not None and verdict.scores is not None


def load_verdicts(path: str | Path, items: list[JudgeItem]) -> dict[str, Verdict]:
    """The verdict of each item in a scores file, read without changing the file (a torn last
    line is skipped, not cut off): a reader such as `eval report` writes nothing."""
    from longwrite.io.jsonl import read_numbered

    return match_verdicts(items, read_numbered(path), path=path)


def match_verdicts(
    items: list[JudgeItem],
    records: list[tuple[int, dict[str, Any]]],
    judge: str | None = None,
    *,
    path: str | Path = "the scores file",
) -> dict[str, Verdict]:
    """Item key -> its last verdict given for the same prompt and answer (and, when `judge` is
    given, by that judge). A verdict for other content under the same id does not count; a
    record of the wrong shape is refused with its line number in `path`."""
    from longwrite.io.records import at_line

    latest: dict[tuple[str, str], Verdict] = {}
    for number, obj in records:
        with at_line(path, number):
            verdict = Verdict.from_json(obj)
        if verdict is None or verdict.answer_sha is None:
            continue  # no digest (an old record): what it judged is unknown
        if judge is not None and verdict.judge != judge:
            continue
        latest[(verdict.key, verdict.answer_sha)] = verdict
    out = {}
    for it in items:
        verdict = latest.get((it.key, it.digest))
        if verdict is not None:
            out[it.key] = verdict
    return out


def default_scores_path(results: Path) -> Path:
    """`RESULTS.jsonl` -> `RESULTS.quality.jsonl`."""
    return results.with_name(results.stem + ".quality.jsonl")


def judge_file(
    items: list[JudgeItem],
    complete: Callable[[str], str],
    scores_path: Path,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    retries: int = DEFAULT_RETRIES,
    backoff: float = BACKOFF_S,
    on_verdict: Callable[[Verdict], None] | None = None,
    judge_model: str | None = None,
    context_tokens: int | None = None,
    progress: ProgressFor | None = None,
) -> dict[str, Verdict]:
    """Judge the items that have no score in `scores_path` for their current prompt and
    answer from this judge (`judge_model` and the judge prompt), appending each verdict as it
    comes; returns the verdict of every item (the reused ones included).

    `complete(text) -> reply` asks the judge through `JudgeClient`: `concurrency` at once,
    1 + `retries` attempts each, an answer cut to the judge's `context_tokens` (None: unknown).
    """
    from longwrite.evaluate.verdict_log import Asking, ask_missing

    template = judge_template()
    judge = judge_identity(judge_model, template)

    def record(item: JudgeItem, judged: Judged[dict[str, float]]) -> tuple[str, dict, Verdict]:
        value, attempts, error = judged.value, judged.attempts, judged.error
        verdict = Verdict(item.key, value, attempts, error, item.digest, judge, judged.cut)
        if on_verdict is not None:
            on_verdict(verdict)
        return item.key, verdict.to_json(), verdict

    verdicts = ask_missing(
        scores_path,
        complete,
        Asking(concurrency, retries, backoff, context_tokens, JUDGE_MAX_TOKENS),
        current=lambda records: match_verdicts(items, records, judge, path=scores_path),
        pending=lambda verdicts: [it for it in items if not is_scored(verdicts.get(it.key))],
        ask=lambda _client, it: Ask(partial(judge_prompt, it.prompt, template=template), it.answer),
        parse=parse_judgement,
        record=record,
        progress=progress,
    )
    return {it.key: verdicts[it.key] for it in items if it.key in verdicts}


def server_judge(
    url: str,
    model: str | None,
    timeout: float,
    context: int = DEFAULT_CONTEXT,
    *,
    chat: bool = False,
) -> tuple[CompletionsEndpoint, Any]:
    """The judge at `url` as `(complete, closer)`: `complete(text) -> reply`, with the
    judge's `model` and `context` (the server's max_model_len, else `context`), over the raw
    completions endpoint or (`chat`) the chat one; `closer.close()` ends it."""
    ask = endpoint(
        url,
        model,
        chat=chat,
        timeout=timeout,
        max_tokens=JUDGE_MAX_TOKENS,
        default_context=context,
    )
    return ask, ask
