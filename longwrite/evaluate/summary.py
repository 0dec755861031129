"""S_q, S_l and the overall score of a judged results file, per type and in all, and the
tables `eval quality` prints.

Separate from the judging (`evaluate.quality`): `eval report` needs the same numbers from a
scores file without asking a judge. A mean is taken over the items that have the number
(S_q over the scored ones, S_l over those with a required length); a group with none shows
"-" rather than 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from longwrite.evaluate.quality import (
    DIMENSIONS,
    LABELS,
    JudgeItem,
    Verdict,
    is_scored,
    quality_score,
    rescale,
)


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
    truncated: tuple[str, ...] = ()  # keys of the answers cut to fit the judge's context

    def to_json(self) -> dict[str, Any]:
        return {
            **self.total.to_json(),
            "by_type": {t: s.to_json() for t, s in self.by_type.items()},
            "unscored": list(self.unscored),
            "truncated": list(self.truncated),
        }


def summarize_quality(items: list[JudgeItem], verdicts: dict[str, Verdict]) -> QualityReport:
    types: dict[str, list[JudgeItem]] = {}
    for it in items:
        if it.type is not None:
            types.setdefault(it.type, []).append(it)
    unscored = tuple(it.key for it in items if not is_scored(verdicts.get(it.key)))
    cut = tuple(it.key for it in items if it.key in verdicts and verdicts[it.key].truncated)
    return QualityReport(
        total=group_scores(items, verdicts),
        by_type={t: group_scores(group, verdicts) for t, group in sorted(types.items())},
        unscored=unscored,
        truncated=cut,
    )


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def print_quality(report: QualityReport) -> None:
    """Tables on stdout: per type and overall, then per dimension."""
    from rich.console import Console
    from rich.table import Table

    console = Console(markup=False)  # ids, types and names are data, not rich markup
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
    if report.truncated:
        console.print(
            f"{len(report.truncated)} answer(s) longer than the judge's context: judged on the "
            "part that fits (the judge was told the rest is not shown)"
        )
    if report.unscored:
        console.print(
            f"{len(report.unscored)} unscored (the judge gave no usable reply; left out of "
            "S_q): run the same command again to retry them"
        )
