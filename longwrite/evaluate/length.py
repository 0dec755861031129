"""`longwrite eval length`: LongBench-Write's length score S_l over a file of results.

The benchmark scores each answer by how far its length y lands from the required length x,
on a ratio scale that forgives overshooting more than falling short:

    score = 100 * max(0, 1 - (y/x - 1) / 3)   if y > x   (0 from y = 4x)
    score = 100 * max(0, 1 - (x/y - 1) / 2)   otherwise  (0 from y = x/3)

and S_l is the plain mean over items. y is `longwrite.io.counting.count_words` of the answer,
the benchmark's own count; an empty answer scores 0 (no division by zero).

Choices: the results file is JSON Lines (blank lines skipped), each object holding the required
length in `length` (LongBench-Write's field), the text in `answer`, and optionally `type`, and
`id` or `prompt` to name it. `length` is the only field read as the required length: in
longwrite's own outputs (`batch`, `--json`) `words` is the answer's word count, so reading it
as a target would score every answer 100. A line without `length` is refused like any other
fault on a line: a `LongwriteError` that names the file and the line. Per-type means cover
the items that have a `type`; the overall score covers all. The worst outliers are the
lowest scores, earlier lines first on ties. The plot uses matplotlib's object API (no pyplot,
so no global backend is touched; Agg renders the PNG), imported only when `--plot` is given,
and is written to a temporary file then renamed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from longwrite.defaults import WORST_SHOWN as DEFAULT_WORST
from longwrite.errors import LongwriteError, quoted
from longwrite.io.counting import count_words
from longwrite.io.records import read_objects

ID_WIDTH = 40  # a prompt standing in for a missing id is cut to this many characters


def length_score(required: int, produced: int) -> float:
    """LongBench-Write's length score (0-100) of `produced` words against `required`.

    >>> length_score(1000, 1000), length_score(1000, 500), length_score(1000, 4000)
    (100.0, 50.0, 0.0)
    """
    if required <= 0:
        raise ValueError(f"required length must be positive, got {required}")
    if produced <= 0:
        return 0.0
    if produced > required:
        return 100.0 * max(0.0, 1.0 - (produced / required - 1.0) / 3.0)
    return 100.0 * max(0.0, 1.0 - (required / produced - 1.0) / 2.0)


@dataclass(frozen=True)
class LengthResult:
    """One scored line of a results file."""

    line: int
    required: int
    produced: int
    type: str | None = None
    id: str | None = None

    @property
    def score(self) -> float:
        return length_score(self.required, self.produced)

    def to_json(self) -> dict[str, Any]:
        return {
            "line": self.line,
            "id": self.id,
            "type": self.type,
            "required": self.required,
            "produced": self.produced,
            "score": self.score,
        }


@dataclass(frozen=True)
class TypeScore:
    n: int
    length_score: float


@dataclass(frozen=True)
class LengthReport:
    length_score: float
    n: int
    by_type: dict[str, TypeScore]
    worst: tuple[LengthResult, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "length_score": self.length_score,
            "n": self.n,
            "by_type": {
                t: {"length_score": s.length_score, "n": s.n} for t, s in self.by_type.items()
            },
            "worst": [r.to_json() for r in self.worst],
        }


REQUIRED = "length"  # the one field that holds the required length (LongBench-Write's name)


class NoRequiredLength(ValueError):
    """A record that states no required length (as opposed to a malformed one)."""


def _required(obj: dict[str, Any]) -> int:
    """The required length of one record; ValueError says what is wrong."""
    if obj.get(REQUIRED) is None:
        why = "no required length: expected a `length` field"
        if "words" in obj:
            why += " (`words` is the answer's own word count, never read as the target)"
        raise NoRequiredLength(why)
    value = obj[REQUIRED]
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"`{REQUIRED}` must be a positive whole number, got {quoted(value)}")
    return value


def _name(obj: dict[str, Any]) -> str | None:
    """The record's `id`, else the start of its `prompt`, else None."""
    if obj.get("id") is not None:
        return str(obj["id"])
    prompt = obj.get("prompt")
    if isinstance(prompt, str) and prompt.strip():
        text = " ".join(prompt.split())
        return text if len(text) <= ID_WIDTH else text[: ID_WIDTH - 1] + "…"
    return None


def parse_result(obj: dict[str, Any], number: int) -> LengthResult:
    """One line's object as a `LengthResult`; ValueError says what is wrong with it."""
    required = _required(obj)
    answer = obj.get("answer")
    if not isinstance(answer, str):
        raise ValueError("no `answer` text")
    kind = obj.get("type")
    return LengthResult(
        line=number,
        required=required,
        produced=count_words(answer),
        type=None if kind is None else str(kind),
        id=_name(obj),
    )


def load_results(path: str | Path) -> list[LengthResult]:
    """Every non-blank line of the JSON Lines file `path`, scored for length."""
    results = []
    for number, obj in read_objects(path, empty="holds no results"):
        try:
            results.append(parse_result(obj, number))
        except ValueError as e:
            raise LongwriteError(f"{path}:{number}: {e}") from None
    return results


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def summarize(results: list[LengthResult], *, worst: int = DEFAULT_WORST) -> LengthReport:
    """S_l over `results`, the mean per type, and the `worst` lowest-scoring items.

    >>> r = [LengthResult(1, 1000, 1000, "a"), LengthResult(2, 1000, 500, "b")]
    >>> report = summarize(r, worst=1)
    >>> report.length_score, report.by_type["b"].length_score, report.worst[0].line
    (75.0, 50.0, 2)
    """
    if not results:
        raise ValueError("no results to summarize")
    by_type: dict[str, list[float]] = {}
    for r in results:
        if r.type is not None:
            by_type.setdefault(r.type, []).append(r.score)
    ranked = sorted(results, key=lambda r: (r.score, r.line))
    return LengthReport(
        length_score=_mean([r.score for r in results]),
        n=len(results),
        by_type={t: TypeScore(len(s), _mean(s)) for t, s in sorted(by_type.items())},
        worst=tuple(ranked[: max(0, worst)]),
    )


def print_report(report: LengthReport) -> None:
    """Human-readable tables on stdout: per type and overall, then the worst items."""
    from rich.console import Console
    from rich.table import Table

    console = Console(markup=False)  # ids, types and names are data, not rich markup
    table = Table(title="LongBench-Write length score (S_l)")
    table.add_column("type")
    table.add_column("n", justify="right")
    table.add_column("S_l", justify="right")
    for name, s in report.by_type.items():
        table.add_row(name, str(s.n), f"{s.length_score:.2f}")
    table.add_row("overall", str(report.n), f"{report.length_score:.2f}", style="bold")
    console.print(table)
    if not report.worst:
        return
    worst = Table(title=f"lowest {len(report.worst)}")
    for name in ("line", "id", "type", "required", "produced", "score"):
        worst.add_column(name, justify="right" if name not in ("id", "type") else "left")
    for r in report.worst:
        worst.add_row(
            str(r.line),
            r.id or "-",
            r.type or "-",
            f"{r.required:,}",
            f"{r.produced:,}",
            f"{r.score:.2f}",
        )
    console.print(worst)
