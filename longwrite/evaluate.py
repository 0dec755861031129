"""`longwrite eval length`: LongBench-Write's length score S_l over a file of results.

The benchmark scores each answer by how far its length y lands from the required length x,
on a ratio scale that forgives overshooting more than falling short:

    score = 100 * max(0, 1 - (y/x - 1) / 3)   if y > x   (0 from y = 4x)
    score = 100 * max(0, 1 - (x/y - 1) / 2)   otherwise  (0 from y = x/3)

and S_l is the plain mean over items. y is `longwrite.counting.count_words` of the answer,
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

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from longwrite.counting import count_words
from longwrite.errors import LongwriteError
from longwrite.files import check_writable, read_user_text, save_figure

DEFAULT_WORST = 5
ID_WIDTH = 40  # a prompt standing in for a missing id is cut to this many characters
BAND = 0.10  # the plot's band around y = x


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
        raise ValueError(f"`{REQUIRED}` must be a positive whole number, got {value!r}")
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


def parse_result(line: str, number: int) -> LengthResult:
    """One JSON line as a `LengthResult`; ValueError says what is wrong with it."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise ValueError(f"not valid JSON ({e.msg}, column {e.colno})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
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
    lines = read_user_text(path).splitlines()
    results = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            results.append(parse_result(line, number))
        except ValueError as e:
            raise LongwriteError(f"{path}:{number}: {e}") from None
    if not results:
        raise LongwriteError(f"{path} holds no results")
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


def plot_lengths(results: list[LengthResult], path: str | Path, *, title: str = "") -> None:
    """Requested vs produced length on log-log axes, as a PNG at `path` (written atomically).

    Shows the ideal line y = x and the band within 10% of it; points are coloured by type
    when there are types. Empty answers are drawn at 1 word (a log axis has no 0).
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, NullFormatter

    target = Path(path)
    check_writable(target)
    fig = Figure(figsize=(7, 6), layout="constrained")
    ax = fig.subplots()
    lo = min(r.required for r in results) / 1.5
    hi = max(r.required for r in results) * 1.5
    ax.fill_between(
        [lo, hi],
        [lo * (1 - BAND), hi * (1 - BAND)],
        [lo * (1 + BAND), hi * (1 + BAND)],
        color="tab:green",
        alpha=0.15,
        label=f"within ±{BAND:.0%}",
    )
    ax.plot([lo, hi], [lo, hi], color="black", linestyle="--", linewidth=1, label="y = x")
    groups: dict[str, list[LengthResult]] = {}
    for r in results:
        groups.setdefault(r.type or "untyped", []).append(r)
    for name, items in sorted(groups.items()):
        label = name if len(groups) > 1 or name != "untyped" else "results"
        ax.scatter(
            [r.required for r in items],
            [max(r.produced, 1) for r in items],
            s=22,
            alpha=0.8,
            label=label,
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}"))
        axis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("required length (words)")
    ax.set_ylabel("produced length (words)")
    ax.set_title(title or "LongBench-Write length")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper left", fontsize="small")
    save_figure(fig, target, dpi=110)


def print_report(report: LengthReport) -> None:
    """Human-readable tables on stdout: per type and overall, then the worst items."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
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


eval_app = typer.Typer(
    help="Score generated documents the way the benchmarks do.",
    no_args_is_help=True,
    add_completion=False,
)


# The callback keeps `eval` a group of subcommands even while it has a single command.
@eval_app.callback()
def _eval() -> None:
    """Score generated documents the way the benchmarks do."""


@eval_app.command("length", help="LongBench-Write length score S_l of a JSON Lines results file.")
def length_cmd(
    results: Annotated[
        Path,
        typer.Argument(
            help="JSON Lines: `length` (the required length), `answer`, optional `type`, `id`.",
        ),
    ],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of tables.")
    ] = False,
    plot: Annotated[
        Path | None,
        typer.Option("--plot", help="Also draw required vs produced length into FILE.png."),
    ] = None,
    worst: Annotated[
        int, typer.Option("--worst", min=0, help="How many lowest-scoring items to list.")
    ] = DEFAULT_WORST,
) -> None:
    if plot is not None:
        check_writable(plot)
    items = load_results(results)
    report = summarize(items, worst=worst)
    if plot is not None:
        title = f"LongBench-Write length: S_l = {report.length_score:.1f} (n = {report.n})"
        plot_lengths(items, plot, title=title)
    if as_json:
        typer.echo(json.dumps(report.to_json(), ensure_ascii=False))
    else:
        print_report(report)


# `eval quality` and `eval report`: thin wrappers over judge.py and report.py.
@eval_app.command(
    "quality",
    help="LongBench-Write quality score S_q from an LLM judge (and the overall score).",
)
def quality_cmd(
    results: Annotated[
        Path,
        typer.Argument(help="JSON Lines: `prompt`, `answer`; optional `type`, `id`, `length`."),
    ],
    judge: Annotated[
        str,
        typer.Option(
            "--judge",
            help="OpenAI-compatible URL of the judge (API key: env LONGWRITE_API_KEY).",
        ),
    ],
    judge_model: Annotated[
        str | None, typer.Option(help="The judge's model (default: the first the server serves).")
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Scores file, appended as verdicts come (default: RESULTS.quality.jsonl).",
        ),
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Judge requests at once.")] = 4,
    retries: Annotated[
        int, typer.Option(min=0, help="Retries of a malformed reply or failed request.")
    ] = 2,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for a judge reply.")] = 300.0,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of tables.")
    ] = False,
) -> None:
    from longwrite.judge import (
        default_scores_path,
        judge_file,
        load_items,
        print_quality,
        server_judge,
        summarize_quality,
    )

    scores_path = output or default_scores_path(results)
    check_writable(scores_path)
    items = load_items(results)
    complete, engine = server_judge(judge, judge_model, timeout)
    try:
        verdicts = judge_file(
            items,
            complete,
            scores_path,
            concurrency=concurrency,
            retries=retries,
            judge_model=engine.model,
        )
    finally:
        engine.close()
    report = summarize_quality(items, verdicts)
    if as_json:
        typer.echo(json.dumps(report.to_json(), ensure_ascii=False))
    else:
        print_quality(report)
    if report.unscored:
        raise typer.Exit(1)


@eval_app.command("report", help="A Markdown report with tables and PNG plots beside it.")
def report_cmd(
    results: Annotated[Path, typer.Argument(help="The JSON Lines results file.")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="The Markdown file to write (atomically).")
    ],
    quality: Annotated[
        Path | None,
        typer.Option(help="Scores of `eval quality` (default: RESULTS.quality.jsonl if any)."),
    ] = None,
    worst: Annotated[
        int, typer.Option("--worst", min=0, help="How many worst cases to list.")
    ] = DEFAULT_WORST,
) -> None:
    from longwrite.report import write_report

    written = write_report(results, output, quality=quality, worst=worst)
    for path in written:
        typer.echo(str(path))
