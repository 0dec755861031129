"""`longwrite eval quality`: LongBench-Write's quality score S_q from an LLM judge.

The judge rates each answer on the benchmark's six dimensions (relevance, accuracy,
coherence, clarity, breadth and depth, reading experience) from 1 to 5. Each rating is
rescaled to 0-100 as (s - 1) * 25, an item's S_q is the mean of its six, and S_q over a file
is the mean over the items the judge scored. With the length score S_l of `eval length`,
the overall score is mean(S_l, S_q).

Choices:
- The prompt is ours (`prompts/quality_judge_en.txt`): it tells the judge to ignore length
  (S_l measures that) and to answer with one JSON object. It goes to any OpenAI-compatible
  server through `OpenAIEngine` (raw completions, as everything else here), at temperature 0.
- Replies are read leniently (the first JSON object holding the six keys, in code fences or
  after prose; "Breadth and Depth" and "breadth_and_depth" are the same key; numbers in
  [1, 5]) and checked strictly (all six, nothing out of range). A malformed reply or a failed
  request is retried; after the last attempt the item is recorded as unscored, never as 0,
  and left out of every mean.
- Resumable like `batch`: every verdict is appended to `RESULTS.quality.jsonl` (or `-o`) as
  it comes, crash-safely (`appendlog.py`). An item is named by its `id`, else `line:N`, and a
  verdict also records a digest of what was judged (`answer_sha`: the prompt and the answer)
  and who judged it (`judge`: the judge model and a digest of the judge prompt). A verdict
  counts only for an item with the same key and the same digest, so regenerating the outputs
  under the same ids gets them judged again instead of reusing the old scores; a re-run asks
  again about what is unscored, changed, or was judged by another judge. When several
  records match, the last one counts. The command exits with 1 while any item is unscored.
- Any failure of a judge request (ours or the client's, e.g. a reply that is not JSON) is
  retried like a malformed reply, then recorded as unscored.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from longwrite.errors import LongwriteError, one_line
from longwrite.evaluate.length import LengthResult, NoRequiredLength, parse_result

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
BACKOFF_S = 0.5  # wait before retry k: k times this
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
            raise ValueError(f"{name} is not a number: {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} is not a number: {value!r}")
    if not 1 <= value <= 5:
        raise ValueError(f"{name} is {value}, outside 1-5")
    return float(value)


def parse_judgement(reply: str) -> dict[str, float]:
    """The six ratings in a judge's reply; ValueError says what is wrong with it."""
    decoder = json.JSONDecoder()
    found: dict[str, Any] | None = None
    for match in re.finditer(r"\{", reply):
        try:
            obj, _ = decoder.raw_decode(reply, match.start())
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict) and any(_dimension(str(k)) for k in obj):
            found = obj
            break
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
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise LongwriteError(f"cannot read {path}: no such file") from None
    except UnicodeDecodeError:
        raise LongwriteError(f"cannot read {path}: not UTF-8 text") from None
    except OSError as e:
        raise LongwriteError(f"cannot read {path}: {e.strerror or e}") from None
    items = []
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            raise LongwriteError(f"{path}:{number}: not valid JSON ({e.msg})") from None
        if not isinstance(obj, dict):
            raise LongwriteError(f"{path}:{number}: expected a JSON object")
        prompt, answer = obj.get("prompt"), obj.get("answer")
        if not isinstance(prompt, str) or not isinstance(answer, str):
            raise LongwriteError(f"{path}:{number}: needs `prompt` and `answer` text")
        try:
            length = parse_result(text, number)
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
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Verdict | None:
        scores = obj.get("scores")
        if not isinstance(obj.get("key"), str):
            return None
        if scores is not None:
            try:
                scores = {d: _rating(scores[d], d) for d in DIMENSIONS}
            except (KeyError, TypeError, ValueError):
                return None
        sha, judge = obj.get("answer_sha"), obj.get("judge")
        return cls(
            obj["key"],
            scores,
            int(obj.get("attempts") or 0),
            obj.get("error"),
            sha if isinstance(sha, str) else None,
            judge if isinstance(judge, str) else None,
        )


def judge_one(
    complete: Callable[[str], str],
    item: JudgeItem,
    *,
    retries: int = DEFAULT_RETRIES,
    backoff: float = BACKOFF_S,
    template: str | None = None,
    judge: str | None = None,
) -> Verdict:
    """Ask the judge about `item` up to 1 + `retries` times; unscored if no good reply.

    Any exception from the request counts as a failed attempt: the client can raise more than
    our own errors (a reply that is not JSON, a protocol error), and one item must not stop
    the others.
    """
    text = judge_prompt(item.prompt, item.answer, template)
    error = "not asked"
    for attempt in range(1, retries + 2):
        try:
            reply = complete(text)
        except LongwriteError as e:
            error = str(e)
        except Exception as e:  # noqa: BLE001 - any failure of the request: retried, then unscored
            error = f"the judge request failed: {type(e).__name__}: {one_line(str(e))}"
        else:
            try:
                scores = parse_judgement(reply if isinstance(reply, str) else "")
                return Verdict(item.key, scores, attempt, None, item.digest, judge)
            except ValueError as e:
                error = f"malformed reply: {e}"
        if attempt <= retries and backoff:
            time.sleep(backoff * attempt)
    return Verdict(item.key, None, retries + 1, error, item.digest, judge)


def is_scored(verdict: Verdict | None) -> bool:
    return verdict is not None and verdict.scores is not None


def load_verdicts(path: str | Path, items: list[JudgeItem]) -> dict[str, Verdict]:
    """The verdict of each item in a scores file, read without changing the file (a torn last
    line is skipped, not cut off): a reader such as `eval report` writes nothing."""
    from longwrite.io.jsonl import read_records

    return match_verdicts(items, read_records(path))


def match_verdicts(
    items: list[JudgeItem], records: list[dict[str, Any]], judge: str | None = None
) -> dict[str, Verdict]:
    """Item key -> its last verdict given for the same prompt and answer (and, when `judge` is
    given, by that judge). A verdict for other content under the same id does not count."""
    latest: dict[tuple[str, str], Verdict] = {}
    for obj in records:
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
) -> dict[str, Verdict]:
    """Judge the items that have no score in `scores_path` for their current prompt and
    answer from this judge (`judge_model` and the judge prompt), appending each verdict as it
    comes; returns the verdict of every item (the reused ones included)."""
    from longwrite.io.jsonl import AppendLog

    template = judge_template()
    judge = judge_identity(judge_model, template)
    log = AppendLog(scores_path)
    log.lock()  # one writer per scores file, as for batch outputs
    try:
        verdicts = match_verdicts(items, log.load(), judge)
    except BaseException:
        log.close()
        raise
    todo = deque(it for it in items if not is_scored(verdicts.get(it.key)))
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                if not todo:
                    return
                item = todo.popleft()
            verdict = judge_one(
                complete, item, retries=retries, backoff=backoff, template=template, judge=judge
            )
            log.append(verdict.to_json())
            with lock:
                verdicts[item.key] = verdict
            if on_verdict is not None:
                on_verdict(verdict)

    workers = [threading.Thread(target=work, daemon=True) for _ in range(max(1, concurrency))]
    try:
        for w in workers:
            w.start()
        for w in workers:
            while w.is_alive():
                w.join(0.2)
    finally:
        log.close()
    return {it.key: verdicts[it.key] for it in items if it.key in verdicts}


def server_judge(url: str, model: str | None, timeout: float) -> tuple[Callable[[str], str], Any]:
    """A `complete(text) -> reply` over an OpenAI-compatible server, and the engine to close."""
    import os

    from longwrite.engines.base import Sampling
    from longwrite.engines.openai import ENV_API_KEY, OpenAIEngine

    engine = OpenAIEngine(url, model, api_key=os.environ.get(ENV_API_KEY), timeout=timeout)
    sampling = Sampling(max_tokens=JUDGE_MAX_TOKENS, temperature=0.0, top_p=1.0, stop=())

    def complete(text: str) -> str:
        return "".join(chunk.text for chunk in engine.stream(text, sampling))

    return complete, engine


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _overall(length: float | None, quality: float | None) -> float | None:
    return None if length is None or quality is None else (length + quality) / 2


@dataclass(frozen=True)
class Scores:
    """S_l, S_q and the overall score of a group of items (None where there is no data)."""

    n: int
    scored: int
    quality: float | None
    length: float | None
    dimensions: dict[str, float] = field(default_factory=dict)  # mean 1-5 rating

    @property
    def overall(self) -> float | None:
        return _overall(self.length, self.quality)

    def to_json(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "scored": self.scored,
            "quality_score": self.quality,
            "length_score": self.length,
            "overall": self.overall,
            "dimensions": self.dimensions,
        }


def group_scores(items: list[JudgeItem], verdicts: dict[str, Verdict]) -> Scores:
    """The scores of `items`: S_q over the scored ones, S_l over those with a length."""
    rated = [verdicts[it.key].scores for it in items if it.key in verdicts]
    rated = [s for s in rated if s is not None]
    lengths = [it.length.score for it in items if it.length is not None]
    return Scores(
        n=len(items),
        scored=len(rated),
        quality=_mean([quality_score(s) for s in rated]),
        length=_mean(lengths),
        dimensions={d: sum(s[d] for s in rated) / len(rated) for d in DIMENSIONS} if rated else {},
    )


@dataclass(frozen=True)
class QualityReport:
    total: Scores
    by_type: dict[str, Scores]
    unscored: tuple[str, ...]  # keys

    def to_json(self) -> dict[str, Any]:
        return {
            **self.total.to_json(),
            "by_type": {t: s.to_json() for t, s in self.by_type.items()},
            "unscored": list(self.unscored),
        }


def summarize_quality(items: list[JudgeItem], verdicts: dict[str, Verdict]) -> QualityReport:
    types: dict[str, list[JudgeItem]] = {}
    for it in items:
        if it.type is not None:
            types.setdefault(it.type, []).append(it)
    unscored = tuple(it.key for it in items if not is_scored(verdicts.get(it.key)))
    return QualityReport(
        total=group_scores(items, verdicts),
        by_type={t: group_scores(group, verdicts) for t, group in sorted(types.items())},
        unscored=unscored,
    )


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def print_quality(report: QualityReport) -> None:
    """Tables on stdout: per type and overall, then per dimension."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title="LongBench-Write: quality S_q, length S_l, overall")
    for name in ("type", "n", "scored", "S_q", "S_l", "overall"):
        table.add_column(name, justify="left" if name == "type" else "right")
    rows = [*report.by_type.items(), ("all", report.total)]
    for name, s in rows:
        table.add_row(
            name,
            str(s.n),
            str(s.scored),
            _fmt(s.quality),
            _fmt(s.length),
            _fmt(s.overall),
            style="bold" if name == "all" else None,
        )
    console.print(table)
    if report.total.dimensions:
        dims = Table(title="per dimension (mean rating 1-5, and rescaled 0-100)")
        for name in ("dimension", "rating", "score"):
            dims.add_column(name, justify="left" if name == "dimension" else "right")
        for d, mean in report.total.dimensions.items():
            dims.add_row(LABELS[d], f"{mean:.2f}", f"{rescale(mean):.2f}")
        console.print(dims)
    if report.unscored:
        console.print(
            f"{len(report.unscored)} unscored (the judge gave no usable reply; left out of "
            "S_q): run the same command again to retry them"
        )
