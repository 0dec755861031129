"""`longwrite rl plot RUN`: training curves from `RUN/metrics.jsonl`, one PNG per quantity.

One small picture per curve (rather than one crowded dashboard) so that each can be opened,
compared across runs and pasted into a report on its own. Every reward that was on gets its
curve, then mean answer words, the clip ratio, entropy and seconds per step; a quantity the
run never logged is skipped. Noisy RL curves are drawn raw (thin) with a trailing moving
average (thick) over `window` steps.

matplotlib is imported only here, through its object API (`Figure`, no pyplot: no global
backend is touched; Agg renders the PNG), and each file is written to a temporary name and
renamed, so a reader never sees half a picture.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from longwrite.errors import LongwriteError
from longwrite.io.files import save_figure


@dataclass(frozen=True)
class Curve:
    key: str  # the metrics.jsonl field
    title: str
    ylabel: str


CURVES = (
    Curve("reward", "total reward (weighted sum)", "reward"),
    Curve("length", "length reward", "mean reward"),
    Curve("format", "format reward (structure x (1 - repetition))", "mean reward"),
    Curve("writing", "writing reward", "mean reward"),
    Curve("answer_words", "mean answer length", "words"),
    Curve("clip_ratio", "clip ratio", "share of tokens clipped"),
    Curve("entropy", "policy entropy", "nats per token"),
    Curve("step_time", "time per step", "seconds"),
)
PRETRAIN_CURVES = (  # `rl pretrain` runs (their records count "tokens")
    Curve("loss", "training loss", "nats per token"),
    Curve("learning_rate", "learning rate", "learning rate"),
    Curve("tokens_per_second", "throughput", "tokens per second"),
    Curve("grad_norm", "gradient norm", "norm"),
)


def moving_average(values: list[float], window: int) -> list[float]:
    """Trailing mean over up to `window` values.

    >>> moving_average([1.0, 3.0, 5.0, 7.0], 2)
    [1.0, 2.0, 4.0, 6.0]
    """
    out, total = [], 0.0
    for i, value in enumerate(values):
        total += value
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def series(records: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of `key`, skipping records where it is missing or not a number."""
    steps, values = [], []
    for record in records:
        value = record.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and value == value:
            steps.append(record["step"])
            values.append(float(value))
    return steps, values


def plot_run(
    run_dir: str | Path, out_dir: str | Path | None = None, *, window: int = 5
) -> list[Path]:
    """Write one PNG per logged curve of the run into `out_dir` (default RUN/plots)."""
    from longwrite.rl.metrics import METRICS_FILE, read_metrics

    run = Path(run_dir)
    metrics = run / METRICS_FILE
    if not run.is_dir():
        raise LongwriteError(f"{run}: no such run folder")
    records = read_metrics(metrics)
    if not records:
        raise LongwriteError(f"{metrics}: no logged steps yet")
    out = Path(out_dir) if out_dir is not None else run / "plots"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise LongwriteError(f"cannot create {out}: {e.strerror}") from None

    from matplotlib.figure import Figure

    written = []
    for curve in PRETRAIN_CURVES if "tokens" in records[0] else CURVES:
        steps, values = series(records, curve.key)
        if not steps:
            continue
        fig = Figure(figsize=(6, 3.6), layout="constrained")
        ax = fig.subplots()
        ax.plot(
            steps, values, color="tab:blue", linewidth=0.8, alpha=0.45, marker=".", label="step"
        )
        if len(values) >= window:
            ax.plot(steps, moving_average(values, window), color="tab:blue", linewidth=2,
                    label=f"mean of {window}")  # fmt: skip
            ax.legend(loc="best", fontsize="small")
        ax.set_title(f"{curve.title} — {run.name}")
        ax.set_xlabel("step")
        ax.set_ylabel(curve.ylabel)
        ax.grid(True, alpha=0.3)
        path = out / f"{curve.key}.png"
        save_figure(fig, path, dpi=100)
        written.append(path)
    return written
