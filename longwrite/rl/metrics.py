"""What a training run reports: `metrics.jsonl` (one line per logged step) and the progress
line on stderr.

`metrics.jsonl` is the same append-only JSON Lines file as batch results (`io.jsonl.AppendLog`):
one fsynced line per step, a torn last line from a kill cut off on resume, and a lock held
for the whole run, so a second `rl train` on the same folder is refused instead of writing
the same steps twice. Our own names come first in each record (`METRIC_NAMES`), TRL's raw log
is kept beside them under "trl".

The display is a rich progress bar on a terminal and one plain line per logged step
otherwise (a log file, CI). Both come from one TrainerCallback, on the main process only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from longwrite.display.status import format_duration
from longwrite.io.jsonl import AppendLog, read_records

METRICS_FILE = "metrics.jsonl"

# TRL's log keys -> the names in metrics.jsonl (everything TRL logs is also kept under "trl").
METRIC_NAMES = {
    "reward": "reward",
    "reward_std": "reward_std",
    "rewards/length/mean": "length",
    "rewards/format/mean": "format",
    "rewards/writing/mean": "writing",
    "answer_words": "answer_words",
    "length/in_range": "length_in_range",
    "format/structure": "format_structure",
    "format/repetition": "repetition",
    "writing/unscored": "writing_unscored",
    "writing/truncated": "writing_truncated",
    "completions/past_stop": "past_stop",
    "completions/mean_length": "completion_tokens",
    "completions/clipped_ratio": "truncated",
    "clip_ratio/region_mean": "clip_ratio",
    "entropy": "entropy",
    "kl": "kl",
    "step_time": "step_time",
    "loss": "loss",
    "grad_norm": "grad_norm",
    "learning_rate": "learning_rate",
    "frac_reward_zero_std": "frac_zero_std",
}


def metrics_line(step: int, logs: dict[str, Any], now: float) -> dict[str, Any]:
    """One metrics.jsonl record: our names first, then TRL's raw log under "trl".

    >>> record = metrics_line(3, {"rewards/length/mean": 0.5, "entropy": 2.0}, 10.0)
    >>> record["step"], record["length"], record["entropy"], record["trl"]["entropy"]
    (3, 0.5, 2.0, 2.0)
    """
    out: dict[str, Any] = {"step": step, "time": now}
    for key, name in METRIC_NAMES.items():
        if key in logs:
            out[name] = logs[key]
    out["trl"] = dict(logs)
    return out


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The step records of a metrics.jsonl file (a torn last line is left out; no file, none)."""
    return [r for r in read_records(path) if isinstance(r.get("step"), int)]


def hold_metrics(run_dir: Path) -> AppendLog:
    """The run's metrics log, locked by this process until `close` (another holder: an error)."""
    log = AppendLog(run_dir / METRICS_FILE)
    log.lock()
    return log


def trim_metrics(path: Path, last_step: int) -> None:
    """Keep only the records up to `last_step` (atomically): a resumed run logs the rest."""
    records = AppendLog(path).load()  # a torn last line is cut off here
    kept = [r for r in records if isinstance(r.get("step"), int) and r["step"] <= last_step]
    if len(kept) < len(records):
        import json

        from longwrite.io.files import atomic_write_text

        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept)
        atomic_write_text(path, text)


def gpu_peak_gib() -> float | None:
    """This process's peak GPU memory so far (torch's allocator, GiB); None without CUDA."""
    import sys

    torch = sys.modules.get("torch")  # training has imported it; never imported for this
    if torch is None or not torch.cuda.is_available():
        return None
    return round(torch.cuda.max_memory_allocated() / 2**30, 2)


def _fmt(value: Any, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def progress_line(step: int, total: int, record: dict[str, Any], eta: float | None) -> str:
    """The one-line summary of a step.

    >>> progress_line(3, 10, {"length": 0.5, "answer_words": 41.2, "step_time": 1.5}, 12.0)
    'step 3/10 · length 0.50 · words 41 · 1.50 s/step · ETA 0:12'
    """
    parts = [f"step {step}/{total}"]
    for name in ("length", "format", "writing"):
        if name in record:
            parts.append(f"{name} {_fmt(record[name])}")
    if "answer_words" in record:
        parts.append(f"words {_fmt(record['answer_words'], '.0f')}")
    if "step_time" in record:
        parts.append(f"{_fmt(record['step_time'])} s/step")
    if eta is not None:
        parts.append(f"ETA {format_duration(eta)}")
    return " · ".join(parts)


def run_callbacks(
    metrics: AppendLog | None,
    stream: TextIO,
    *,
    record: Callable[[int, dict[str, Any], float], dict[str, Any]] = metrics_line,
    line: Callable[[int, int, dict[str, Any], float | None], str] = progress_line,
    ready: str = "reward",
    label: str = "GRPO",
) -> list[Any]:
    """The metrics writer and the progress display, as TrainerCallbacks (main process only).

    A log that holds `ready` is a step's record; `record` and `line` shape it (GRPO's by
    default, `rl pretrain` passes its own)."""
    from transformers import TrainerCallback

    class RunLog(TrainerCallback):
        def __init__(self) -> None:
            self.started = time.monotonic()
            self.first_step: int | None = None
            self.progress: Any = None
            self.task: Any = None

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if not state.is_world_process_zero:
                return
            self.started = time.monotonic()
            self.first_step = state.global_step
            if stream.isatty():
                from rich.console import Console
                from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

                console = Console(file=stream)
                self.progress = Progress(
                    TextColumn(label), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[line]}"), console=console, transient=False,
                )  # fmt: skip
                self.task = self.progress.add_task(
                    "train", total=state.max_steps, completed=state.global_step, line=""
                )
                self.progress.start()

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if not state.is_world_process_zero or not logs or ready not in logs:
                return
            entry = record(state.global_step, logs, time.time())
            memory = gpu_peak_gib()
            if memory is not None:
                entry["gpu_peak_gib"] = memory
            if metrics is not None:
                metrics.append(entry)
            done = state.global_step - (self.first_step or 0)
            elapsed = time.monotonic() - self.started
            eta = elapsed / done * (state.max_steps - state.global_step) if done > 0 else None
            shown = line(state.global_step, state.max_steps, entry, eta)
            if self.progress is not None:
                text = shown.split(" · ", 1)[1] if " · " in shown else ""
                self.progress.update(self.task, completed=state.global_step, line=text)
            else:
                stream.write(shown + "\n")
                stream.flush()

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.progress is not None:
                self.progress.stop()

    return [RunLog()]
