"""`longwrite eval arena`: Arena-Write pairwise battles and Elo ratings.

Arena-Write gives each prompt (`idx`, `question`, `type`, `length`) the answers of several
strong baseline models (`baseline_response`, a map of name -> answer or a list). Every
candidate answer (one or more RESULTS files, answers by `idx`/`id`/`index`) is judged against
every baseline answer by an LLM judge, twice, with the order swapped, because judges favour
one position. The two verdicts make one battle: a win only when both say so, a loss likewise,
anything else (a tie, or verdicts that disagree) a tie. A battle with an unscored verdict is
left out (and reported), never counted as a loss.

Ratings come from a Bradley-Terry fit over all battles (`evaluate.ratings`) with bootstrap
95% intervals, the baselines' mean at 1000; beside them, win rates per baseline and per
`type` ((wins + ties / 2) / battles). Verdicts are appended as they come and reused on a
re-run for the same two answers from the same judge, as for `eval quality`.

Each answer shown to the judge is cut to half of what the judge's context leaves (with the
note of `scoring.judge`), so that two long answers fit side by side.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from longwrite.errors import LongwriteError, quoted
from longwrite.evaluate.judged import (
    answer_of,
    answer_only,
    digest,
    fill,
    key_of,
    load_template,
    read_objects,
    reply_object,
)
from longwrite.evaluate.verdict_log import Asking, ProgressFor, ask_missing
from longwrite.scoring.judge import Ask, JudgeClient, Judged, fit_answer

TEMPLATE = "arena_judge_en"
FIELDS = ("question", "answer_a", "answer_b")
JUDGE_MAX_TOKENS = 512
ORDERS = ("cb", "bc")  # candidate shown as A, then baseline shown as A
_WINNERS = {"A": "A", "B": "B", "TIE": "tie", "DRAW": "tie"}


@dataclass(frozen=True)
class Prompt:
    idx: str
    question: str
    type: str
    baselines: dict[str, str]  # name -> answer


def _baselines(value: Any, where: str) -> dict[str, str]:
    if isinstance(value, dict):
        pairs = [(str(k), v) for k, v in value.items()]
    elif isinstance(value, list):
        pairs = []
        for i, entry in enumerate(value, start=1):
            if isinstance(entry, dict):
                name = key_of(entry, ("model", "name")) or f"baseline{i}"
                pairs.append((name, answer_of(entry) or entry.get("content")))
            else:
                pairs.append((f"baseline{i}", entry))
    else:
        raise LongwriteError(f"{where}: `baseline_response` must be a map or a list")
    out = {name: answer_only(text) for name, text in pairs if isinstance(text, str)}
    if len(out) != len(pairs) or not out:
        raise LongwriteError(f"{where}: every baseline answer must be text")
    return out


def load_prompts(path: str | Path) -> list[Prompt]:
    prompts: list[Prompt] = []
    for number, obj in read_objects(path):
        where = f"{path}:{number}"
        idx, question = key_of(obj, ("idx", "id", "index")), obj.get("question")
        if idx is None or not isinstance(question, str):
            raise LongwriteError(f"{where}: needs `idx` and `question` text")
        baselines = _baselines(obj.get("baseline_response"), where)
        prompts.append(Prompt(idx, question, str(obj.get("type") or "-"), baselines))
    return prompts


def load_candidate(path: Path) -> dict[str, str]:
    """idx -> answer of one RESULTS file (the thinking is never judged)."""
    answers: dict[str, str] = {}
    for number, obj in read_objects(path):
        idx, answer = key_of(obj, ("idx", "id", "index")), answer_of(obj)
        if idx is None or answer is None:
            raise LongwriteError(f"{path}:{number}: needs `idx` (or `id`) and an answer")
        answers[idx] = answer
    return answers


def candidate_names(paths: list[Path]) -> list[str]:
    """Each RESULTS file's name in the tables: its stem, its path where stems repeat."""
    stems = [p.stem for p in paths]
    return [s if stems.count(s) == 1 else str(p) for s, p in zip(stems, paths, strict=True)]


def parse_verdict(reply: str) -> str:
    """ "A", "B" or "tie" from a judge's reply; ValueError says what is wrong."""
    winner = reply_object(reply, ("winner",))["winner"]
    found = _WINNERS.get(winner.strip().upper()) if isinstance(winner, str) else None
    if found is None:
        raise ValueError(f"the winner is not A, B or tie: {quoted(winner)}")
    return found


@dataclass(frozen=True)
class Pair:
    """One candidate answer against one baseline answer, in one order."""

    candidate: str
    prompt: Prompt
    baseline: str
    answer: str
    order: str  # "cb": candidate is A; "bc": baseline is A

    @property
    def key(self) -> str:
        return f"{self.candidate}|{self.prompt.idx}|{self.baseline}|{self.order}"

    @property
    def sha(self) -> str:
        base = self.prompt.baselines[self.baseline]
        return digest(self.prompt.question, self.answer, base, self.order)


def pairs_of(prompts: list[Prompt], candidates: dict[str, dict[str, str]]) -> list[Pair]:
    return [
        Pair(name, p, b, answers[p.idx], order)
        for name, answers in candidates.items()
        for p in prompts
        if p.idx in answers
        for b in p.baselines
        for order in ORDERS
    ]


def judge_pairs(
    pairs: list[Pair],
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
    """Ask the judge about every pair without a current verdict, appending each one."""
    template = load_template(TEMPLATE, FIELDS)
    judge = f"{judge_model or '?'}@{digest(template)}"
    wanted = {p.key: p.sha for p in pairs}
    cuts: dict[str, bool] = {}

    def current(records: list[tuple[int, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
        return {
            r["key"]: r
            for _, r in records
            if isinstance(r.get("key"), str) and wanted.get(r["key"]) == r.get("sha")
            and r.get("judge") == judge and r.get("winner") in ("A", "B", "tie", None)
        }  # fmt: skip

    def ask(client: JudgeClient, p: Pair) -> Ask:
        prompt, cuts[p.key] = _prompt(client, template, p)
        return Ask(lambda _shown: prompt, "")

    def record(p: Pair, judged: Judged[str]) -> tuple[str, dict[str, Any], dict[str, Any]]:
        line = {
            "key": p.key,
            "candidate": p.candidate,
            "idx": p.prompt.idx,
            "baseline": p.baseline,
            "order": p.order,
            "winner": judged.value,
            "attempts": judged.attempts,
            "error": judged.error,
            "sha": p.sha,
            "judge": judge,
            "truncated": cuts[p.key] or judged.cut,
        }
        return p.key, line, line

    return ask_missing(
        scores_path,
        send,
        Asking(concurrency, retries, backoff, context_tokens, JUDGE_MAX_TOKENS),
        current=current,
        pending=lambda verdicts: [
            p for p in pairs if (verdicts.get(p.key) or {}).get("winner") is None
        ],
        ask=ask,
        parse=parse_verdict,
        record=record,
        progress=progress,
    )


def _prompt(client: JudgeClient, template: str, p: Pair) -> tuple[str, bool]:
    """The judge's prompt for one pair, each answer cut to half the room left, if known."""
    question = p.prompt.question
    empty = fill(template, {"question": question, "answer_a": "", "answer_b": ""})
    budget = client.budget(lambda _: empty)
    answers = [p.answer, p.prompt.baselines[p.baseline]]
    if p.order == "bc":
        answers.reverse()
    cut = False
    if budget is not None:
        shown = [fit_answer(a, budget // 2) for a in answers]
        answers, cut = [s for s, _ in shown], any(c for _, c in shown)
    values = {"question": question, "answer_a": answers[0], "answer_b": answers[1]}
    return fill(template, values), cut


def outcome(first: str, second: str) -> float:
    """The candidate's result from its two verdicts: 1 win, 0 loss, 0.5 tie or disagreement.

    >>> outcome("A", "B"), outcome("B", "A"), outcome("A", "A"), outcome("tie", "B")
    (1.0, 0.0, 0.5, 0.5)
    """
    if first == "A" and second == "B":
        return 1.0
    if first == "B" and second == "A":
        return 0.0
    return 0.5


def battles(pairs: list[Pair], verdicts: dict[str, dict[str, Any]]) -> tuple[list, list, int]:
    """(candidate, prompt, baseline, outcome) per scored battle, the unscored ones, and how
    many battles had disagreeing verdicts."""
    out, unscored, inconsistent = [], [], 0
    for p in pairs:
        if p.order != "cb":
            continue
        first = (verdicts.get(p.key) or {}).get("winner")
        swapped = f"{p.candidate}|{p.prompt.idx}|{p.baseline}|bc"
        second = (verdicts.get(swapped) or {}).get("winner")
        if first is None or second is None:
            unscored.append(f"{p.candidate}|{p.prompt.idx}|{p.baseline}")
            continue
        result = outcome(first, second)
        consistent = (first, second) in (("A", "B"), ("B", "A"), ("tie", "tie"))
        inconsistent += not consistent
        out.append((p.candidate, p.prompt, p.baseline, result))
    return out, unscored, inconsistent


def _rate(results: list[float]) -> dict[str, Any]:
    wins, ties = results.count(1.0), results.count(0.5)
    n = len(results)
    rate = (wins + ties / 2) / n if n else None
    return {"n": n, "wins": wins, "ties": ties, "losses": n - wins - ties, "win_rate": rate}


def summarize(
    pairs: list[Pair],
    verdicts: dict[str, dict[str, Any]],
    candidates: list[str],
    *,
    rounds: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Ratings and win rates as one JSON-ready object."""
    from longwrite.evaluate.ratings import ratings

    fought, unscored, inconsistent = battles(pairs, verdicts)
    baselines = sorted({b for p in pairs for b in p.prompt.baselines})
    players = candidates + [b for b in baselines if b not in candidates]
    index = {name: i for i, name in enumerate(players)}
    games = [(index[c], index[b], r) for c, _, b, r in fought]
    anchor = [index[b] for b in baselines] or list(range(len(players)))
    rated = ratings(len(players), games, anchor, rounds=rounds, seed=seed)
    table: dict[str, Any] = {}
    for c in candidates:
        mine = [(pr, b, r) for cand, pr, b, r in fought if cand == c]
        types = sorted({pr.type for pr, _, _ in mine})
        table[c] = {
            "all": _rate([r for _, _, r in mine]),
            "by_baseline": {b: _rate([r for _, x, r in mine if x == b]) for b in baselines},
            "by_type": {t: _rate([r for pr, _, r in mine if pr.type == t]) for t in types},
        }
    return {
        "benchmark": "Arena-Write",
        "ratings": {
            name: {
                "elo": r.elo,
                "lo": r.lo,
                "hi": r.hi,
                "role": "candidate" if name in candidates else "baseline",
            }
            for name, r in zip(players, rated, strict=True)
        },  # fmt: skip
        "win_rates": table,
        "battles": len(fought),
        "inconsistent": inconsistent,
        "unscored": unscored,
        "rounds": rounds,
    }


def default_scores_path(results: Path) -> Path:
    """`RESULTS.jsonl` -> `RESULTS.arena.jsonl` (its summary: `.arena.json`)."""
    return results.with_name(results.stem + ".arena.jsonl")


def print_summary(summary: dict[str, Any]) -> None:
    """Tables on stdout: the ratings, then each candidate's win rates."""
    from rich.console import Console
    from rich.table import Table

    console = Console(markup=False)  # ids, types and names are data, not rich markup
    table = Table(title="Arena-Write: Elo (Bradley-Terry, baselines' mean 1000), 95% CI")
    for name in ("model", "role", "Elo", "95% CI"):
        table.add_column(name, justify="right" if name in ("Elo", "95% CI") else "left")
    ranked = sorted(summary["ratings"].items(), key=lambda kv: -kv[1]["elo"])
    for name, r in ranked:
        ci = "-" if r["lo"] is None else f"{r['lo']:.0f} to {r['hi']:.0f}"
        table.add_row(name, r["role"], f"{r['elo']:.0f}", ci)
    console.print(table)
    for cand, rates in summary["win_rates"].items():
        t = Table(title=f"{cand}: win rate ((wins + ties/2) / battles)")
        for name in ("against / type", "n", "W", "T", "L", "win rate"):
            t.add_column(name, justify="left" if name == "against / type" else "right")
        rows = [(f"vs {b}", v) for b, v in rates["by_baseline"].items()]
        rows += [(f"type {k}", v) for k, v in rates["by_type"].items()]
        for label, v in [*rows, ("all", rates["all"])]:
            rate = "-" if v["win_rate"] is None else f"{100 * v['win_rate']:.1f}%"
            t.add_row(label, str(v["n"]), str(v["wins"]), str(v["ties"]), str(v["losses"]), rate)
        console.print(t)
    if summary["inconsistent"]:
        console.print(f"{summary['inconsistent']} battle(s) with verdicts that disagree: ties")
    if summary["unscored"]:
        console.print(
            f"{len(summary['unscored'])} battle(s) unscored (the judge gave no usable reply; "
            "left out of the ratings): run the same command again to retry them"
        )
