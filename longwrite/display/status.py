"""The one-line status of a run (phase, progress, speed, elapsed time, ETA) and `format_duration`,
the one way a time span is shown (status line, batch and RL ETAs)."""

from __future__ import annotations

from rich.text import Text


def format_duration(seconds: float) -> str:
    """`m:ss`, or `h:mm:ss` from one hour; whole seconds, rounded down."""
    s = max(int(seconds), 0)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def format_status(
    phase: str,
    *,
    elapsed: float,
    words: int = 0,
    target: int | None = None,
    tokens: int | None = None,
    tokens_per_s: float = 0.0,
    words_per_s: float = 0.0,
    finish_reason: str | None = None,
) -> str:
    """The one-line status: phase, progress, speed, elapsed time and, while writing, the ETA.

    `phase` is "waiting", "thinking", "writing", or a final one ("done", "interrupted").
    Token figures appear only when `tokens` is known. The ETA needs a target and a writing
    speed: (target - words) / words_per_s.
    """
    parts = [phase]
    rate = f"{tokens_per_s:,.1f} tok/s"  # 3,181.6 against a fast server
    if phase == "thinking":
        if tokens is not None:
            parts += [f"{tokens:,} tok", rate]
    elif phase == "writing":
        parts.append(f"{words:,} / {target:,} words" if target else f"{words:,} words")
        if tokens is not None:
            parts.append(rate)
    elif phase != "waiting":  # final
        parts.append(f"{words:,} words")
        if tokens is not None:
            parts += [f"{tokens:,} tok", rate]
    parts.append(format_duration(elapsed))
    if phase == "writing" and target and 0 < words < target and words_per_s > 0:
        parts.append(f"ETA {format_duration((target - words) / words_per_s)}")
    if finish_reason not in (None, "stop") and phase not in ("thinking", "writing", "waiting"):
        parts.append(f"stopped: {finish_reason}")
    return " · ".join(parts)


def status_line(status: str) -> Text:
    """The status text styled: the phase in bold colour, the rest dim, cut to one line."""
    phase, _, rest = status.partition(" ")
    colour = {"thinking": "cyan", "writing": "green", "done": "green"}.get(phase, "yellow")
    text = Text.assemble((phase, f"bold {colour}"), (" " + rest, "dim"))
    text.no_wrap, text.overflow = True, "ellipsis"
    return text
