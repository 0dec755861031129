"""`longwrite eval report`: one Markdown page of scores and plots for a results file.

The page holds what `eval length` and `eval quality` print (S_l, S_q, the overall score,
the tables per type and per dimension) plus the worst cases of each, and links two PNGs
written beside it: required against produced length (`evaluate.plot_lengths`) and the
histograms of the per-item scores. Quality comes from the scores file of `eval quality`
(`RESULTS.quality.jsonl` unless `--quality` names another); without one, the page covers
length only. When `eval writingbench` or `eval arena` has scored the file (their summaries,
`RESULTS.writingbench.json` and `RESULTS.arena.json`, or `--writingbench` / `--arena`), the
page gains their sections and the paper's published figures beside the user's (from
reference/longwriter-zero.md §3), with the caveat that scores from another judge or against
other baselines are not directly comparable.

The command is read-only except for what it was asked to write: the results and scores files
are read, never repaired (a torn last line of a scores file is skipped, not cut off), and
only the page and its two plots are written. A verdict counts only for the answer it was
given for (`judge.match_verdicts`), so a report on regenerated outputs never shows old scores.

The Markdown is built by a pure function of the scores (`render_markdown`), so tests check
it as text. Every file is written to a temporary name and renamed, so a reader never sees a
half-written report; the plots are written first, so the page never links a missing image.
matplotlib is used through its object API (no pyplot), imported only when plotting.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from longwrite.defaults import WORST_SHOWN as DEFAULT_WORST
from longwrite.errors import LongwriteError
from longwrite.evaluate.quality import (
    DIMENSIONS,
    LABELS,
    JudgeItem,
    Verdict,
    default_scores_path,
    load_items,
    load_verdicts,
    quality_score,
    rescale,
)
from longwrite.evaluate.summary import QualityReport, summarize_quality
from longwrite.io.files import atomic_write_text, check_apart, check_writable, save_figure

# the LongWriter-Zero paper's published figures (WritingBench 1-10 by its critic; Arena-Write Elo)
PAPER_WRITINGBENCH = (
    ("LongWriter-Zero-32B", 8.69),
    ("Qwen3-235B-A22B", 8.68),
    ("DeepSeek-R1", 8.55),
    ("GPT-4o", 8.16),
    ("LongWriter-8B", 7.91),
)
PAPER_ARENA = (
    ("LongWriter-Zero", 1447),
    ("DeepSeek-R1", 1343),
    ("Qwen3-235B", 1343),
    ("GPT-4o", 947),
    ("LongWriter-8B", 457),
)
BINS = tuple(range(0, 101, 10))
UNSCORED_LISTED = 20


@dataclass(frozen=True)
class ReportData:
    """Everything the page shows."""

    results: str
    quality_file: str | None
    items: tuple[JudgeItem, ...]
    verdicts: dict[str, Verdict]
    summary: QualityReport
    length_plot: str | None  # file names, relative to the page
    hist_plot: str | None
    worst: int = DEFAULT_WORST
    writingbench: dict | None = None  # the summary of `eval writingbench`
    arena: dict | None = None  # the summary of `eval arena`


def _cell(value: object) -> str:
    text = "-" if value is None else str(value)
    return " ".join(text.split()).replace("|", "\\|") or "-"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _table(header: list[str], rows: list[list[object]], right: set[int]) -> list[str]:
    align = ["---:" if i in right else "---" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def render_markdown(data: ReportData) -> str:
    """The report page as Markdown text."""
    total = data.summary.total
    judged = data.quality_file is not None
    out = ["# LongBench-Write report", ""]
    source = f"Results: `{data.results}` ({total.n} items)"
    if judged:
        source += f"; quality scores: `{data.quality_file}` ({total.scored} scored)"
    out += [source + ".", "", "## Scores", ""]
    with_length = sum(it.length is not None for it in data.items)
    rows: list[list[object]] = [["S_l (length)", _num(total.length), with_length]]
    if judged:
        rows.append(["S_q (quality)", _num(total.quality), total.scored])
        rows.append(["overall = mean(S_l, S_q)", _num(total.overall), ""])
    out += _table(["score", "value", "items"], rows, {1, 2})
    if with_length < total.n:
        out += [
            "",
            f"{total.n - with_length} item(s) give no required length (`length`): left out of S_l.",
        ]
    if data.summary.by_type:
        out += ["", "## By type", ""]
        header = ["type", "n", "S_l"] + (["S_q", "overall"] if judged else [])
        type_rows = []
        for name, s in [*data.summary.by_type.items(), ("all", total)]:
            row: list[object] = [name, s.n, _num(s.length)]
            if judged:
                row += [_num(s.quality), _num(s.overall)]
            type_rows.append(row)
        out += _table(header, type_rows, set(range(1, len(header))))
    if total.dimensions:
        out += ["", "## Quality by dimension", ""]
        dim_rows = [
            [LABELS[d], f"{total.dimensions[d]:.2f}", f"{rescale(total.dimensions[d]):.2f}"]
            for d in DIMENSIONS
        ]
        out += _table(["dimension", "mean rating (1-5)", "score (0-100)"], dim_rows, {1, 2})
    if data.length_plot or data.hist_plot:
        out += ["", "## Plots", ""]
        if data.length_plot:
            out += [f"![Required against produced length]({data.length_plot})", ""]
        if data.hist_plot:
            out += [f"![Distribution of the per-item scores]({data.hist_plot})", ""]
        out.pop()
    out += _worst_length(data) + _worst_quality(data)
    out += _writingbench(data.writingbench) + _arena(data.arena) + _paper(data)
    unscored = data.summary.unscored if judged else ()
    if unscored:
        shown = ", ".join(f"`{k}`" for k in unscored[:UNSCORED_LISTED])
        extra = len(unscored) - UNSCORED_LISTED
        more = f" and {extra} more" if extra > 0 else ""
        out += [
            "",
            "## Unscored",
            "",
            f"{len(unscored)} item(s) the judge gave no usable reply for (left out of S_q): "
            f"{shown}{more}.",
        ]
    return "\n".join(out) + "\n"


def _writingbench(wb: dict | None) -> list[str]:
    if not wb:
        return []
    rows: list[list[object]] = [["all", wb["overall"]["n"], _num(wb["overall"]["mean"]),
                                 _num(wb["overall"]["x100"])]]  # fmt: skip
    for level in ("domain1", "domain2"):
        rows += [[f"{level}: {k}", v["n"], _num(v["mean"]), _num(v["x100"])]
                 for k, v in wb[level].items()]  # fmt: skip
    out = ["", "## WritingBench", ""]
    out += _table(["group", "queries", "mean (1-10)", "score (/100)"], rows, {1, 2, 3})
    if wb["criteria"]:
        crit = [[k, v["n"], _num(v["mean"])] for k, v in wb["criteria"].items()]
        out += ["", *_table(["criterion", "verdicts", "mean (1-10)"], crit, {1, 2})]
    if wb["unscored"] or wb["missing"]:
        gaps = f"{len(wb['unscored'])} criterion verdict(s) unscored and "
        gaps += f"{len(wb['missing'])} query(ies) without an answer: left out of the means."
        out += ["", gaps]
    return out


def _arena(arena: dict | None) -> list[str]:
    if not arena:
        return []
    ranked = sorted(arena["ratings"].items(), key=lambda kv: -kv[1]["elo"])
    rows = [[name, r["role"], f"{r['elo']:.0f}",
             "-" if r["lo"] is None else f"{r['lo']:.0f} to {r['hi']:.0f}"]
            for name, r in ranked]  # fmt: skip
    out = ["", "## Arena-Write", "", f"{arena['battles']} battles (each judged both ways round; "
           f"{arena['inconsistent']} disagreed and count as ties).", ""]  # fmt: skip
    out += _table(["model", "role", "Elo", "95% interval"], rows, {2, 3})
    for cand, rates in arena["win_rates"].items():
        groups = [(f"vs {b}", v) for b, v in rates["by_baseline"].items()]
        groups += [(f"type {t}", v) for t, v in rates["by_type"].items()] + [("all", rates["all"])]
        rate_rows = [[g, v["n"], v["wins"], v["ties"], v["losses"],
                      "-" if v["win_rate"] is None else f"{100 * v['win_rate']:.1f}%"]
                     for g, v in groups]  # fmt: skip
        header = ["against / type", "battles", "wins", "ties", "losses", "win rate"]
        out += ["", f"Win rates of `{cand}`:", "", *_table(header, rate_rows, {1, 2, 3, 4, 5})]
    return out


def _paper(data: ReportData) -> list[str]:
    if not data.writingbench and not data.arena:
        return []
    out = ["", "## Beside the paper's figures", ""]
    rows: list[list[object]] = []
    if data.writingbench:
        rows += [["WritingBench (1-10)", name, f"{v:.2f}"] for name, v in PAPER_WRITINGBENCH]
        rows.append(
            ["WritingBench (1-10)", "**yours**", _num(data.writingbench["overall"]["mean"])]
        )
    if data.arena:
        rows += [["Arena-Write (Elo)", name, str(v)] for name, v in PAPER_ARENA]
        for name, r in data.arena["ratings"].items():
            if r["role"] == "candidate":
                rows.append(["Arena-Write (Elo)", f"**yours: {name}**", f"{r['elo']:.0f}"])
    out += _table(["benchmark", "model", "score"], rows, {2})
    out += ["", "The paper's WritingBench scores come from WritingBench's critic model and its "
            "Arena-Write Elo from its own judge and anchoring; a score from another critic, "
            "judge or set of baselines measures on another scale: compare the ranking, not "
            "the number."]  # fmt: skip
    return out


def _worst_length(data: ReportData) -> list[str]:
    scored = [it for it in data.items if it.length is not None]
    if not scored or data.worst <= 0:
        return []
    ranked = sorted(scored, key=lambda it: (it.length.score, it.line))[: data.worst]
    rows = [
        [it.line, it.id, it.type, f"{it.length.required:,}", f"{it.length.produced:,}",
         _num(it.length.score)]
        for it in ranked
    ]  # fmt: skip
    header = ["line", "id", "type", "required", "produced", "S_l"]
    return ["", "## Worst cases: length", "", *_table(header, rows, {0, 3, 4, 5})]


def _worst_quality(data: ReportData) -> list[str]:
    rated = []
    for it in data.items:
        verdict = data.verdicts.get(it.key)
        if verdict is not None and verdict.scores is not None:
            rated.append((quality_score(verdict.scores), it.line, it, verdict.scores))
    if not rated or data.worst <= 0:
        return []
    rows = []
    for score, _, it, scores in sorted(rated, key=lambda r: (r[0], r[1]))[: data.worst]:
        weakest = min(DIMENSIONS, key=lambda d: (scores[d], DIMENSIONS.index(d)))
        weak = f"{LABELS[weakest]} ({scores[weakest]:g})"
        rows.append([it.line, it.id, it.type, _num(score), weak])
    header = ["line", "id", "type", "S_q", "weakest dimension"]
    return ["", "## Worst cases: quality", "", *_table(header, rows, {0, 3})]


def plot_histograms(length: list[float], quality: list[float], path: str | Path) -> None:
    """Histograms of per-item S_l and S_q (bins of 10 points) side by side, as a PNG."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    panels = [(name, values) for name, values in (("S_l", length), ("S_q", quality)) if values]
    if not panels:
        raise ValueError("no scores to plot")
    fig = Figure(figsize=(5 * len(panels), 4), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (name, values) in zip(axes, panels, strict=True):
        ax.hist(values, bins=BINS, color="tab:blue", edgecolor="white")
        mean = sum(values) / len(values)
        ax.axvline(mean, color="black", linestyle="--", linewidth=1, label=f"mean {mean:.1f}")
        ax.set_xlim(0, 100)
        ax.set_xlabel(f"per-item {name} (0-100)")
        ax.set_ylabel("items")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(f"{name} over {len(values)} items")
        ax.legend(loc="upper left", fontsize="small")
    save_figure(fig, Path(path), dpi=110)


def plot_paths(output: Path) -> tuple[Path, Path]:
    """`report.md` -> (`report.length.png`, `report.scores.png`), beside the page."""
    stem = output.name[: -len(output.suffix)] if output.suffix else output.name
    return output.with_name(stem + ".length.png"), output.with_name(stem + ".scores.png")


def read_summary(given: Path | None, default: Path, kind: str) -> dict | None:
    """The summary JSON `eval writingbench` / `eval arena` left, if any (`given` must exist)."""
    from longwrite.io.records import LineError, decode_object, read_bytes

    path = given if given is not None else default
    if not path.exists():
        if given is not None:
            raise LongwriteError(f"cannot read {given}: no such file")
        return None
    try:
        data = decode_object(read_bytes(path))
    except LineError as e:
        raise LongwriteError(f"cannot read {path}: not a summary of `eval {kind}` ({e})") from None
    if data.get("benchmark") not in ("WritingBench", "Arena-Write"):
        raise LongwriteError(f"{path} is not a summary of `eval {kind}`")
    return data


def write_report(
    results: Path,
    output: Path,
    *,
    quality: Path | None = None,
    worst: int = DEFAULT_WORST,
    writingbench: Path | None = None,
    arena: Path | None = None,
) -> list[Path]:
    """Write the page and its plots; returns the files written (the page last)."""
    from longwrite.evaluate.plots import plot_lengths

    check_writable(output)
    items = load_items(results)
    if quality is None and default_scores_path(results).exists():
        quality = default_scores_path(results)
    if quality is not None and not quality.exists():
        raise LongwriteError(f"cannot read {quality}: no such file")
    stem = results.name[: -len(results.suffix)] if results.suffix else results.name
    beside = [results.with_name(stem + end) for end in (".writingbench.json", ".arena.json")]
    read = [results, quality, writingbench, arena, *beside]
    check_apart([output, *plot_paths(output)], read)  # the page must not replace what it reads
    verdicts = load_verdicts(quality, items) if quality is not None else {}
    wb = read_summary(writingbench, results.with_name(stem + ".writingbench.json"), "writingbench")
    duels = read_summary(arena, results.with_name(stem + ".arena.json"), "arena")
    summary = summarize_quality(items, verdicts)
    length_png, hist_png = plot_paths(output)
    written = []
    lengths = [it.length for it in items if it.length is not None]
    if lengths:
        title = f"LongBench-Write length: S_l = {summary.total.length:.1f} (n = {len(lengths)})"
        plot_lengths(lengths, length_png, title=title)
        written.append(length_png)
    keys = {it.key for it in items}
    quality_values = [v.quality for k, v in verdicts.items() if k in keys and v.quality is not None]
    if lengths or quality_values:
        plot_histograms([r.score for r in lengths], quality_values, hist_png)
        written.append(hist_png)
    data = ReportData(
        results=results.name,
        quality_file=quality.name if quality is not None else None,
        items=tuple(items),
        verdicts=verdicts,
        summary=summary,
        length_plot=length_png.name if length_png in written else None,
        hist_plot=hist_png.name if hist_png in written else None,
        worst=worst,
        writingbench=wb,
        arena=duels,
    )
    atomic_write_text(output, render_markdown(data))
    written.append(output)
    return written
