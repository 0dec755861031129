"""Figures for `eval length` and `eval report`: produced against required length.

A log-log scatter with the ideal line y = x and the paper's +/-10% band, built with
matplotlib's object API (no pyplot, so no global backend is touched; Agg renders the PNG),
imported only when a figure is asked for, written atomically.
"""

from __future__ import annotations

from pathlib import Path

from longwrite.evaluate.length import LengthResult
from longwrite.io.files import check_writable, save_figure

BAND = 0.10  # the plot's band around y = x


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
